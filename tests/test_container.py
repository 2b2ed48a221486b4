"""The README's set-up commands are the ones CI and the Dockerfile run; compose wires /healthz, Prometheus and
the provisioned dashboard. Docker itself is not needed: the files are parsed, and the image's health check
command is run against a real endpoint."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from edgefilter.config import load_config
from edgefilter.endpoint import Endpoint
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(after: str) -> list[str]:
    """The lines of the first ```sh block after the paragraph starting with ``after``."""
    start = README.index("\n" + after)
    block = re.search(r"```sh\n(.*?)```", README[start:], re.S)
    assert block, f"no sh block after {after!r}"
    return block.group(1).strip().splitlines()


SETUP_RUN = readme_block("Set up and run the daemon")
SETUP_TEST = readme_block("Set up and run the tests")
ACTIVATE = " && . .venv/bin/activate"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", "", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_readme_commands_make_a_venv_and_install_an_extra():
    assert SETUP_RUN[0] == SETUP_TEST[0] == "python3 -m venv .venv" + ACTIVATE
    assert SETUP_RUN[1:] == ["python -m pip install -e '.[cpu]'", "edgefilter run -c config.yaml"]
    assert SETUP_TEST[1:] == ["python -m pip install -e '.[cpu,test]'", "python -m pytest"]


def test_ci_runs_exactly_the_readme_test_command():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if line.startswith("# The README's test command"))
    assert lines[marker + 1:] == SETUP_TEST


def test_dockerfile_runs_the_readme_commands():
    steps = dockerfile()
    assert ("WORKDIR", "/src") in steps and ("COPY", ". /src") in steps
    runs = [args for word, args in steps if word == "RUN"]
    # The venv line: RUN creates it; activation (its bin first on PATH) must outlive the RUN, so it is an ENV.
    assert runs[0] == SETUP_RUN[0].removesuffix(ACTIVATE)
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "PATH=/src/.venv/bin:$PATH" in env and "VIRTUAL_ENV=/src/.venv" in env
    assert runs[1] == SETUP_RUN[1]
    cmd = next(args for word, args in reversed(steps) if word == "CMD")
    assert shlex.join(json.loads(cmd)) == SETUP_RUN[2]


def healthcheck_command() -> list[str]:
    args = next(args for word, args in dockerfile() if word == "HEALTHCHECK")
    return json.loads(args[args.index("CMD") + len("CMD"):].strip())


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_config_binds_where_the_health_check_and_prometheus_look():
    services = compose()["services"]
    daemon = services["edgefilter"]
    assert daemon["build"] == "."
    mounted = dict(v.rsplit(":", 1)[0].split(":", 1) for v in daemon["volumes"] if v.startswith("./"))
    assert mounted["./docker/config.yaml"] == "/src/config.yaml"  # the README's `-c config.yaml`, in /src
    cfg = load_config(ROOT / "docker" / "config.yaml")
    port = cfg.metrics.bind.rpartition(":")[2]
    assert cfg.metrics.bind.startswith("0.0.0.0:") and cfg.publish.bind.startswith("tcp://0.0.0.0:")
    assert cfg.drift.enabled
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(healthcheck_command())
    assert f"127.0.0.1:{port}:{port}" in daemon["ports"]
    prom = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == [f"edgefilter:{port}"]
    assert services["prometheus"]["depends_on"]["edgefilter"]["condition"] == "service_healthy"


def test_compose_provisions_grafana_with_the_dashboard():
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    dashboard = ROOT / next(k for k, v in mounts.items() if v.endswith(".json"))
    assert dashboard == ROOT / "systemd" / "grafana-dashboard.json" and dashboard.exists()
    providers = yaml.safe_load((ROOT / "docker/grafana/dashboards/edgefilter.yml").read_text())["providers"]
    assert Path(mounts["./systemd/grafana-dashboard.json"]).parent == Path(providers[0]["options"]["path"])
    assert mounts["./docker/grafana/dashboards"] == "/etc/grafana/provisioning/dashboards"
    assert mounts["./docker/grafana/datasources"] == "/etc/grafana/provisioning/datasources"
    (source,) = yaml.safe_load((ROOT / "docker/grafana/datasources/prometheus.yml").read_text())["datasources"]
    # The dashboard's data source variable takes the default Prometheus.
    assert source["type"] == "prometheus" and source["isDefault"] is True and source["url"] == "http://prometheus:9090"
    variables = json.loads(dashboard.read_text())["templating"]["list"]
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in variables)


def test_the_images_health_check_passes_on_200_and_fails_on_503():
    state = {"reasons": []}
    port = free_port()
    ep = Endpoint(f"127.0.0.1:{port}", CollectorRegistry(), lambda: state["reasons"], lambda: True)
    ep.start()
    try:
        cmd = healthcheck_command()
        assert cmd[0] == "python"
        cmd = [sys.executable, *cmd[1:]]
        cmd = [c.replace("127.0.0.1:9108", f"127.0.0.1:{port}") for c in cmd]
        assert subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
        state["reasons"] = ["pipeline thread embed has died"]
        assert subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0
    finally:
        ep.stop()
