"""What an operator meets on day one: the HTTP endpoint (/metrics, /healthz, /readyz), health budgets, the
status line, journald priorities and JSON logs, faulthandler, exit statuses, --version, ${VAR} and credential
substitution, the base install without onnxruntime/usearch/OpenCV, and model files as package data."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from benchmarks.stack_dump_race import CHILD as STACK_DUMP_CHILD
from edgefilter import cli
from edgefilter.clock import FakeClock
from edgefilter.config import BackoffConfig, SourceConfig, parse_config
from edgefilter.endpoint import Endpoint
from edgefilter.errors import (EXIT_CONFIG, EXIT_DATAERR, EXIT_ERROR, EXIT_NOINPUT, EXIT_UNAVAILABLE, EXIT_USAGE,
                               ConfigError, MessageError, ModelError, PublishError, ReferenceError_, SourceError,
                               StateError)
from edgefilter.health import SourceWatch, StatusLine, reconnect_budget_s
from edgefilter.logs import JsonFormatter, TextFormatter, setup_logging, stream_is_journal
from edgefilter.metrics import Metrics
from conftest import free_port, wait_for
from test_client import Server, frame_parts

ROOT = Path(__file__).resolve().parent.parent


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def python_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "INVOCATION_ID")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# --------------------------------------------------------------------------- the endpoint


@pytest.fixture
def endpoint():
    metrics = Metrics(CollectorRegistry())
    metrics.add_runtime_collectors()
    metrics.init_source("cam1")
    state = {"reasons": [], "ready": False}
    ep = Endpoint(f"127.0.0.1:{free_port()}", metrics.registry, lambda: list(state["reasons"]),
                  lambda: state["ready"])
    ep.start()
    yield f"http://127.0.0.1:{ep.port}", state
    ep.stop()


def test_metrics_have_process_series_and_no_created_series(endpoint):
    url, _ = endpoint
    status, ctype, body = get(url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert "edgefilter_frames_captured_total{source=\"cam1\"} 0.0" in body
    for series in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert re.search(rf"^{series}\b", body, re.M), f"{series} missing"
    assert "_created" not in body
    # Ratios are named *_ratio (Prometheus naming): the share of frames kept is 0-1.
    assert "edgefilter_drift_keep_ratio" in body and "keep_rate" not in body
    req = urllib.request.Request(url + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert r.read().decode().rstrip().endswith("# EOF")


def test_healthz_readyz_and_404(endpoint):
    url, state = endpoint
    assert get(url + "/readyz")[0] == 503
    assert get(url + "/healthz") == (200, "application/json", '{"status": "ok"}\n')
    state["reasons"] = ["source door: down with no reconnect attempt for 71 s (budget 51 s)"]
    status, ctype, body = get(url + "/healthz")
    assert status == 503 and ctype == "application/json"
    assert json.loads(body) == {"status": "unhealthy", "reasons": state["reasons"]}
    state["ready"] = True
    assert get(url + "/readyz")[0] == 200
    for path in ("/", "/metrics/", "/health", "/healthz/x"):
        assert get(url + path)[0] == 404, path


def test_endpoint_bind_in_use_is_a_publish_error():
    port = free_port()
    first = Endpoint(f"127.0.0.1:{port}", CollectorRegistry(), lambda: [], lambda: True)
    try:
        with pytest.raises(PublishError, match=rf"metrics.bind 127.0.0.1:{port}: cannot listen"):
            Endpoint(f"127.0.0.1:{port}", CollectorRegistry(), lambda: [], lambda: True)
    finally:
        first.stop()


# --------------------------------------------------------------------------- health budgets and status line


@dataclass
class CaptureState:
    """The three facts SourceWatch reads from a Capture."""

    name: str
    cfg: SourceConfig
    up: bool = False
    finished: bool = False


def test_a_down_source_is_healthy_while_it_keeps_reconnecting_within_its_budget():
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    cfg = SourceConfig(name="door", url="rtsp://cam/1", stall_s=2.0, open_timeout_s=3.0, read_timeout_s=1.0,
                       backoff=BackoffConfig(initial_s=0.5, max_s=10.0, jitter=0.2))
    budget = reconnect_budget_s(cfg)
    assert budget == pytest.approx(10.0 * 1.2 + 3.0 + 1.0 + 2.0 + 5.0)
    door = CaptureState("door", cfg)
    watch = SourceWatch(metrics, clock)
    watch.update([door])
    for _ in range(5):  # an attempt (error, then reconnect) every budget - 1 s: always healthy
        clock.advance(budget - 1)
        metrics.source_errors.labels(source="door").inc()
        assert watch.problems([door]) == []
    clock.advance(budget + 1)  # the capture stopped trying
    (problem,) = watch.problems([door])
    assert problem.startswith("source door: down with no reconnect attempt for") and f"budget {budget:.0f} s" in problem
    metrics.source_reconnects.labels(source="door").inc()
    assert watch.problems([door]) == []
    door.finished = True  # a source that ended (or was given up, logged) is no reason to restart
    clock.advance(10 * budget)
    assert watch.problems([door]) == []


def test_status_line_counts_per_source_since_the_last_line(caplog):
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry())
    for name in ("a", "b"):
        metrics.init_source(name)
    line = StatusLine(metrics, ["a", "b"], clock)
    caps = [CaptureState("a", SourceConfig(name="a", url="x"), up=True),
            CaptureState("b", SourceConfig(name="b", url="y"))]
    metrics.frames_captured.labels(source="a").inc(100)
    metrics.frames_kept.labels(source="a").inc(3)
    metrics.drop("a", "backpressure", 7)
    metrics.drop("a", "dark", 2)
    clock.advance(30)
    assert line.maybe_log(60, caps) is None
    clock.advance(30)
    with caplog.at_level(logging.INFO, logger="edgefilter.status"):
        text = line.maybe_log(60, caps)
    assert text == "last 60 s: a (up): 100 in, 3 kept, 9 dropped; b (down): 0 in, 0 kept, 0 dropped"
    assert [r.getMessage() for r in caplog.records] == [text]
    metrics.frames_captured.labels(source="a").inc(5)
    clock.advance(60)
    assert line.maybe_log(60, caps).startswith("last 60 s: a (up): 5 in, 0 kept, 0 dropped")


# --------------------------------------------------------------------------- logs


def record(level: int, msg: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("edgefilter.x", level, __file__, 1, msg, None, exc_info)


def test_journal_priorities_on_every_line_and_json_lines():
    text = TextFormatter(journal=True)
    assert text.format(record(logging.WARNING, "camera lost")) == "<4>WARNING edgefilter.x: camera lost"
    assert text.format(record(logging.DEBUG, "d")).startswith("<7>")
    lines = text.format(record(logging.ERROR, "failed", exc=True)).split("\n")
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert not TextFormatter(journal=False).format(record(logging.ERROR, "x")).startswith("<")
    out = JsonFormatter(journal=False).format(record(logging.ERROR, "failed", exc=True))
    obj = json.loads(out)
    assert obj["level"] == "error" and obj["logger"] == "edgefilter.x" and obj["message"] == "failed"
    assert "ValueError: boom" in obj["exc"]
    assert JsonFormatter(journal=True).format(record(logging.INFO, "x")).startswith('<6>{"ts": ')


def test_prefix_only_when_stderr_is_the_journal_stream(tmp_path):
    with open(tmp_path / "log", "w") as f, open(tmp_path / "other", "w") as g:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stream_is_journal(f, env)
        assert not stream_is_journal(g, env)  # stderr redirected elsewhere: no prefixes
        assert not stream_is_journal(f, {})
        assert not stream_is_journal(f, {"JOURNAL_STREAM": "garbage"})
        assert not stream_is_journal(io.StringIO(), env)


def test_setup_logging_replaces_its_own_handler_only():
    root = logging.getLogger()
    before = list(root.handlers)
    buf1, buf2 = io.StringIO(), io.StringIO()
    try:
        setup_logging("info", "json", buf1)
        h2 = setup_logging("warning", "text", buf2)
        ours = [h for h in root.handlers if getattr(h, "_edgefilter", False)]
        assert ours == [h2]
        logging.getLogger("edgefilter.test").warning("hello")
        assert buf1.getvalue() == "" and "WARNING edgefilter.test: hello" in buf2.getvalue()
    finally:
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)


def test_service_logs_journal_priorities_status_lines_health_and_a_stack_on_sigabrt(tmp_path):
    """The real daemon as systemd runs it: stderr is the journal stream; a dead camera reconnects."""
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        sources:
          - name: demo
            url: demo://?seed=2&width=320&height=180
            realtime: true
          - name: door
            url: tcp://127.0.0.1:{free_port()}
            open_timeout_s: 1
            backoff: {{initial_s: 0.2, max_s: 0.5}}
        model: {{path: {ROOT / 'models' / 'efficientnet_lite0.onnx'}}}
        filter: {{regional: false}}
        publish: {{bind: tcp://127.0.0.1:{free_port()}}}
        metrics: {{bind: 127.0.0.1:{port}}}
        log: {{status_interval_s: 0.5}}
        """))
    log_path = tmp_path / "journal"
    with open(log_path, "wb") as journal:
        st = os.fstat(journal.fileno())
        proc = subprocess.Popen([sys.executable, "-m", "edgefilter", "run", "-c", str(cfg)], stdout=journal,
                                stderr=journal, env=python_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    try:
        url = f"http://127.0.0.1:{port}"

        def answers(path: str, status: int) -> bool:
            try:
                return get(url + path)[0] == status
            except OSError:
                return False

        assert wait_for(lambda: answers("/readyz", 200), 60), log_path.read_text(errors="replace")
        # wait for what is asserted below: under load the dead camera's first failure can come late
        assert wait_for(lambda: re.search(r"edgefilter\.status: last .*demo \(up\).*door \(down\)",
                                          log_path.read_text(errors="replace")), 30)
        assert wait_for(lambda: "WARNING edgefilter.capture: source 'door'" in log_path.read_text(errors="replace"), 30)
        # The camera is down but the capture keeps trying: healthy.
        status, _, body = get(url + "/healthz")
        assert status == 200, body
        proc.send_signal(signal.SIGABRT)  # what systemd's watchdog sends
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log_path.read_text(errors="replace")
    assert proc.returncode == -signal.SIGABRT, text[-3000:]
    ours = [line for line in text.splitlines() if re.match(r"<\d>(DEBUG|INFO|WARNING|ERROR|CRITICAL) edgefilter", line)]
    assert any(line.startswith("<6>INFO edgefilter.daemon: ready") for line in ours)
    assert any(line.startswith("<4>WARNING edgefilter.capture: source 'door'") for line in ours)
    assert any(re.match(r"<6>INFO edgefilter\.status: last \d+ s: demo \(up\): \d+ in, \d+ kept, \d+ dropped; "
                        r"door \(down\): 0 in", line) for line in ours)
    # faulthandler: every thread's Python stack, so a watchdog kill shows where the pipeline hung.
    assert "Fatal Python error: Aborted" in text and text.count("Thread 0x") >= 3


@pytest.mark.parametrize("attempt", range(3))
def test_sigabrt_dumps_every_thread_even_while_threads_end(attempt):
    # faulthandler's own SIGABRT dump walked the thread list inside the signal handler and crashed (SIGSEGV,
    # no stack) when a thread was ending at that moment: the watchdog's kill must end in SIGABRT with the stacks.
    # the stack-dump benchmark's child: its threads come and go as the metrics endpoint's request threads do
    proc = subprocess.Popen([sys.executable, "-c", STACK_DUMP_CHILD.format(root=str(ROOT)), "edgefilter"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env())
    try:
        assert proc.stdout.readline() == "up\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, err[-3000:])
    assert err.startswith("Fatal Python error: Aborted (SIGABRT: the service watchdog, or an abort)"), err[:500]
    assert "in waiting_for_a_frame_that_never_comes" in err and err.count("Thread 0x") >= 4, err[-3000:]


# --------------------------------------------------------------------------- command line


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgefilter", *args], capture_output=True, text=True, timeout=120,
                          env=python_env(**env))


@pytest.mark.parametrize("args", [["bogus"], ["run", "--nope"], ["subscribe"], ["reference", "build"], []])
def test_usage_errors_exit_64(args):
    proc = run_cli(*args)
    assert proc.returncode == EXIT_USAGE == 64, proc.stderr
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_version_names_the_default_model():
    card = json.loads((ROOT / "models" / "efficientnet_lite0_regions.json").read_text())
    proc = run_cli("--version")
    assert proc.returncode == 0
    from edgefilter import __version__
    assert proc.stdout == f"edgefilter {__version__}\ndefault model {card['id']}\n"


def test_readme_exit_status_table_matches_the_code():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- exit-statuses -->")[1].split("<!-- /exit-statuses -->")[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M))
    assert set(rows) == {str(c) for c in (0, EXIT_ERROR, EXIT_USAGE, EXIT_DATAERR, EXIT_NOINPUT, EXIT_UNAVAILABLE,
                                         EXIT_CONFIG, 130)}
    for exc in (ConfigError("x"), ModelError("x"), PublishError("x"), SourceError("x"), ReferenceError_("x"),
                MessageError("x"), StateError("x")):
        assert f"`{type(exc).__name__}`" in rows[str(cli._exit_status(exc))], type(exc).__name__
    assert "64" in (cli.__doc__ or "") and "65" in (cli.__doc__ or "")


def test_missing_extra_names_it_and_exits_69(tmp_path):
    """The base install: onnxruntime, usearch, OpenCV and prometheus_client cannot be imported."""
    proc = subprocess.run([sys.executable, str(write_blocker(tmp_path)), "run", "-c", str(ROOT / "config.yaml")],
                          capture_output=True, text=True, timeout=60, env=python_env())
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    assert "pip install 'edgefilter[cpu]'" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(write_blocker(tmp_path)), "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=python_env())
    assert proc.returncode == EXIT_UNAVAILABLE and "pip install 'edgefilter[report]'" in proc.stderr


def write_blocker(tmp_path: Path) -> Path:
    path = tmp_path / "base_install.py"
    path.write_text(textwrap.dedent("""\
        import runpy, sys
        BLOCKED = {"onnxruntime", "usearch", "cv2", "prometheus_client"}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        sys.argv = ["edgefilter"] + sys.argv[1:]
        runpy.run_module("edgefilter", run_name="__main__")
        """))
    return path


def test_subscribe_receives_frames_without_onnxruntime_usearch_or_opencv(tmp_path):
    server = Server()
    out = tmp_path / "kept"
    try:
        proc = subprocess.Popen([sys.executable, str(write_blocker(tmp_path)), "subscribe", "--connect",
                                 server.endpoint, "--out", str(out), "--count", "3", "--duration", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=python_env())
        server.wait_subscribed(2, timeout=30)
        for seq in (4, 5, 6):  # joined late: the first keeps (seq 0-3) went out before it connected
            server.send(frame_parts("cam1", seq))
        output, _ = proc.communicate(timeout=60)
    finally:
        server.close()
    assert proc.returncode == 0, output
    assert len(list((out / "cam1").glob("*.jpg"))) == 3
    assert "cam1: connected after the first 4 kept frame(s) (first seq received: 4)" in output
    assert "missing seq: none" in output


# --------------------------------------------------------------------------- ${VAR} and credentials


def test_environment_and_credential_substitution(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "door-password").write_text("s3cret\n")
    monkeypatch.setenv("CAM_USER", "viewer")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = parse_config(textwrap.dedent("""\
        sources:
          - name: door
            url: rtsp://${CAM_USER}:${credential:door-password}@10.0.0.2/s?x=$${literal}
        """))
    assert cfg.sources[0].url == "rtsp://viewer:s3cret@10.0.0.2/s?x=${literal}"


def test_unset_variables_and_missing_credentials_name_key_and_line(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEFILTER_TEST_UNSET", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        parse_config(textwrap.dedent("""\
            sources:
              - name: a
                url: rtsp://u:${EDGEFILTER_TEST_UNSET}@h/s
              - name: b
                url: rtsp://u:${credential:nope}@h/s
              - name: c
                url: ${not a name}
            """), file="cams.yaml")
    problems = [str(p) for p in err.value.problems]
    assert problems[0] == ("cams.yaml:3: sources[0].url: environment variable EDGEFILTER_TEST_UNSET is not set "
                           "(used as ${EDGEFILTER_TEST_UNSET})")
    assert problems[1].startswith("cams.yaml:5: sources[1].url: ${credential:nope}: cannot read")
    assert problems[2].startswith("cams.yaml:7: sources[2].url: ${not a name}: not an environment variable name")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match=r"needs \$CREDENTIALS_DIRECTORY, which is not set"):
        parse_config("sources:\n  - {name: b, url: 'rtsp://u:${credential:door}@h/s'}\n")


def test_shipped_config_has_drift_on_with_the_warm_up_reference():
    from edgefilter.config import load_config
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.drift.enabled and cfg.drift.reference is None
    assert cfg.log.status_interval_s is not None


# --------------------------------------------------------------------------- packaging


def test_every_model_file_is_package_data_found_by_importlib_resources(tmp_path):
    """Lay the package out as setuptools installs it (from pyproject's package-dir and package-data), then
    resolve every model file from outside any checkout."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    st = project["tool"]["setuptools"]
    assert "version" in project["project"]["dynamic"] and st["dynamic"]["version"] == {"attr": "edgefilter.__version__"}
    assert project["project"]["license"] == "Apache-2.0"
    site = tmp_path / "site"
    for package in st["packages"]:
        src = ROOT / st.get("package-dir", {}).get(package, package.replace(".", "/"))
        dst = site / package.replace(".", "/")
        dst.mkdir(parents=True)
        for f in src.glob("*.py"):
            shutil.copy(f, dst)
        for pattern in st["package-data"].get(package, []):
            for f in src.glob(pattern):
                (dst / f.name).symlink_to(f)  # the 13 MB graphs need not be copied to be found
    assert (site / "edgefilter" / "py.typed").exists()
    wanted = sorted(p.name for p in (ROOT / "models").iterdir() if p.suffix in (".onnx", ".json"))
    assert sorted(p.name for p in (site / "edgefilter" / "models").iterdir() if p.suffix in (".onnx", ".json")) == wanted
    script = ("import json, sys\nfrom edgefilter.config import Config, resolve_path\n"
              "print(json.dumps({n: str(resolve_path(Config(), 'models/' + n)) for n in sys.argv[1:]}))")
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", script, *wanted], capture_output=True, text=True, timeout=60,
                          cwd=work, env={**python_env(), "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert all(Path(path) == site / "edgefilter" / "models" / name for name, path in found.items()), found
