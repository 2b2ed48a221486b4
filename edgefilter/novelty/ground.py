"""Ground: where a moving camera's frames lie on what it shows, and what of it no kept frame shows.

A camera that moves (a PTZ camera panning, a drone or a camera on a vehicle that never stops) shows ground, not a
scene with things in it: each frame is a window on it, and a window no kept frame shows is a part of the ground the
kept pictures leave out. :class:`Ground` places every frame of a source on its ground by the shift of its thumbnail
against a *key* frame (:func:`view.phase_shift`, the phase correlation's peak, taken where :func:`view.holds`: it
leaves the scene's marks in place; the key moves on every KEY_STEP, so the error of a long flight grows per key, not
per frame), and remembers where the kept frames lie. An event in which the camera moved then keeps, each time its
newest frame no longer shows ground that its frames showed and no kept frame shows, the latest frame that shows all
of it and SOLID cells around it (:meth:`lost`): one frame about every view's width of travel, keeps overlapping by a
sliver, none over ground kept before (a drone's next leg, a PTZ camera's pan back). Kept once per ``max_hold_s``
instead, a camera flying at 160-240 px/s of 640 showed 0.86 of its ground and missed a scene in the view, and its
next legs kept views that mixed those it kept (benchmarks/QUALITY.md, finding 81).

Ground is measured in thumbnail pixels, counted in cells of CELL; what is left unshown counts where it is SOLID
cells thick (shake leaves slivers of a cell). Where no shift can be found (a view with nothing to see, a jump
past half the view) the camera is lost: the next frame begins a new *segment*. A segment is tied to an earlier one
where one of its frames shows where a frame kept on that one lies (:meth:`Ground._tie`, tried as the segment
begins and each time its key moves): the earlier keeps are placed on it and count again. So are the keeps saved
before a restart (:meth:`Ground.state`, :meth:`Ground.restore`): without them a PTZ camera restarted in its tour kept
every preset again, and a flight all of its ground (3-6 frames a restart; benchmarks/QUALITY.md, finding 82).
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import cv2
import numpy as np

from . import view as views
from .known import KNOWN_PIXELS

CELL = 4        # thumbnail pixels (16 of 640) a side of a cell of ground
SOLID = 3       # cells: ground left unshown counts only where it is this thick (shake leaves slivers)
KEY_STEP = 24   # thumbnail pixels (96 of 640): a frame this far from the key becomes the next key
KEPT_SPOTS = 256  # kept frames remembered per source
TIE_TRIES = 8   # kept frames of other segments a segment is tried against each time (0.3 ms each)
TIE_LIKE = 0.8  # the least correlation of the part two views both show, shifted, that ties them (see Ground._tie)
RESTING = 10    # frames in a row within REST_PX of the key: the camera rests (see Ground.step)
REST_PX = 2.0   # thumbnail pixels (8 of 640): shake moves a view about its key by up to 1.7
_SOLID_KERNEL = np.ones((SOLID, SOLID), np.uint8)
_AROUND_KERNEL = np.ones((2 * SOLID + 1, 2 * SOLID + 1), np.uint8)


@dataclass(frozen=True)
class Spot:
    """Where a frame lies on its source's ground: its top-left corner, in thumbnail pixels of ``segment``."""

    segment: int
    x: float
    y: float


