"""Injected time, so tests can drive timeouts, windows and pacing without sleeping."""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock Unix seconds (timestamps in messages)."""

    def monotonic(self) -> float:
        """Monotonic seconds (intervals, timeouts, latency)."""

    def sleep(self, seconds: float) -> None:
        """Wait (a fake clock advances instead)."""


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (``advance``) or when slept on."""

    def __init__(self, start: float = 1_700_000_000.0):
        self._t = start
        self._m = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._t

    def monotonic(self) -> float:
        with self._lock:
            return self._m

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds
            self._m += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
