"""Scenes a source has already shown: the pixels of its latest keeps and of what it saw lately.

An exposure step, a daylight ramp or flicker moves an embedding past the threshold without changing
anything in front of the camera; the same table state coming back under another exposure, or a signer
standing in the same place after the lights changed, is then "novel" to the embedding. It is not novel
to the pixels: :func:`view.change` fits gain and offset and tolerates shake, and finds (almost) nothing.
So a frame is *known* when at most KNOWN_PIXELS of its change mask differ from a remembered thumbnail;
a known frame opens no event and is never kept (benchmarks/QUALITY.md, findings 18 and 19). When an event
closes, the frame to keep is compared as a view (``shown``): change cut by the image border counts a
quarter, as in its best view. A table state that came back with a person's shadow along the border was
kept again; a sliver at the border is no picture to label (finding 20).

Only the NEAREST remembered frames of each memory are compared (each comparison, a change test, costs
~0.15 ms), the nearest by a small exposure-normalised thumbnail: nearest by embedding were the frames
under the same exposure, and a shadow seen a hundred times before was not among them. Of those, only the ones
whose exposure-normalised thumbnail correlates with the frame's at SAME_SCENE or more: at night in the rain the
change mask (half the contrast, a noise level lifted by the drops) found no change between a PTZ camera's table and
the road it panned to, whose thumbnails correlated at 0.32 and less, and the road was never kept while the camera
rested on it; every match on the 62 fixed-camera streams of the corpus correlated at 0.65 or more (a room through
haze), most at 0.83 or more (benchmarks/QUALITY.md, finding 82).
"""
from __future__ import annotations

import collections

import cv2
import numpy as np

from .view import change, luma, textured

KNOWN_PIXELS = 23    # 1 % of the 64x36 change mask: a thing smaller than that is not a picture to label
KEPT_VIEWS = 64      # the latest keeps remembered (a state that comes back minutes later)
SEEN_EVERY_S = 0.5   # one ordinary (not novel) frame remembered per half second ...
SEEN_VIEWS = 120     # ... over the last minute (a hold replaying a signer's last second)
SEEN_AFTER_S = 2.0   # ... once they are this old
SAVED_SEEN = 8       # the latest of them a restart remembers: the scene as the daemon last saw it
NEAREST = 8          # frames of each memory compared per question, the nearest by signature
SAME_SCENE = 0.5     # the least signature correlation of a remembered frame that may know a frame (see above)
SIGNATURE_SIZE = (32, 18)  # (w, h) of the thumbnail that picks them


