"""The system service files: the unit passes systemd's own checks, the monitoring examples match the metrics.

Needs ``systemd-analyze`` (Debian package ``systemd``); without it these tests fail, they do not skip.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from edgefilter.errors import EXIT_CONFIG, EXIT_USAGE
from edgefilter.metrics import Metrics

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "edgefilter.service"
MAX_EXPOSURE = 2.5


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze") or ("/usr/bin/systemd-analyze"
                                               if Path("/usr/bin/systemd-analyze").exists() else None)
    if path is None:
        pytest.fail("systemd-analyze not found: install Debian's `systemd` package "
                    "(apt-get install -y systemd) to check systemd/edgefilter.service")
    return path


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of every assignment in the unit (comments and sections dropped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture
def testable_unit(tmp_path) -> Path:
    """The unit with only ExecStart pointing at an executable that exists here (verify checks it)."""
    text = UNIT.read_text()
    exec_start = "ExecStart=/opt/edgefilter/bin/edgefilter "
    assert text.count(exec_start) == 1, "the unit must have exactly one ExecStart of /opt/edgefilter/bin/edgefilter"
    rewritten = text.replace(exec_start, f"ExecStart={sys.executable} ")
    # Everything but ExecStart stays identical.
    assert [line for line in rewritten.splitlines() if not line.startswith("ExecStart=")] == \
           [line for line in text.splitlines() if not line.startswith("ExecStart=")]
    path = tmp_path / "edgefilter.service"
    path.write_text(rewritten)
    return path


def test_unit_passes_systemd_analyze_verify(testable_unit):
    proc = subprocess.run([systemd_analyze(), "verify", str(testable_unit)], capture_output=True, text=True,
                          timeout=60)
    # verify reports problems on stderr even when it exits 0 (unknown keys, bad values): accept neither.
    problems = [line for line in proc.stderr.splitlines() if "edgefilter.service" in line]
    assert proc.returncode == 0 and not problems, f"systemd-analyze verify:\n{proc.stdout}{proc.stderr}"


def test_unit_security_exposure_is_at_most_2_5(testable_unit):
    proc = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager", str(testable_unit)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert match, f"no exposure level in systemd-analyze security output:\n{proc.stdout}{proc.stderr}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{proc.stdout}"


def test_unit_essentials():
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"]
    assert s["ExecStart"] == ["/opt/edgefilter/bin/edgefilter run -c /etc/edgefilter/config.yaml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == [f"{EXIT_USAGE} {EXIT_CONFIG}"]
    assert s["User"] == ["edgefilter"] and s["SupplementaryGroups"] == ["video"]
    assert s["StateDirectory"] == ["edgefilter"]
    assert int(s["WatchdogSec"][0]) >= 10
    # The stop timeout must outlast the default drain deadline (shutdown_timeout_s) plus a state save.
    from edgefilter.config import Config
    assert int(s["TimeoutStopSec"][0]) > Config().shutdown_timeout_s + 10
    # PrivateDevices=yes would hide /dev/video*; the camera must stay reachable.
    assert "PrivateDevices" not in s
    assert s["DevicePolicy"] == ["closed"] and "char-video4linux rw" in s["DeviceAllow"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]


def test_sysusers_puts_the_user_in_video():
    lines = [line.split() for line in (SYSTEMD / "edgefilter.sysusers.conf").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert ["m", "edgefilter", "video"] in lines
    assert any(fields[:2] == ["u", "edgefilter"] for fields in lines)


def test_install_script_parses_and_matches_the_unit():
    script = SYSTEMD / "install.sh"
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    assert "PREFIX=/opt/edgefilter" in text and "CONFIG_DIR=/etc/edgefilter" in text
    assert "video" in text and "systemctl enable edgefilter.service" in text


# --------------------------------------------------------------------------- monitoring examples


def exported_series() -> dict[str, set[str]]:
    """Every sample name the daemon's registry exposes -> that metric's label names."""
    metrics = Metrics(CollectorRegistry())
    labels: dict[str, set[str]] = {}
    for attr in vars(metrics).values():
        if hasattr(attr, "_labelnames"):
            labels[attr._name] = set(attr._labelnames)
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        assert family.name in labels, f"cannot read the label names of {family.name}"
        base = labels[family.name]
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                    "info": ["_info"], "gauge": [""]}[family.type]
        for suffix in suffixes:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = base | extra
    return series


METRIC_SELECTOR = re.compile(r"\b(edgefilter_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?")
LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
TARGET_LABELS = {"instance", "job"}


def dashboard_expressions() -> list[str]:
    dash = json.loads((SYSTEMD / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v.get("type") == "query"]
    return exprs


def test_dashboard_queries_use_only_exported_metrics_and_labels():
    series = exported_series()
    exprs = dashboard_expressions()
    assert exprs
    for expr in exprs:
        used = METRIC_SELECTOR.findall(expr)
        assert used, f"query names no edgefilter metric: {expr}"
        names = set()
        for name, selector in used:
            assert name in series, f"dashboard query uses {name}, which edgefilter does not export: {expr}"
            names.add(name)
            for label in LABEL_MATCHER.findall(selector):
                assert label in series[name] | TARGET_LABELS, f"{name} has no label {label!r}: {expr}"
        allowed = set.union(*(series[n] for n in names)) | TARGET_LABELS
        for group in GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in allowed, f"grouping by {label!r}, which {sorted(names)} lack: {expr}"


def test_dashboard_covers_every_metric():
    used = {name for expr in dashboard_expressions() for name, _ in METRIC_SELECTOR.findall(expr)}
    metrics = Metrics(CollectorRegistry())
    families = {family.name for family in metrics.registry.collect()}
    missing = sorted(f for f in families if not any(u == f or u.startswith(f + "_") for u in used))
    assert not missing, f"metrics without a dashboard panel: {missing}"


def test_dashboard_is_importable_grafana_json():
    dash = json.loads((SYSTEMD / "grafana-dashboard.json").read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"panel {p['title']!r} overflows the 24-column grid"
        for t in p.get("targets", []):
            assert t["expr"].count("(") == t["expr"].count(")"), f"unbalanced parentheses: {t['expr']}"
            assert t["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "instance", "source"} <= variables


def test_prometheus_example_parses_and_scrapes_the_default_bind():
    from edgefilter.config import Config

    conf = yaml.safe_load((SYSTEMD / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    job = jobs["edgefilter"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert Config().metrics.bind in targets
    assert job.get("metrics_path", "/metrics") == "/metrics"
