"""The keep budget (``filter.budget_per_minute``): adapt a source's threshold to a long-run keep rate."""
from __future__ import annotations

import math
from dataclasses import dataclass

# The keep rate is an exponentially weighted average with this time constant (seconds of frame time);
# the threshold moves by a factor e per ADAPT_TAU_S seconds while the rate is e times off target, so it
# settles in about ten minutes and does not chase single events.
RATE_TAU_S = 120.0
ADAPT_TAU_S = 600.0
RATE_WARMUP_S = 30.0  # no adaptation before this much frame time has been seen


@dataclass
class Budget:
    """Exponentially weighted keep rate of one source (keeps per second of frame time)."""

    count: float = 0.0
    weight: float = 0.0
    last_ts: float | None = None

    def update(self, ts: float, kept: bool) -> float | None:
        """Account one frame; return the seconds elapsed since the last one (None on the first)."""
        if self.last_ts is None:
            self.last_ts = ts
            self.count += float(kept)
            return None
        dt = max(0.0, ts - self.last_ts)
        self.last_ts = max(self.last_ts, ts)
        decay = math.exp(-dt / RATE_TAU_S)
        self.count = self.count * decay + float(kept)
        self.weight = self.weight * decay + dt
        return dt

    def rate_per_minute(self) -> float | None:
        return 60.0 * self.count / self.weight if self.weight > 0 else None

    def adapt(self, threshold: float, ts: float, kept: bool, per_minute: float | None,
              lowest: float, highest: float) -> float:
        """Account one frame and return the new threshold: a multiplicative (log-space integral)
        controller, so keeping too often raises the threshold and too rarely lowers it."""
        dt = self.update(ts, kept)
        if per_minute is None or dt is None or dt == 0.0 or self.weight < RATE_WARMUP_S:
            return threshold
        rate = self.rate_per_minute() or 0.0
        err = max(-2.0, min(2.0, math.log((rate + 0.01 * per_minute) / per_minute)))
        return min(max(threshold * math.exp(err * dt / ADAPT_TAU_S), lowest), highest)
