"""The whole-image rule and its noise floor.

A frame is novel when the cosine distance of its embedding to the nearest kept frame exceeds the
threshold: the rule a user writes first, and the one that holds on footage nobody tuned on (exposure
swings, flicker, noise and a shaking camera move a whole-image embedding far less than a new thing).
The noise floor tells, inside an event, a scene that moves from one that is still.
"""
from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass

import numpy as np

# The noise floor is noise_floor_k x the median frame-to-frame cosine distance of a source's last
# FLOOR_WINDOW steps outside events (motion inside an event is what the floor must tell apart from
# noise; a busy stream would otherwise learn its own motion as noise and "settle" at once). Identical
# vectors (frames the pre-gate skipped) say nothing about noise and are left out. Never below FLOOR_MIN.
FLOOR_WINDOW = 300
FLOOR_MIN = 0.005


def is_novel(distance: float | None, threshold: float) -> bool:
    """The whole-image rule: nothing kept yet, or farther than the threshold from every kept frame."""
    return distance is None or distance > threshold


@dataclass
class Motion:
    """A source's frame-to-frame cosine distances: the noise floor that decides when a scene is still."""

    previous: np.ndarray | None = None
    steps: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=FLOOR_WINDOW))

    def step(self, vector: np.ndarray, learn: bool = True) -> float | None:
        """The distance moved since the previous frame; ``learn``: count it as noise (not inside an event)."""
        prev, self.previous = self.previous, vector
        if prev is None:
            return None
        d = max(0.0, float(1.0 - prev @ vector))
        if learn and d > 1e-7:
            self.steps.append(d)
        return d

    def floor(self, k: float) -> float:
        return max(FLOOR_MIN, k * float(np.median(self.steps))) if self.steps else FLOOR_MIN
