"""Shared fixtures. Tests generate every frame and video they use; nothing comes from ../shared."""
from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import pytest


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


_handed_out: set[int] = set()
_ports = random.Random()


def free_port() -> int:
    """A loopback TCP port nobody listens on, from outside the kernel's ephemeral range (below it as a rule).

    A port the kernel hands out for bind(0) is ephemeral: a server's own outgoing connections (SeaweedFS's
    filer dialling its master, say) can take it as their source port before the server binds it, and the
    server then dies with "address already in use" (CI, 2026-12-02). Ports below the range are never
    chosen as source ports; the ones this process already gave out are not given twice.
    """
    low, high = _ephemeral_range()
    first, end = (10000, low) if low > 11000 else (high + 1, 65536)
    if end - first < 1000:  # an odd range setting: anywhere unprivileged
        first, end = 1024, 65536
    for _ in range(1000):
        port = _ports.randrange(first, end)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {first}-{end - 1}, outside the ephemeral range")


def wait_for(pred, timeout: float = 5.0) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` passes; returns its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real SeaweedFS with an S3 gateway, once per session: it takes seconds to start (tests/bridgeservers.py)."""
    from bridgeservers import SeaweedFS
    store = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers():
    """A test that runs a command in this process (cli.main) installs edgefilter's root log handler on the
    stderr pytest gave that test; remove it afterwards, or a later test's log lines go to a closed file."""
    import logging

    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in [h for h in root.handlers if h not in before and getattr(h, "_edgefilter", False)]:
        root.removeHandler(handler)
