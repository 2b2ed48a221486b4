"""What the daemon's health and status line are made of: per-source reconnect budgets and frame counts.

A camera that is down is no reason to restart the daemon (the capture reconnects on its own), but a
capture that stopped trying is: a live source is healthy while it is up, or while its reconnect attempts
keep coming within its budget (the longest a capture may take between two attempts: the capped backoff
with jitter, plus the open, read and stall timeouts of one attempt).
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol

from .clock import Clock
from .config import SourceConfig
from .metrics import DROP_REASONS, Metrics

log = logging.getLogger("edgefilter.status")

_GRACE_S = 5.0  # scheduling slack on a loaded machine


class _Capture(Protocol):
    name: str
    cfg: SourceConfig

    @property
    def up(self) -> bool: ...

    @property
    def finished(self) -> bool: ...


def reconnect_budget_s(cfg: SourceConfig) -> float:
    """Longest expected time between two connection attempts of a source that is down."""
    b = cfg.backoff
    return b.max_s * (1.0 + b.jitter) + cfg.open_timeout_s + cfg.read_timeout_s + cfg.stall_s + _GRACE_S


class SourceWatch:
    """Remembers when each source last showed life: up, or an attempt (counted as an error or a reconnect)."""

    def __init__(self, metrics: Metrics, clock: Clock):
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._attempts: dict[str, float] = {}
        self._alive_at: dict[str, float] = {}

    def update(self, captures: list[_Capture]) -> None:
        now = self._clock.monotonic()
        with self._lock:
            for cap in captures:
                attempts = (self._metrics.value("edgefilter_source_reconnects_total", source=cap.name)
                            + self._metrics.value("edgefilter_source_errors_total", source=cap.name))
                if cap.up or cap.name not in self._alive_at or attempts != self._attempts.get(cap.name):
                    self._alive_at[cap.name] = now
                self._attempts[cap.name] = attempts

    def problems(self, captures: list[_Capture]) -> list[str]:
        """Sources down for longer than their budget without an attempt. Ended sources (a finished file,
        a source given up as unusable, logged at the time) are not a reason to restart."""
        self.update(captures)
        now = self._clock.monotonic()
        out = []
        with self._lock:
            for cap in captures:
                if cap.up or cap.finished:
                    continue
                silent, budget = now - self._alive_at[cap.name], reconnect_budget_s(cap.cfg)
                if silent > budget:
                    out.append(f"source {cap.name}: down with no reconnect attempt for {silent:.0f} s "
                               f"(budget {budget:.0f} s)")
        return out


class StatusLine:
    """Every ``interval`` seconds one info line: per source, frames in, kept and dropped since the last line."""

    def __init__(self, metrics: Metrics, names: list[str], clock: Clock):
        self._metrics = metrics
        self._names = names
        self._clock = clock
        self._last_at = clock.monotonic()
        self._last = {name: self._counts(name) for name in names}

    def _counts(self, name: str) -> tuple[float, float, float]:
        v = self._metrics.value
        dropped = sum(v("edgefilter_frames_dropped_total", source=name, reason=r) for r in DROP_REASONS)
        return (v("edgefilter_frames_captured_total", source=name), v("edgefilter_frames_kept_total", source=name),
                dropped)

    def maybe_log(self, interval: float, captures: list[_Capture]) -> str | None:
        now = self._clock.monotonic()
        if now - self._last_at < interval:
            return None
        seconds, self._last_at = now - self._last_at, now
        state = {c.name: "up" if c.up else "ended" if c.finished else "down" for c in captures}
        parts = []
        for name in self._names:
            counts = self._counts(name)
            got, kept, dropped = (int(a - b) for a, b in zip(counts, self._last[name]))
            self._last[name] = counts
            parts.append(f"{name} ({state.get(name, '?')}): {got} in, {kept} kept, {dropped} dropped")
        line = f"last {seconds:.0f} s: " + "; ".join(parts)
        log.info("%s", line)
        return line
