"""The bridge's config: strict keys with lines, cross-checks, secrets from the environment or files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgefilter.bridge.config import SecretConfig, load_bridge_config, parse_bridge_config, read_secret
from edgefilter.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = "site: plant-a\ndaemons:\n  - {name: box1, connect: 'tcp://127.0.0.1:5556'}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_bridge_config(text, file="bridge.yaml")
    return [str(p) for p in exc.value.problems]


def test_the_example_config_loads():
    cfg = load_bridge_config(ROOT / "bridge.yaml")
    assert cfg.site == "plant-a" and cfg.daemons[0].connect == "tcp://127.0.0.1:5556"
    assert cfg.mqtt.prefix == "edgefilter" and cfg.s3.access_key == SecretConfig(env="AWS_ACCESS_KEY_ID")


def test_defaults_and_derived_names():
    cfg = parse_bridge_config(MINIMAL + "name: box-7\n")
    assert cfg.client_id == "edgefilter-bridge-plant-a-box-7"
    assert cfg.mqtt.port == 1883 and cfg.outbox.max_bytes == 1 << 30 and cfg.metrics.bind == "127.0.0.1:9109"


def test_an_unknown_key_is_reported_with_its_line_and_the_allowed_keys():
    found = problems(MINIMAL + "mqtt:\n  port: 1883\n  colour: blue\n")
    assert found[0].startswith("bridge.yaml:6: mqtt.colour: unknown key; allowed here: ack_timeout_s, client_id")


def test_every_cross_check_problem_is_reported_with_its_key_and_line():
    text = "\n".join(problems(
        "site: 'bad site'\n"                       # 1
        "daemons:\n"                               # 2
        "  - {name: box1, connect: nowhere}\n"     # 3
        "  - name: box1\n"                         # 4
        "    connect: 'tcp://h:1'\n"               # 5
        "mqtt:\n"                                  # 6
        "  prefix: 'a/#'\n"                        # 7
        "  password: {env: X}\n"                   # 8
        "s3:\n"                                    # 9
        "  endpoint: ftp://x\n"                    # 10
        "metrics: {bind: nope}\n"))                # 11
    assert "bridge.yaml:1: site: must be 1-64 characters" in text
    assert "bridge.yaml:3: daemons[0].connect: must be a ZeroMQ endpoint" in text
    assert "bridge.yaml:4: daemons[1].name: duplicate daemon name 'box1' (also daemons[0])" in text
    assert "bridge.yaml:7: mqtt.prefix: must be a topic level without + or #" in text
    assert "bridge.yaml:8: mqtt.password: needs mqtt.username" in text
    assert "bridge.yaml:10: s3.endpoint: must be an http:// or https:// URL" in text
    assert "bridge.yaml:11: metrics.bind: must be HOST:PORT" in text


def test_a_daemon_is_required():
    assert any("daemons: at least one daemon is required" in p for p in problems("site: x1\n"))


def test_secrets_come_from_files_or_the_environment_and_never_show(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("hunter2-from-file\n")
    cfg = parse_bridge_config(MINIMAL, base_dir=str(tmp_path))
    secret = read_secret(SecretConfig(file="pw"), "mqtt.password", cfg)
    assert secret.reveal() == "hunter2-from-file"
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    monkeypatch.setenv("EF_TEST_SECRET", "hunter3-from-env")
    assert read_secret(SecretConfig(env="EF_TEST_SECRET"), "s3.secret_key", cfg).reveal() == "hunter3-from-env"
    assert read_secret(SecretConfig(), "s3.secret_key", cfg) is None
    monkeypatch.delenv("EF_TEST_SECRET")
    with pytest.raises(ConfigError, match="s3.secret_key.env: environment variable EF_TEST_SECRET is not set"):
        read_secret(SecretConfig(env="EF_TEST_SECRET"), "s3.secret_key", cfg)
    with pytest.raises(ConfigError, match="mqtt.password.file: cannot read .*missing"):
        read_secret(SecretConfig(file="missing"), "mqtt.password", cfg)


def test_the_command_reports_a_bad_config_as_one_line_per_problem_and_exit_78(tmp_path):
    bad = tmp_path / "bridge.yaml"
    bad.write_text(MINIMAL + "outbox: {max_bytes: 0}\n")
    r = subprocess.run([sys.executable, "-m", "edgefilter", "bridge", "-c", str(bad)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 78
    assert r.stderr.strip() == f"edgefilter: config error: {bad}:4: outbox.max_bytes: must be at least 1, got 0"


def test_a_missing_password_variable_stops_the_command_with_exit_78(tmp_path):
    cfg = tmp_path / "bridge.yaml"
    cfg.write_text(MINIMAL + "mqtt: {username: u, password: {env: EF_TEST_UNSET_VARIABLE}}\nmetrics: {bind: null}\n")
    r = subprocess.run([sys.executable, "-m", "edgefilter", "bridge", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=60, env={k: v for k, v in os.environ.items()
                                                   if k != "EF_TEST_UNSET_VARIABLE"})
    assert r.returncode == 78, r.stderr
    assert "mqtt.password.env: environment variable EF_TEST_UNSET_VARIABLE is not set" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_reference_in_docs_fleet_is_current():
    from edgefilter.bridge.config import reference_markdown
    from edgefilter.bridge.metrics import reference_markdown as metrics_markdown
    doc = (ROOT / "docs" / "fleet.md").read_text()
    assert reference_markdown() in doc, "regenerate: python3 -m edgefilter.bridge.config"
    assert metrics_markdown() in doc, "regenerate: python3 -m edgefilter.bridge.metrics"


def test_the_bridge_unit_passes_systemd_analyze(tmp_path):
    from test_systemd import MAX_EXPOSURE, systemd_analyze
    text = (ROOT / "systemd" / "edgefilter-bridge.service").read_text()
    assert "ExecStart=/opt/edgefilter/bin/edgefilter bridge -c /etc/edgefilter-bridge/bridge.yaml" in text
    unit = tmp_path / "edgefilter-bridge.service"
    unit.write_text(text.replace("ExecStart=/opt/edgefilter/bin/edgefilter ", f"ExecStart={sys.executable} "))
    verify = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "edgefilter-bridge.service" not in verify.stderr, verify.stderr
    security = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
                              capture_output=True, text=True, timeout=60)
    exposure = float(security.stdout.rsplit("Overall exposure level for edgefilter-bridge.service: ", 1)[1].split()[0])
    assert exposure <= MAX_EXPOSURE
