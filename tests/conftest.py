"""Shared fixtures. Tests generate every frame and video they use; nothing comes from ../shared."""
from __future__ import annotations

import socket
import time

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
