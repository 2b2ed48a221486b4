"""sd_notify over a real AF_UNIX datagram socket: the exact bytes systemd would read."""
from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from edgefilter.clock import FakeClock
from edgefilter.notify import Notifier


@pytest.fixture
def listener(tmp_path):
    """A bound datagram socket standing in for systemd's notification socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def recv_all(sock: socket.socket) -> list[bytes]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


def test_exact_datagrams(listener):
    path, sock = listener
    clock = FakeClock()
    clock.advance(12.3456789)
    n = Notifier({"NOTIFY_SOCKET": path}, clock)
    assert n.enabled
    assert n.ready("listening on tcp://127.0.0.1:5556")
    assert n.watchdog()
    assert n.reloading()
    assert n.ready()
    assert n.status("2 sources up")
    assert n.stopping()
    assert n.extend_timeout(90)
    assert recv_all(sock) == [
        b"READY=1\nSTATUS=listening on tcp://127.0.0.1:5556",
        b"WATCHDOG=1",
        b"RELOADING=1\nMONOTONIC_USEC=12345678",
        b"READY=1",
        b"STATUS=2 sources up",
        b"STOPPING=1",
        b"EXTEND_TIMEOUT_USEC=90000000",
    ]
    n.close()


def test_status_newlines_cannot_inject_assignments(listener):
    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": path}, FakeClock())
    n.status("bad\nREADY=1")
    assert sock.recv(4096) == b"STATUS=bad READY=1"


def test_reloading_uses_clock_monotonic_by_default(listener):
    import time

    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = sock.recv(4096).split(b"\n")
    assert first == b"RELOADING=1"
    usec = int(second.removeprefix(b"MONOTONIC_USEC="))
    assert before <= usec <= after


def test_abstract_socket_name():
    name = f"edgefilter-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name}, FakeClock())
        assert n.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"},
                                     {"NOTIFY_SOCKET": "@"}])
def test_no_socket_is_a_noop(environ):
    n = Notifier(environ, FakeClock())
    assert not n.enabled
    assert n.watchdog_interval() is None
    assert n.ready() is False
    assert n.watchdog() is False
    assert n.stopping() is False


def test_send_failure_never_raises_and_logs_once(tmp_path, caplog):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}, FakeClock())
    with caplog.at_level(logging.DEBUG, logger="edgefilter.notify"):
        assert n.ready() is False
        assert n.watchdog() is False
        assert n.stopping() is False
    failures = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG


def test_watchdog_interval_is_half_of_watchdog_usec(listener):
    path, _ = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}
    assert Notifier(env, FakeClock()).watchdog_interval() == 15.0
    assert Notifier(env, FakeClock()).watchdog_timeout() == 30.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}, FakeClock()).watchdog_interval() == 15.0
    # Meant for another process (e.g. inherited by a child): not ours to pet.
    assert Notifier({**env, "WATCHDOG_PID": "1"}, FakeClock(), pid=4242).watchdog_interval() is None
    assert Notifier({**env, "WATCHDOG_USEC": "garbage"}, FakeClock()).watchdog_interval() is None
    assert Notifier({**env, "WATCHDOG_USEC": "0"}, FakeClock()).watchdog_interval() is None
    assert Notifier({"NOTIFY_SOCKET": path}, FakeClock()).watchdog_interval() is None
    # Without a socket a watchdog cannot be petted at all.
    assert Notifier({"WATCHDOG_USEC": "30000000"}, FakeClock()).watchdog_interval() is None
