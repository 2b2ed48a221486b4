"""Dependency-free sd_notify: tell systemd the daemon's state over ``$NOTIFY_SOCKET``.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to an
``AF_UNIX``/``SOCK_DGRAM`` socket whose address systemd puts in ``$NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``). Without that variable
every method is a no-op, so the daemon calls them unconditionally.

The unit uses ``Type=notify`` with ``ExecReload=kill -HUP $MAINPID`` rather than
``Type=notify-reload``: the latter needs systemd 253, and Debian 12 ships 252.
:meth:`Notifier.reloading` still sends ``RELOADING=1`` with ``MONOTONIC_USEC=``
(which ``notify-reload`` requires and older systemd ignores), so the unit can move
to ``notify-reload`` later without a code change. Either way, systemd shows the
unit as "reloading" from ``RELOADING=1`` until the next ``READY=1``.

The daemon's main loop sends ``WATCHDOG=1`` every :meth:`Notifier.watchdog_interval` only while the
pipeline makes progress (``Daemon._healthy``), so a stuck pipeline is killed and restarted by systemd
(``WatchdogSec=``).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

from .clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)


class Notifier:
    """Sends state notifications to systemd; silent when not run under ``Type=notify``.

    ``clock.monotonic()`` must be ``CLOCK_MONOTONIC`` (``time.monotonic`` on Linux):
    :meth:`reloading` reports it to systemd. Sending never raises: the daemon must
    not die because the service manager went away; the first failure is logged at
    debug level.
    """

    def __init__(self, environ: Mapping[str, str] = os.environ, clock: Clock = SYSTEM_CLOCK,
                 *, pid: int | None = None):
        self._clock = clock
        self._address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _watchdog_usec(environ, os.getpid() if pid is None else pid)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def enabled(self) -> bool:
        """True when systemd listens (``$NOTIFY_SOCKET`` is set and usable)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pets: half of ``$WATCHDOG_USEC`` (None: no watchdog)."""
        if self._watchdog_usec is None or not self.enabled:
            return None
        return self._watchdog_usec / 2e6

    def watchdog_timeout(self) -> float | None:
        """The service manager's watchdog timeout in seconds (None: no watchdog)."""
        interval = self.watchdog_interval()
        return None if interval is None else interval * 2

    # -- notifications
    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: publishing and metrics are up."""
        return self.send("READY=1", *([_status(status)] if status is not None else []))

    def reloading(self) -> bool:
        """A reload begins; follow it with :meth:`ready` when it is done (good or bad)."""
        usec = int(self._clock.monotonic() * 1_000_000)
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown begins (draining queues, saving state)."""
        return self.send("STOPPING=1", *([_status(status)] if status is not None else []))

    def watchdog(self) -> bool:
        """Pet the watchdog: the daemon is alive and making progress."""
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Free-form one-line status shown by ``systemctl status``."""
        return self.send(_status(text))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time in the current start/stop phase (e.g. a slow TensorRT build)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True when it was sent."""
        if self._address is None:
            return False
        data = "\n".join(lines).encode("utf-8")
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self._address)
            return True
        except OSError as exc:
            if not self._failed:  # once: a gone manager would otherwise flood the log
                self._failed = True
                log.debug("sd_notify to %r failed: %s", self._address, exc)
            return False

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _socket_address(value: str) -> str | bytes | None:
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode("utf-8")  # Linux abstract namespace
    if value:  # e.g. systemd 254's vsock: addresses; not needed beside cameras
        log.debug("unsupported NOTIFY_SOCKET %r; notifications disabled", value)
    return None


def _watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    # Same rules as sd_watchdog_enabled(3): WATCHDOG_PID, when set, must name us.
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            return None
    return usec


def _status(text: str) -> str:
    # One datagram line per assignment: a newline in the text would start a new key.
    return "STATUS=" + " ".join(str(text).split("\n"))