def signature(view: np.ndarray) -> np.ndarray:
    """A unit vector of the thumbnail, zero mean: exposure gain and offset do not move it."""
    s = cv2.resize(luma(view), SIGNATURE_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    s -= s.mean()
    return s / max(float(np.linalg.norm(s)), 1e-6)


def known_pixels(by_region: bool, view: np.ndarray | None, background: np.ndarray | None) -> int:
    """How many mask pixels a frame may differ from a remembered one and still be that scene. A frame novel
    by its region cells alone must also differ from it by at most half as much as from the scene before: a
    ball crossing a kept empty street differs from both by the same few pixels; a shadow seen before differs
    from what it was seen as by none."""
    if not by_region or view is None or background is None:
        return KNOWN_PIXELS
    return min(KNOWN_PIXELS, change(view, background).pixels // 2)


def _stacked(views: list[np.ndarray]) -> np.ndarray:
    """Thumbnails as one array to save; all by brightness when grey ones restored from an older state are among
    colour ones."""
    if len({w.shape for w in views}) > 1:
        views = [luma(w) for w in views]
    return np.stack(views)


class Known:
    """Per source: thumbnails (with their signatures) of the latest keeps and of frames seen lately."""

    def __init__(self) -> None:
        self._kept: collections.deque = collections.deque(maxlen=KEPT_VIEWS)
        self._seen: collections.deque = collections.deque(maxlen=SEEN_VIEWS)
        self._seen_ts = -np.inf

    def kept(self, view: np.ndarray | None, key: int = -1) -> None:
        """Remember a keep's thumbnail; ``key``: its key in the index (-1: none)."""
        if view is not None:
            self._kept.append((signature(view), view, key))

    def kept_views(self) -> tuple[np.ndarray, np.ndarray] | None:
        """((K, h, w) uint8, (K,) int64): the remembered keeps' thumbnails and index keys, oldest first (what
        persistence saves)."""
        if not self._kept:
            return None
        return _stacked([w for _, w, _ in self._kept]), np.array([k for _, _, k in self._kept], np.int64)

    def restore(self, views: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Remember saved keeps' thumbnails (and their index keys) again after a restart, oldest first."""
        keys = np.full(len(views), -1, np.int64) if keys is None or len(keys) != len(views) else keys
        for view, key in zip(views[-KEPT_VIEWS:], keys[-KEPT_VIEWS:]):
            self.kept(np.ascontiguousarray(view), int(key))

    def seen_views(self) -> np.ndarray | None:
        """(K, h, w) or (K, 3, h, w) uint8: the latest SAVED_SEEN frames remembered as seen, oldest first (what
        persistence saves besides the keeps; None: none)."""
        views = [w for _, _, w in list(self._seen)[-SAVED_SEEN:]]
        return _stacked(views) if views else None

    def restore_seen(self, views: np.ndarray) -> None:
        """Remember frames seen before a restart, as seen before anything after it. The scene the daemon stopped
        on may differ from its last keep by more than an exposure fit explains (a hazy room kept at dawn and left
        running into a bright, clipped noon: benchmarks/QUALITY.md, finding 78); what it last saw does not."""
        for view in views[-SAVED_SEEN:]:
            view = np.ascontiguousarray(view)
            self._seen.append((-np.inf, signature(view), view))

    def last_kept(self) -> np.ndarray | None:
        """The thumbnail of the latest keep (None before one with a thumbnail)."""
        return self._kept[-1][1] if self._kept else None

    def forget_keys(self) -> None:
        """The index was keyed anew: the remembered keeps no longer know their keys."""
        self._kept = collections.deque(((s, w, -1) for s, w, _ in self._kept), maxlen=KEPT_VIEWS)

    def view_of(self, key: int) -> np.ndarray | None:
        """The thumbnail of the remembered keep with this index key (None: not one of them)."""
        for _, view, k in reversed(self._kept):
            if k == key:
                return view
        return None

    def seen(self, ts: float, view: np.ndarray | None) -> None:
        if view is not None and ts - self._seen_ts >= SEEN_EVERY_S:
            self._seen.append((ts, signature(view), view))
            self._seen_ts = ts

    def knows(self, ts: float, view: np.ndarray | None, pixels: int = KNOWN_PIXELS, shown: bool = False) -> bool:
        """Whether this frame's pixels differ from a remembered frame's in at most ``pixels`` mask pixels,
        or with ``shown``, as a view (``view.Change.view``: cut by the border counts a quarter) (None view:
        cannot tell, False). Frames seen in the SEEN_AFTER_S before ``ts`` (the frame's, or
        its event's start) and since do not count: they are the change now under way (the hand that is
        putting a bottle down, a walker on the way in), not a scene shown before."""
        if view is None:
            return False
        sig = signature(view)
        return any(self._matches(memory, sig, view, pixels, shown) for memory in (self._kept, self._seen_before(ts)))

    def _seen_before(self, ts: float) -> list:
        return [(s, w) for t, s, w in self._seen if ts - t >= SEEN_AFTER_S]

    def saw(self, before_ts: float, view: np.ndarray | None) -> bool:
        """Whether this frame's pixels differ in at most KNOWN_PIXELS mask pixels from a frame seen SEEN_AFTER_S
        or more before ``before_ts`` (an event's start): a scene shown before that event, not a keep (an event's
        own keep is what a car that stopped in view looks like). None view: cannot tell, False."""
        if view is None:
            return False
        return self._matches(self._seen_before(before_ts), signature(view), view, KNOWN_PIXELS, False)

    @staticmethod
    def _matches(memory, sig: np.ndarray, view: np.ndarray, pixels: int, shown: bool) -> bool:
        if not memory:
            return False
        alike = np.stack([m[0] for m in memory]) @ sig
        for i in np.argsort(-alike)[:NEAREST]:
            if alike[i] < SAME_SCENE and textured(luma(view)):
                # and so are the rest, nearest first: another scene, whatever the mask says (a view with nothing to
                # see, a lens cap or a black night, has a signature of noise: the mask alone tells it)
                return False
            ch = change(view, memory[i][1])
            if (ch.view if shown else ch.pixels) <= pixels:
                return True
        return False
