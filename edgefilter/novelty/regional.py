"""The regional rule (``filter.regional``, on by default): a small new thing in a still view.

Each kept frame carries its grid of region cells (the regions graph's 7x7 x 320). A frame is novel by
region when, against each of the kept frames most like it, some cell changed far more than the
source's own noise lets cells change. Comparing cells of the *same* kept frame (not each cell against
any kept cell) also catches a new combination, e.g. one object of two taken away. A cell's change is
measured above the CELL_BASE_Q quantile of all cells' changes in that comparison: exposure steps,
flicker, noise and re-encoding move most cells together, a small new object moves a few. Each source
learns a per-cell noise scale: the median of these excess changes between consecutive frames outside
events (textured cells jitter more than flat ones).

A camera that shakes by 1-3 px moves a few cells of real footage as much as a small object does, and
the grid alone then kept an empty room again and again. So a cell only counts where pixels changed
against the scene before (``view.changed_cells``: exposure, shake and noise change none), when the
frame has a thumbnail (benchmarks/QUALITY.md, finding 17). When an event's frame is decided, each kept
frame is compared only in the cells where the frame's pixels changed against *that* kept frame (things,
not specks beside a larger change; :func:`cell_novelty_per_kept`): a table state back after a hand had
paused over it was "new" in a cell that changed against the hand's keep only (finding 20).
"""
from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .index import RollingIndex

CELL_BASE_Q = 0.75
CELL_SCALE_MIN = 0.01     # cosine distance: no cell is trusted to be quieter than this
CELL_WARMUP = 10          # frame steps learnt before regional novelty is used (the whole image decides before)
CELL_SETTLED = 100        # until this many, the scale is the 90th percentile of the steps instead of the median
CELL_STILL = 5.0          # event mode: a frame is still only if no cell moved more than this x its noise scale
CELL_WINDOW = 300         # cell steps remembered for the noise scale
SHORTLIST = 16            # kept frames compared cell by cell: the nearest by whole image ...
SHORTLIST_RECENT = 4      # ... and the newest (what the scene just settled on)


def baseline(d: np.ndarray) -> np.ndarray:
    """The CELL_BASE_Q quantile of the last axis (the nearest order statistic: np.partition, not the
    slower np.quantile)."""
    k = int(round(CELL_BASE_Q * (d.shape[-1] - 1)))
    return np.partition(d, k, axis=-1)[..., k]


@dataclass
class CellNoise:
    """A source's per-cell noise scale, from cell changes between consecutive frames outside events."""

    previous: np.ndarray | None = None
    steps: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=CELL_WINDOW))
    scale: np.ndarray | None = None
    learnt: int = 0

    @property
    def ready(self) -> bool:
        return self.scale is not None and len(self.steps) >= CELL_WARMUP

    def step(self, cells: np.ndarray, learn: bool = True) -> float | None:
        """The largest cell change since the previous frame, in noise units (None before it is learnt)."""
        prev, self.previous = self.previous, cells
        if prev is None or prev.shape != cells.shape:
            return None
        d = 1.0 - np.einsum("cd,cd->c", prev, cells)
        excess = np.abs(d - baseline(d))
        moved = float((excess / self.scale).max()) if self.ready else None
        if learn and float(d.max()) > 1e-7:  # identical cells (a pre-gate skip) say nothing about noise
            self.steps.append(excess.astype(np.float32))
            self.learnt += 1
            if self.learnt <= CELL_SETTLED or self.learnt % 10 == 0:  # the median of 300 x 49 is not free
                # few samples have not seen the camera's exposure steps yet: assume the high end of them
                q = 0.5 if self.learnt >= CELL_SETTLED else 0.9
                self.scale = np.maximum(np.quantile(np.stack(self.steps), q, axis=0), CELL_SCALE_MIN)
        return moved

    def excess(self, cells: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """(K, R): each cell's change against each kept frame (kept: (K, R, d)), in noise units."""
        d = 1.0 - np.einsum("cd,kcd->kc", cells, kept)
        return (d - baseline(d)[..., None]) / self.scale


def worst(excess: np.ndarray, where: np.ndarray | None = None) -> tuple[int, float]:
    """(cell, change in noise units) against the kept frame the frame is closest to. ``where``: only these
    cells may count (the others changed no pixel); (R,) for every kept frame or (K, R), one row each."""
    if where is not None:
        excess = np.where(where if where.ndim == 2 else where[None, :], excess, -np.inf)
    per_frame = excess.max(axis=1)
    j = int(per_frame.argmin())
    return int(excess[j].argmax()), float(per_frame[j])


def _shortlist(index: RollingIndex, noise: CellNoise, vec: np.ndarray) -> list[int]:
    """The kept frames a frame's cells are compared with (none before the source's cell noise is learnt)."""
    return index.shortlist(vec, SHORTLIST, SHORTLIST_RECENT) if noise.ready else []


def _excess(index: RollingIndex, noise: CellNoise, vec: np.ndarray, cells: np.ndarray) -> np.ndarray | None:
    """The frame's cells against the kept frames most like it; None before the source's cell noise is
    learnt or when no kept frame has cells."""
    keys = _shortlist(index, noise, vec)
    return noise.excess(cells, index.payloads(keys)) if keys else None


def cell_novelty(index: RollingIndex, noise: CellNoise, vec: np.ndarray, cells: np.ndarray,
                 where: np.ndarray | None = None) -> tuple[int, float] | None:
    """(cell, change in noise units) of a frame's most changed region against the kept frames most
    like it; None before the source's cell noise is learnt, when no kept frame has cells, or when
    ``where`` (cells whose pixels changed) is empty."""
    if where is not None and not where.any():
        return None
    excess = _excess(index, noise, vec, cells)
    return None if excess is None else worst(excess, where)


def cell_novelty_per_kept(index: RollingIndex, noise: CellNoise, vec: np.ndarray, cells: np.ndarray,
                          where: Callable[[list[int]], np.ndarray]) -> tuple[int, float] | None:
    """:func:`cell_novelty` with the cells that may count chosen per kept frame: ``where(keys)`` gives (K, R),
    the cells whose pixels changed against each kept frame. A frame is then new by a region only where it
    differs in pixels from the very kept frame its cells are compared with (a bottle put back a little
    aside is no new region against the kept table it matches, whatever a hand kept since changed)."""
    keys = _shortlist(index, noise, vec)
    if not keys:
        return None
    changed = where(keys)
    if not changed.any():
        return None
    got = worst(noise.excess(cells, index.payloads(keys)), changed)
    # -inf: against some kept frame no cell changed its pixels, so no region of this frame is new
    return got if math.isfinite(got[1]) else None


def cell_novelty_where_needed(index: RollingIndex, noise: CellNoise, vec: np.ndarray, cells: np.ndarray,
                              where: Callable[[], np.ndarray | None], threshold: float) -> tuple[int, float] | None:
    """:func:`cell_novelty`, with ``where`` (the pixel test, the dearest part of a frame's regional rule)
    computed only when it can change the answer: leaving cells out can only lower the score, so when no
    cell passes ``threshold`` the answer is every cell's score (at most the threshold either way)."""
    excess = _excess(index, noise, vec, cells)
    if excess is None:
        return None
    rough = worst(excess)
    if rough[1] <= threshold:
        return rough
    changed = where()
    if changed is not None and not changed.any():
        return None
    return worst(excess, changed)