class Ground:
    """One source's ground: where its frames lie (:meth:`step`, every frame) and its kept frames (:meth:`kept`)."""

    def __init__(self) -> None:
        self.segment = 0
        self.size: tuple[int, int] | None = None   # (w, h) of the thumbnails
        self._key: np.ndarray | None = None
        self._key_at: Spot | None = None
        self._last: tuple[np.ndarray, Spot] | None = None
        self._resting = 0       # frames in a row, the latest last, that lay within REST_PX of the same key
        # kept frames: where they lie, and their brightness thumbnail (to tie a later segment to theirs)
        self._kept: collections.deque[tuple[Spot, np.ndarray | None]] = collections.deque(maxlen=KEPT_SPOTS)
        self._tie_next = 0      # where the next tries begin among the kept frames of other segments

    def step(self, view: np.ndarray | None, unchanged: bool = False) -> Spot | None:
        """Place the newest frame (its view thumbnail); None without one. ``unchanged``: the pre-gate found it the
        same as the frame embedded last, shake aside (it carries that frame's embedding): while the camera rests
        (RESTING frames in a row lay within REST_PX of the key) it lies where the frame before did, and costs nothing
        (a fixed camera's frames mostly are; placing one costs 0.4-0.5 ms). A camera that pans slowly moves as little
        as shake between two frames, and is placed frame by frame: at 30 fps a flight's picks moved by up to 14
        frames when its unchanged frames were taken to lie where the frame before did."""
        if view is None:
            return None
        h, w = views.luma(view).shape
        if self._key is None or self.size != (w, h):
            return self._begin(view, (w, h))
        if unchanged and self._resting >= RESTING:
            return self._last[1]
        key_at = self._key_at
        got = views.phase_shift(view, self._key)
        far = max(abs(got[0]), abs(got[1])) if got is not None else math.inf
        if far < 1.0 or (got is not None and views.holds(view, self._key, got, pixels=KNOWN_PIXELS)):
            spot = Spot(key_at.segment, key_at.x - got[0], key_at.y - got[1])  # under a pixel: shake, nothing to tell
        elif far < views.MOVE_PX:
            spot = key_at  # a thing moved before the scene, and the camera did not
        else:
            # the camera moved on too far from the key (through a change of the scene, or past half the view): the
            # frame before, shifted, may show where; else it is lost
            last_view, last_at = self._last
            near = views.shift_of(view, last_view, pixels=KNOWN_PIXELS)
            if near is None:
                return self._begin(view, (w, h))
            spot = Spot(last_at.segment, last_at.x - near[0], last_at.y - near[1])
            self._key, self._key_at = view, spot
        if math.hypot(spot.x - self._key_at.x, spot.y - self._key_at.y) >= KEY_STEP:
            self._key, self._key_at = view, spot
        if self._key_at is not key_at:
            self._tie(view, spot)
        near_key = self._key_at is key_at and math.hypot(spot.x - key_at.x, spot.y - key_at.y) < REST_PX
        self._resting = self._resting + 1 if near_key else 0
        self._last = (view, spot)
        return spot

    def _begin(self, view: np.ndarray, size: tuple[int, int]) -> Spot:
        if self._key is not None:
            self.segment += 1
        self.size = size
        spot = Spot(self.segment, 0.0, 0.0)
        self._key, self._key_at, self._last, self._resting = view, spot, (view, spot), 0
        self._tie(view, spot)
        return spot

    def _tie(self, view: np.ndarray, at: Spot) -> None:
        """Tie the current segment to an earlier one where ``view`` (placed at ``at``) shows where a frame kept on
        that one lies: that segment's keeps are placed on this one. TIE_TRIES kept frames a call, taken in turn."""
        others = [(s, v) for s, v in self._kept if s.segment != at.segment and v is not None]
        if not others:
            return
        first = self._tie_next % len(others)
        frame = views.luma(view)
        h, w = frame.shape
        for j in range(min(TIE_TRIES, len(others))):
            spot, kept_view = others[(first + j) % len(others)]
            got = views.phase_shift(frame, kept_view)
            # the parts both show, shifted, must look alike; the change mask (view.holds) cannot say so: a flight's
            # views at two speeds differ by their blur, and it saw change where the two correlated at 0.98; through haze
            # (45 % of the contrast left) it saw none between two presets of a PTZ tour whose parts correlated at 0.28.
            # The same ground, at any speed, night or haze, 0.85-1.00; other ground at most 0.42 (finding 82)
            if (got is not None and abs(got[0]) <= w // 2 and abs(got[1]) <= h // 2
                    and _correlation(frame, kept_view, got) >= TIE_LIKE):
                # the view lies at the kept frame's place less the shift, on that segment: the same ground
                dx, dy = at.x - (spot.x - got[0]), at.y - (spot.y - got[1])
                self._kept = collections.deque(
                    ((Spot(at.segment, s.x + dx, s.y + dy), v) if s.segment == spot.segment else (s, v)
                     for s, v in self._kept), maxlen=KEPT_SPOTS)
                return
        self._tie_next = first + TIE_TRIES

    def kept(self, spot: Spot | None, view: np.ndarray | None) -> None:
        """A frame placed at ``spot`` (its view thumbnail ``view``) was kept. Its brightness thumbnail is what a later
        segment is tied by; a keep within KEY_STEP of an earlier one of its segment takes that one's place in this (a
        fixed camera's keeps all lie at one place: one thumbnail, not 256)."""
        if spot is None or view is None:
            return
        self._kept = collections.deque(
            ((s, None) if v is not None and s.segment == spot.segment and math.hypot(s.x - spot.x, s.y - spot.y)
             < KEY_STEP else (s, v) for s, v in self._kept), maxlen=KEPT_SPOTS)
        self._kept.append((spot, np.ascontiguousarray(views.luma(view))))

    def state(self) -> dict[str, np.ndarray]:
        """What :meth:`restore` takes, to save (empty when nothing was kept): the kept frames' places (segment, x, y),
        which of them hold a thumbnail, and those thumbnails."""
        if not self._kept:
            return {}
        return {"spots": np.array([(s.segment, s.x, s.y) for s, _ in self._kept], np.float64),
                "viewed": np.array([v is not None for _, v in self._kept]),
                "views": np.stack([v for _, v in self._kept if v is not None])}

    def restore(self, spots: np.ndarray, viewed: np.ndarray, thumbnails: np.ndarray) -> None:
        """Kept frames saved by :meth:`state` (before a restart): each saved segment becomes one below every segment
        of this run, tied to it where a frame shows one of its keeps."""
        ids = {seg: -1 - i for i, seg in enumerate(sorted({int(s) for s in spots[:, 0]}))}
        shown = iter(thumbnails)
        for (seg, x, y), has in zip(spots, viewed):
            self._kept.append((Spot(ids[int(seg)], float(x), float(y)), next(shown) if has else None))

    def tracked(self, spots: list[Spot | None]) -> bool:
        """Whether frames placed at ``spots`` all lie on the ground of the current segment (the camera was not lost
        among them): what they show is known."""
        return bool(spots) and all(s is not None and s.segment == self.segment for s in spots)

    def lost(self, spots: list[Spot | None]) -> int | None:
        """For an event's frames placed at ``spots`` (oldest first): when the newest no longer shows ground that
        the others showed and no kept frame shows (SOLID cells of it), the index of the latest frame that shows
        all of that ground and SOLID cells around it (else all of it, else the most); else None."""
        newest = spots[-1] if spots else None
        if newest is None:
            return None
        return self._showing(spots[:-1], newest.segment, newest)

    def unshown(self, spots: list[Spot | None]) -> int | None:
        """The index of the latest of the frames placed at ``spots`` that shows the most of the ground that they
        show and no kept frame shows (SOLID cells of it); None where they show none (or were not placed)."""
        newest = spots[-1] if spots else None
        return None if newest is None else self._showing(spots, newest.segment)

    def _showing(self, spots: list[Spot | None], segment: int, newest: Spot | None = None) -> int | None:
        mine = [(i, s) for i, s in enumerate(spots) if s is not None and s.segment == segment]
        if not mine or self.size is None:
            return None
        grid, box = self._grid([s for _, s in mine] + ([newest] if newest is not None else []))
        for _, s in mine:
            grid[self._cells(s, box)] = 1
        shown = grid.copy()  # what the frames show, kept or not
        for s, _ in self._kept:
            if s.segment == segment:
                grid[self._cells(s, box)] = 0
        if newest is not None:
            grid[self._cells(newest, box)] = 0
        left = cv2.morphologyEx(grid, cv2.MORPH_OPEN, _SOLID_KERNEL)
        count = int(left.sum())
        if count == 0:
            return None
        # the latest frame that shows it and SOLID cells around it (where the frames showed them): keeps overlap by
        # what is too thin to count, and leave no strip between them that never would (a leg's end a sliver past
        # the last keep left 10 px of 640 unshown)
        around = cv2.dilate(left, _AROUND_KERNEL) & shown
        whole = int(around.sum())
        for i, s in reversed(mine):
            if int(around[self._cells(s, box)].sum()) == whole:
                return i
        best, most = None, 0
        for i, s in reversed(mine):
            shows = int(left[self._cells(s, box)].sum())
            if shows == count:
                return i
            if shows > most:
                best, most = i, shows
        return best

    def _grid(self, spots: list[Spot]) -> tuple[np.ndarray, tuple[int, int]]:
        """A grid of cells (zeros) over the windows at ``spots``, with its top-left cell."""
        w, h = self.size
        x0 = min(math.floor(s.x / CELL) for s in spots)
        y0 = min(math.floor(s.y / CELL) for s in spots)
        x1 = max(math.ceil((s.x + w) / CELL) for s in spots)
        y1 = max(math.ceil((s.y + h) / CELL) for s in spots)
        return np.zeros((y1 - y0, x1 - x0), np.uint8), (x0, y0)

    def _cells(self, s: Spot, box: tuple[int, int]) -> tuple[slice, slice]:
        """The cells of a grid (top-left cell ``box``) whose centres the window at ``s`` shows."""
        w, h = self.size
        x0, y0 = box
        i0, i1 = math.ceil(s.x / CELL - 0.5), math.ceil((s.x + w) / CELL - 0.5)
        j0, j1 = math.ceil(s.y / CELL - 0.5), math.ceil((s.y + h) / CELL - 0.5)
        return slice(max(0, j0 - y0), max(0, j1 - y0)), slice(max(0, i0 - x0), max(0, i1 - x0))



def _correlation(frame: np.ndarray, before: np.ndarray, shift: tuple[float, float]) -> float:
    """The correlation of the part two brightness thumbnails both show, ``before`` shifted by ``shift``
    (:func:`view.overlap`): 1 for the same view under any exposure, near 0 for unrelated ones."""
    a, b = (x.astype(np.float64) for x in views.overlap(frame, before, shift))
    a -= a.mean()
    b -= b.mean()
    spread = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / spread if spread > 0 else 0.0
