"""Run `python -m edgefilter run` as a real process in tests, and read its metrics endpoint."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "efficientnet_lite0_regions.onnx"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class DaemonProcess:
    """The daemon as a child process with its log in a file; every wait is bounded."""

    def __init__(self, config: Path, metrics_port: int | None = None, cwd: Path | None = None):
        self.config = config
        self.metrics_port = metrics_port
        self.log_path = config.with_suffix(".log")
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edgefilter", "run", "-c", str(config)],
                                     stdout=self.log_file, stderr=subprocess.STDOUT, cwd=cwd or config.parent)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict:
        assert self.metrics_port is not None
        return scrape(self.metrics_port)

    def value(self, name: str, **labels) -> float:
        try:
            return metric(self.metrics(), name, **labels)
        except OSError:
            return float("nan")

    def wait_for(self, pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, f"daemon exited ({self.proc.returncode}) waiting for {what}:\n{self.log}"
            if pred():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{self.log}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log_file.close()
