"""Scenes a source has already shown: the pixels of its latest keeps and of what it saw lately.

An exposure step, a daylight ramp or flicker moves an embedding past the threshold without changing
anything in front of the camera; the same table state coming back under another exposure, or a signer
standing in the same place after the lights changed, is then "novel" to the embedding. It is not novel
to the pixels: :func:`view.change` fits gain and offset and tolerates shake, and finds (almost) nothing.
So a frame is *known* when at most KNOWN_PIXELS of its change mask differ from a remembered thumbnail;
a known frame opens no event and is never kept (benchmarks/QUALITY.md, finding 18).

Only the NEAREST remembered frames of each memory by embedding are compared: each comparison (a
change test) costs ~0.2 ms.
"""
from __future__ import annotations

import collections

import numpy as np

from .view import change

KNOWN_PIXELS = 23    # 1 % of the 64x36 change mask: a thing smaller than that is not a picture to label
KEPT_VIEWS = 64      # the latest keeps remembered (a state that comes back minutes later)
SEEN_EVERY_S = 0.5   # one ordinary (not novel) frame remembered per half second ...
SEEN_VIEWS = 120     # ... over the last minute (a hold replaying a signer's last second)
SEEN_AFTER_S = 2.0   # ... once they are this old
NEAREST = 8          # frames of each memory compared per question, the nearest by embedding


class Known:
    """Per source: thumbnails (with their unit embeddings) of the latest keeps and of frames seen lately."""

    def __init__(self) -> None:
        self._kept: collections.deque = collections.deque(maxlen=KEPT_VIEWS)
        self._seen: collections.deque = collections.deque(maxlen=SEEN_VIEWS)
        self._seen_ts = -np.inf

    def kept(self, vector: np.ndarray, view: np.ndarray | None) -> None:
        if view is not None:
            self._kept.append((vector, view))

    def seen(self, ts: float, vector: np.ndarray, view: np.ndarray | None) -> None:
        if view is not None and ts - self._seen_ts >= SEEN_EVERY_S:
            self._seen.append((ts, vector, view))
            self._seen_ts = ts

    def knows(self, ts: float, vector: np.ndarray, view: np.ndarray | None) -> bool:
        """Whether this frame's pixels look like a remembered frame's (None view: cannot tell, False).
        Frames seen in the last SEEN_AFTER_S do not count: they are the change now under way (the hand
        that is putting a bottle down), not a scene shown before."""
        if view is None:
            return False
        seen = [(v, w) for t, v, w in self._seen if ts - t >= SEEN_AFTER_S]
        return any(self._matches(memory, vector, view) for memory in (self._kept, seen))

    @staticmethod
    def _matches(memory, vector: np.ndarray, view: np.ndarray) -> bool:
        if not memory:
            return False
        near = np.argsort(-np.stack([v for v, _ in memory]) @ vector)[:NEAREST]
        return any(change(view, memory[i][1]).pixels <= KNOWN_PIXELS for i in near)
