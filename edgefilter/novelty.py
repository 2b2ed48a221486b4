"""The novelty filter: keep a frame when it is far (cosine) from every frame kept recently.

Kept embeddings live in a :class:`RollingIndex` per scope (one per source, or one shared by all
sources) bounded by the window's size and age. Only kept frames ever enter an index, so the index
stays small and its cost is paid per keep, not per frame.

A micro-batch may interleave sources. Frames are decided in order, exactly as if they came one by
one: the index is searched once for the whole batch, candidates that were evicted meanwhile are
skipped, and frames kept earlier in the same batch are compared with numpy.

Two modes (``filter.mode``). ``frame``: a novel frame is kept at once. ``event`` (the default): a novel
frame opens a *candidate* for its source and is held, with every following frame of that source,
until the scene settles (``settle_frames`` frames in a row that each moved less than the source's noise
floor) or ``max_hold_s`` passes; then one frame of the event is kept: the settled frame when it is
still new (farther than ``settle_ratio`` x threshold from every kept frame), else the held frame
farthest from the kept set. A single-frame decision at event onset keeps hands in motion and blurred
half-bodies; waiting for the scene to settle keeps the new state itself (see benchmarks/QUALITY.md).
Held frames come back through :meth:`NoveltyFilter.released` (kept) or
:meth:`NoveltyFilter.discarded` (not kept), each exactly once, so the caller knows when it may
free their pixels.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from usearch.index import Index

from .clock import SYSTEM_CLOCK, Clock
from .config import FilterConfig, WindowConfig
from .state import load_state, save_state

log = logging.getLogger(__name__)

# Candidates asked from usearch per query. Their distances are recomputed exactly from our float32
# copy, so the f16 graph only has to rank the true nearest neighbour among the first few.
CANDIDATES = 4
# f16 storage: measured here (1280-d, 2 cores) about twice as fast to add and search as f32, half the
# memory; precision does not matter because distances are recomputed in float32.
INDEX_DTYPE = "f16"

# Budget controller. The keep rate is an exponentially weighted average with this time constant
# (seconds of frame time); the threshold moves by a factor e per ADAPT_TAU_S seconds while the rate
# is e times off target, so it settles in about ten minutes and does not chase single events.
RATE_TAU_S = 120.0
ADAPT_TAU_S = 600.0
RATE_WARMUP_S = 30.0  # no adaptation before this much frame time has been seen

# Event mode: the noise floor is noise_floor_k x the median frame-to-frame cosine distance of a source's
# last FLOOR_WINDOW steps outside events (motion inside an event is what the floor must tell apart from
# noise; a busy stream would otherwise learn its own motion as noise and "settle" at once). Identical
# vectors (frames the pre-gate skipped) say nothing about noise and are left out. Never below FLOOR_MIN.
FLOOR_WINDOW = 300
FLOOR_MIN = 0.005

# Regional novelty (``filter.regional``): each kept frame carries its grid of region cells (the regions
# graph's 7x7 x 320). A frame is novel by region when, against each of the kept frames most like it, some
# cell changed far more than the source's own noise lets cells change. Comparing cells of the *same*
# kept frame (not each cell against any kept cell) also catches a new combination, e.g. one object of
# two taken away. A cell's change is measured above the CELL_BASE_Q quantile of all cells' changes in
# that comparison: exposure steps, flicker, noise and re-encoding move most cells together, a small
# new object moves a few. Each source learns a per-cell noise scale: the median of these excess
# changes between consecutive frames outside events (textured cells jitter more than flat ones).
# Constants measured on the quality benchmark (benchmarks/QUALITY.md, finding 16).
CELL_BASE_Q = 0.75
CELL_SCALE_MIN = 0.01     # cosine distance: no cell is trusted to be quieter than this
CELL_WARMUP = 10          # frame steps learnt before regional novelty is used (the whole image decides before)
CELL_SETTLED = 100        # until this many, the scale is the 90th percentile of the steps instead of the median
CELL_STILL = 5.0          # event mode: a frame is still only if no cell moved more than this x its noise scale
SHORTLIST = 16            # kept frames compared cell by cell: the nearest by whole image ...
SHORTLIST_RECENT = 4      # ... and the newest (what the scene just settled on)
# Event mode: frames of the last decided event remembered per source (see _Recent).
RECENT_FRAMES = 32

STATE_NAME = "novelty"
STATE_VERSION = 1
GLOBAL_SCOPE = "*"


@dataclass(frozen=True)
class Decision:
    keep: bool
    distance: float | None   # cosine distance to the nearest kept neighbour that decided; None: first frame
    reason: str | None       # "first" | "novel" | "heartbeat"; None when not kept
    threshold: float         # the threshold in force for this decision
    region: int | None = None  # the region that made the frame novel, when it was a region
    held: bool = False         # event mode: held as (part of) an open candidate; see released()/discarded()


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


class RollingIndex:
    """Kept vectors in a usearch graph (cosine), bounded by count and by age.

    Keys are insertion numbers, so "oldest first" is "smallest key first". A float32 copy of every
    vector is kept beside the graph: it gives exact distances, in-batch comparisons and the saved state.
    """

    def __init__(self, dim: int, window: WindowConfig, dtype: str = INDEX_DTYPE):
        self.dim = dim
        self.window = window
        self._dtype = dtype
        self._index = Index(ndim=dim, metric="cos", dtype=dtype)
        self._vectors = np.zeros((0, dim), np.float32)  # slot storage; grows by doubling
        self._ts = np.zeros(0, np.float64)
        self._origin = np.zeros(0, np.int32)
        self._live = np.zeros(0, bool)
        # Optional per-entry payload (a kept frame's region cells, float16), allocated on first use.
        self._payload: np.ndarray | None = None
        self._has_payload = np.zeros(0, bool)
        self._payload_cache: tuple[tuple[int, ...], np.ndarray] | None = None
        self._slot: dict[int, int] = {}
        self._free: list[int] = []
        self._order: collections.deque[int] = collections.deque()  # keys in insertion order (lazy)
        self.next_key = 0
        self.newest_ts = -math.inf

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, key: int) -> bool:
        return int(key) in self._slot

    # -- reading
    def search(self, vectors: np.ndarray, count: int = CANDIDATES, exact: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest kept vectors of each query: (distances, keys), both (n, k), nearest first.

        Distances are exact float32 cosine distances; missing entries are inf with key -1. The
        graph search is approximate; ``exact`` scans every stored vector instead.
        """
        q = _unit(np.atleast_2d(vectors))
        n = q.shape[0]
        k = min(count, len(self))
        if k == 0 or n == 0:
            return np.full((n, 0), np.inf, np.float32), np.full((n, 0), -1, np.int64)
        m = self._index.search(q, k, threads=1, exact=exact)
        if hasattr(m, "counts"):  # BatchMatches: fixed width, sentinels past each row's count
            keys = np.asarray(m.keys, dtype=np.int64).reshape(n, k)
            valid = np.arange(k)[None, :] < np.asarray(m.counts).reshape(n, 1)
            keys = np.where(valid, keys, -1)
        else:  # one query comes back as Matches with only the valid entries
            found = np.asarray(m.keys, dtype=np.int64)[:k]
            keys = np.full((1, k), -1, np.int64)
            keys[0, :len(found)] = found
        slots = np.array([self._slot.get(int(x), -1) for x in keys.ravel()], np.int64).reshape(n, k)
        ok = slots >= 0
        cand = self._vectors[np.where(ok, slots, 0)]                 # (n, k, dim)
        dist = 1.0 - np.einsum("nkd,nd->nk", cand, q)
        dist = np.where(ok, dist, np.inf).astype(np.float32)
        order = np.argsort(dist, axis=1, kind="stable")
        return np.take_along_axis(dist, order, 1), np.take_along_axis(np.where(ok, keys, -1), order, 1)

    def distances_to(self, keys: Sequence[int], vector: np.ndarray) -> np.ndarray:
        """Exact cosine distances from one vector to the given live keys."""
        slots = [self._slot[int(k)] for k in keys]
        return 1.0 - self._vectors[slots] @ _unit(vector)

    def ts_of(self, key: int) -> float:
        return float(self._ts[self._slot[int(key)]])

    def shortlist(self, vector: np.ndarray, count: int, recent: int) -> list[int]:
        """Live keys that carry a payload: the ``count`` nearest to ``vector`` plus the ``recent`` newest."""
        if not len(self) or self._payload is None:
            return []
        _, keys = self.search(vector, count)
        out = [int(k) for k in keys[0] if k >= 0]
        for k in reversed(self._order):
            if recent <= 0:
                break
            if k in self._slot:
                recent -= 1
                if k not in out:
                    out.append(k)
        return [k for k in out if self._has_payload[self._slot[k]]]

    def payloads(self, keys: Sequence[int]) -> np.ndarray:
        """The payloads of live keys, as float32 (read-only). Consecutive frames of a source mostly ask
        for the same kept frames, so the last answer is reused: keys are never reused, so the same keys
        mean the same payloads."""
        wanted = tuple(int(k) for k in keys)
        if self._payload_cache is None or self._payload_cache[0] != wanted:
            got = self._payload[[self._slot[k] for k in wanted]].astype(np.float32)
            got.flags.writeable = False
            self._payload_cache = (wanted, got)
        return self._payload_cache[1]

    # -- writing
    def add(self, vector: np.ndarray, ts: float, origin: int = 0, payload: np.ndarray | None = None) -> int:
        """Insert a kept vector (and its payload); evicts by size (oldest first) and by age. Returns its key."""
        v = _unit(vector).reshape(self.dim)
        key = self.next_key
        self.next_key += 1
        slot = self._take_slot()
        self._vectors[slot] = v
        self._ts[slot] = ts
        self._origin[slot] = origin
        self._live[slot] = True
        if payload is not None:
            payload = np.asarray(payload, np.float16)
            if self._payload is None or self._payload.shape[1:] != payload.shape:  # new or changed grid
                self._payload = np.zeros((len(self._live),) + payload.shape, np.float16)
                self._has_payload[:] = False
            self._payload[slot] = payload
        self._has_payload[slot] = payload is not None
        self._slot[key] = slot
        self._order.append(key)
        self._index.add(key, v, threads=1)
        self.evict(ts)
        return key

    def evict(self, now_ts: float | None = None) -> int:
        """Drop entries beyond window.size (oldest first) and older than window.seconds before the newest ts."""
        if now_ts is not None and now_ts > self.newest_ts:
            self.newest_ts = now_ts
        gone: list[int] = []
        while len(self._slot) - len(gone) > self.window.size:
            key = self._order.popleft()
            if key in self._slot:
                gone.append(key)
        self._drop(gone)
        gone = []
        cutoff = self.newest_ts - self.window.seconds
        if len(self._slot) and self._ts[self._live].min(initial=math.inf) < cutoff:
            old = np.flatnonzero(self._live & (self._ts < cutoff))
            by_slot = {s: k for k, s in self._slot.items()}
            gone = [by_slot[int(s)] for s in old]
            self._drop(gone)
        return len(gone)

    def set_window(self, window: WindowConfig) -> None:
        self.window = window
        self.evict()

    def _take_slot(self) -> int:
        if self._free:
            return self._free.pop()
        n = len(self._live)
        grow = max(16, n)
        self._vectors = np.concatenate([self._vectors, np.zeros((grow, self.dim), np.float32)])
        self._ts = np.concatenate([self._ts, np.zeros(grow)])
        self._origin = np.concatenate([self._origin, np.zeros(grow, np.int32)])
        self._live = np.concatenate([self._live, np.zeros(grow, bool)])
        self._has_payload = np.concatenate([self._has_payload, np.zeros(grow, bool)])
        if self._payload is not None:
            self._payload = np.concatenate([self._payload, np.zeros((grow,) + self._payload.shape[1:], np.float16)])
        self._free.extend(range(n + grow - 1, n - 1, -1))
        return self._free.pop()

    def _drop(self, keys: list[int]) -> None:
        if not keys:
            return
        for k in keys:
            slot = self._slot.pop(k)
            self._live[slot] = False
            self._free.append(slot)
        self._index.remove(np.asarray(keys, dtype=np.uint64))
        if len(self._order) > 2 * len(self._slot) + 64:  # age evictions leave stale keys behind
            self._order = collections.deque(k for k in self._order if k in self._slot)

    # -- persistence: our own arrays are the truth. usearch's serialised graph rides along only as a
    # cache (rebuilding 10,000 1280-d vectors took 19 s here, loading the graph milliseconds); it is
    # checked against the keys and rebuilt from the vectors when it does not fit.
    def state(self, graph: bool = True) -> dict[str, np.ndarray]:
        keys = np.array(sorted(self._slot), dtype=np.int64)
        slots = np.array([self._slot[int(k)] for k in keys], dtype=np.int64)
        out = {"vectors": self._vectors[slots].copy(), "ts": self._ts[slots].copy(),
               "keys": keys, "origin": self._origin[slots].copy(),
               "meta": np.array([self.next_key, self.newest_ts], np.float64)}
        if self._payload is not None:
            out["payload"] = self._payload[slots].copy()
            out["has_payload"] = self._has_payload[slots].copy()
        if graph:
            out["graph"] = np.frombuffer(bytes(self._index.save()), dtype=np.uint8)
        return out

    @classmethod
    def from_state(cls, dim: int, window: WindowConfig, state: dict[str, np.ndarray],
                   dtype: str = INDEX_DTYPE) -> "RollingIndex":
        vectors = np.asarray(state["vectors"], np.float32)
        keys = np.asarray(state["keys"], np.int64)
        ts = np.asarray(state["ts"], np.float64)
        origin = np.asarray(state.get("origin", np.zeros(len(keys), np.int32)), np.int32)
        if vectors.ndim != 2 or vectors.shape[1] != dim or not len(keys) == len(ts) == len(vectors) == len(origin):
            raise ValueError(f"index state does not fit dim {dim}: vectors {vectors.shape}, "
                             f"{len(keys)} keys, {len(ts)} ts")
        order = np.argsort(keys, kind="stable")
        idx = cls(dim, window, dtype)
        idx._bulk_load(vectors[order], ts[order], keys[order], origin[order], state.get("graph"))
        idx._load_payload(state, order)
        meta = np.asarray(state.get("meta", np.array([0, -math.inf])), np.float64)
        idx.next_key = max(idx.next_key, int(meta[0]))
        idx.newest_ts = max(idx.newest_ts, float(meta[1]))
        idx.evict()
        return idx

    @classmethod
    def merged(cls, dim: int, window: WindowConfig, parts: Iterable[dict[str, np.ndarray]],
               dtype: str = INDEX_DTYPE) -> "RollingIndex":
        """One index from several states, re-keyed by time (used when the scope changes)."""
        parts = [p for p in parts if len(p["keys"])]
        idx = cls(dim, window, dtype)
        if parts:
            vec = np.concatenate([p["vectors"] for p in parts])
            ts = np.concatenate([p["ts"] for p in parts])
            org = np.concatenate([p["origin"] for p in parts])
            order = np.argsort(ts, kind="stable")
            idx._bulk_load(vec[order], ts[order], np.arange(len(ts), dtype=np.int64), org[order])
            shapes = {p["payload"].shape[1:] for p in parts if "payload" in p}
            if len(shapes) == 1:
                shape = shapes.pop()
                payload = np.concatenate([p["payload"] if "payload" in p else np.zeros((len(p["keys"]),) + shape,
                                                                                        np.float16) for p in parts])
                has = np.concatenate([p.get("has_payload", np.zeros(len(p["keys"]), bool)) for p in parts])
                idx._load_payload({"payload": payload, "has_payload": has}, order)
            idx.newest_ts = max([float(p["meta"][1]) for p in parts] + [float(ts.max())])
            idx.evict()
        return idx

    def _bulk_load(self, vectors: np.ndarray, ts: np.ndarray, keys: np.ndarray, origin: np.ndarray,
                   graph: np.ndarray | None = None) -> None:
        n = len(keys)
        if n == 0:
            return
        norms = np.linalg.norm(vectors, axis=1)
        if np.any(np.abs(norms - 1.0) > 1e-5):  # saved vectors are unit already: keep them bit-exact
            vectors = _unit(vectors)
        vectors = np.ascontiguousarray(vectors, np.float32)
        self._vectors, self._ts, self._origin = vectors.copy(), ts.copy(), origin.copy()
        self._live = np.ones(n, bool)
        self._has_payload = np.zeros(n, bool)
        self._slot = {int(k): i for i, k in enumerate(keys)}
        self._order = collections.deque(int(k) for k in keys)
        if graph is None or not self._load_graph(graph, keys):
            self._index.add(keys.astype(np.uint64), vectors, threads=0)  # all cores: this is a restart
        self.next_key = int(keys.max()) + 1
        self.newest_ts = float(ts.max())


    def _load_payload(self, state: dict[str, np.ndarray], order: np.ndarray) -> None:
        n = len(self._live)
        self._has_payload = np.zeros(n, bool)
        self._payload_cache = None
        if "payload" in state and len(state["payload"]) == n:
            self._payload = np.asarray(state["payload"], np.float16)[order]
            self._has_payload = np.asarray(state.get("has_payload", np.ones(n, bool)), bool)[order]

    def _load_graph(self, graph: np.ndarray, keys: np.ndarray) -> bool:
        try:
            self._index.load(graph.tobytes())
            fits = (self._index.ndim == self.dim and len(self._index) == len(keys)
                    and bool(np.all(self._index.contains(keys.astype(np.uint64)))))
        except Exception as exc:  # usearch raises plain RuntimeError/ValueError on a bad blob
            log.warning("saved usearch graph unusable (%s); rebuilding from the vectors", exc)
            fits = False
        if not fits:
            self._index = Index(ndim=self.dim, metric="cos", dtype=self._dtype)
        return fits


class _Probe:
    """One batched search of an index, then exact per-frame answers as the batch is decided in order."""

    def __init__(self, index: RollingIndex, queries: np.ndarray):
        self.index = index
        self.mark = index.next_key  # keys from here on were kept within this batch
        self.dist, self.keys = index.search(queries) if len(queries) else (None, None)
        self.batch_keys: list[int] = []

    def nearest(self, row: int, query: np.ndarray, threshold: float) -> float | None:
        """Distance to the nearest live kept vector, or None when the index is empty.

        The graph search can miss the nearest neighbour (measured: 2 in 400 near-duplicate queries
        among 10,000 random 1280-d vectors), which would keep a frame wrongly. So an answer above
        ``threshold`` is confirmed by an exact scan: frames that are not kept cost one batched graph
        search, and only frames about to be kept (rare, and they pay an insert anyway) pay the scan.
        """
        idx = self.index
        if not len(idx):
            return None
        best = math.inf
        found = False
        for d, k in zip(self.dist[row], self.keys[row]):
            if k >= 0 and k in idx:  # skip what was evicted since the search
                best, found = float(d), True
                break
        older_live = len(idx) - sum(1 for k in self.batch_keys if k in idx)
        if found or older_live == 0:
            live_batch = [k for k in self.batch_keys if k in idx]
            if live_batch:
                best = min(best, float(idx.distances_to(live_batch, query).min()))
        if best > threshold:  # about to keep (or every candidate was evicted meanwhile): make sure
            d, _ = idx.search(query[None, :], exact=True)
            best = float(d[0, 0])
        return best

    def added(self, key: int) -> None:
        self.batch_keys.append(key)


@dataclass
class _Scope:
    index: RollingIndex   # kept vectors; with regional novelty each carries its region cells as payload


@dataclass
class _Budget:
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


@dataclass
class _Held:
    """One frame of an open candidate, with its novelty when it was seen."""

    token: Any
    ts: float
    vector: np.ndarray            # unit
    regions: np.ndarray | None    # (R, region_dim) unit cells when regional
    distance: float | None        # to the nearest kept frame (whole image)
    region: int | None            # the cell that changed most
    region_distance: float | None  # its change, in units of the source's cell noise
    score: float = 0.0            # novelty relative to the thresholds: > 1 is novel


@dataclass
class _Candidate:
    frames: list[_Held]
    version: tuple[int, int]      # (filter epoch, scope index next_key) when the distances were taken
    still: int = 0                # consecutive still frames at the end


@dataclass
class _Motion:
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


@dataclass
class _Recent:
    """The last frames of the event a source decided last (at most RECENT_FRAMES). A frame
    that is novel against the kept set but like one of these continues that event instead of opening a
    new one, as long as such frames keep coming (each match extends the memory by max_hold_s)."""

    vectors: np.ndarray           # (M, dim) unit
    cells: np.ndarray | None      # (M, R, region_dim) unit, or None
    until_ts: float


def _baseline(d: np.ndarray) -> np.ndarray:
    """The CELL_BASE_Q quantile of the last axis (the nearest order statistic: np.partition, not the
    slower np.quantile)."""
    k = int(round(CELL_BASE_Q * (d.shape[-1] - 1)))
    return np.partition(d, k, axis=-1)[..., k]


@dataclass
class _CellNoise:
    """A source's per-cell noise scale, from cell changes between consecutive frames outside events."""

    previous: np.ndarray | None = None
    steps: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=FLOOR_WINDOW))
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
        excess = np.abs(d - _baseline(d))
        moved = float((excess / self.scale).max()) if self.ready else None
        if learn and float(d.max()) > 1e-7:  # identical cells (a pre-gate skip) say nothing about noise
            self.steps.append(excess.astype(np.float32))
            self.learnt += 1
            if self.learnt <= CELL_SETTLED or self.learnt % 10 == 0:  # the median of 300 x 49 is not free
                # few samples have not seen the camera's exposure steps yet: assume the high end of them
                q = 0.5 if self.learnt >= CELL_SETTLED else 0.9
                self.scale = np.maximum(np.quantile(np.stack(self.steps), q, axis=0), CELL_SCALE_MIN)
        return moved

    def novelty(self, cells: np.ndarray, kept: np.ndarray) -> tuple[int, float]:
        """(cell, change in noise units) against the kept frame it is closest to; kept: (K, R, d)."""
        d = 1.0 - np.einsum("cd,kcd->kc", cells, kept)
        excess = (d - _baseline(d)[..., None]) / self.scale
        per_frame = excess.max(axis=1)
        j = int(per_frame.argmin())
        return int(excess[j].argmax()), float(per_frame[j])


@dataclass
class _SourceState:
    threshold: float
    last_keep_ts: float | None = None
    first_ts: float | None = None
    last_distance: float | None = None
    budget: _Budget = dataclasses.field(default_factory=_Budget)
    candidate: _Candidate | None = None
    last_event: _Recent | None = None  # the frames of the event decided last
    motion: _Motion = dataclasses.field(default_factory=_Motion)
    cells: _CellNoise = dataclasses.field(default_factory=_CellNoise)


class NoveltyFilter:
    """Decide which frames to keep; see the module docstring."""

    def __init__(self, cfg: FilterConfig, dim: int, sources: Sequence[str], clock: Clock = SYSTEM_CLOCK,
                 region_count: int = 0, region_dim: int | None = None):
        if dim < 1:
            raise ValueError(f"embedding dimension must be positive, got {dim}")
        if not sources:
            raise ValueError("the novelty filter needs at least one source")
        self.cfg = cfg
        self.dim = dim
        self.sources = list(sources)
        self.clock = clock
        self.region_count = region_count
        self.region_dim = region_dim or dim
        self._source_no = {s: i for i, s in enumerate(self.sources)}
        self._src = {s: _SourceState(cfg.threshold) for s in self.sources}
        self._scopes: dict[str, _Scope] = {}
        for name in self._scope_names(cfg.scope):
            self._scopes[name] = self._new_scope(cfg)
        self._released: list[tuple[Any, Decision]] = []
        self._discarded: list[Any] = []
        self._epoch = 0  # bumped when indexes or thresholds are replaced: held distances must be retaken

    # -- public
    def decide(self, items: Sequence[tuple]) -> list[Decision]:
        """Decide a micro-batch of (source, ts, vector, regions[, token]) in order.

        ``token`` is opaque (the daemon passes its Frame): it comes back from :meth:`released` or
        :meth:`discarded` for frames that were held (``Decision.held``). One Decision per item.
        """
        cfg = self.cfg
        norm: list[tuple] = []
        for item in items:
            if len(item) not in (4, 5):
                raise ValueError(f"a filter item is (source, ts, vector, regions[, token]), got {len(item)} fields")
            source, ts, vector, regions = item[:4]
            if source not in self._src:
                raise ValueError(f"unknown source {source!r} (configured: {', '.join(self.sources)})")
            if np.shape(vector) != (self.dim,):
                raise ValueError(f"embedding of {source!r} has shape {np.shape(vector)}, expected ({self.dim},)")
            norm.append((source, ts, vector, regions, item[4] if len(item) == 5 else None))
        items = norm
        event = cfg.mode == "event"
        # Sources that released a held frame in this call: their later keeps in the same call go through
        # released() too, so the caller (which publishes released frames after the batch) keeps stream order.
        routed: set[str] = set()
        if not event:  # switched to frame mode: what was held is decided now, before anything newer
            for name, st in self._src.items():
                if st.candidate is not None:
                    self._close(name, st, st.candidate.frames[-1].ts)
                    routed.add(name)
        regional = cfg.regional and self.region_count > 0
        probes: dict[str, _Probe] = {}
        rows: list[int] = []
        by_scope: dict[str, list[int]] = collections.defaultdict(list)
        for i, (source, ts, vector, regions, token) in enumerate(items):
            scope = self._scope_of(source)
            rows.append(len(by_scope[scope]))
            by_scope[scope].append(i)
            if regional and regions is not None:
                if np.shape(regions) != (self.region_count, self.region_dim):
                    raise ValueError(f"regions of {source!r} have shape {np.shape(regions)}, "
                                     f"expected ({self.region_count}, {self.region_dim})")
                items[i] = (source, ts, vector, _unit(regions), token)
            else:
                items[i] = (source, ts, vector, None, token)
        for scope, members in by_scope.items():
            q = np.stack([np.asarray(items[i][2], np.float32) for i in members])
            probes[scope] = _Probe(self._scopes[scope].index, q)

        out: list[Decision] = []
        for i, (source, ts, vector, regions, token) in enumerate(items):
            ts = float(ts)
            st = self._src[source]
            scope_name = self._scope_of(source)
            scope = self._scopes[scope_name]
            if st.first_ts is None:
                st.first_ts = ts
            scope.index.evict(ts)
            vec = _unit(vector)
            threshold = st.threshold
            dist = probes[scope_name].nearest(rows[i], vec, threshold)
            st.last_distance = dist

            if event and st.candidate is not None:  # an open event: this frame joins it
                cand = st.candidate
                floor = st.motion.floor(cfg.noise_floor_k)
                step = st.motion.step(vec, learn=False)
                # a small thing moving in a still scene hardly moves the whole image: the cells must be still too
                cells_moved = st.cells.step(regions, learn=False) if regions is not None else None
                worst = self._cell_novelty(scope, st, vec, regions) if regions is not None else None
                cand.frames.append(self._held(token, ts, vec, regions, dist, worst, threshold))
                still = step is not None and step < floor and (cells_moved is None or cells_moved < CELL_STILL)
                cand.still = cand.still + 1 if still else 0
                kept = False
                if cand.still >= cfg.settle_frames or ts - cand.frames[0].ts >= cfg.max_hold_s:
                    kept = self._close(source, st, ts, probes=probes)
                    routed.add(source)
                self._adapt(st, ts, kept)
                out.append(Decision(keep=False, distance=dist, reason=None, threshold=threshold, held=True))
                continue

            keep, reason, region, decided_by = False, None, None, dist
            worst = None
            if dist is None:
                keep, reason = True, "first"
            elif dist > threshold:
                keep, reason = True, "novel"
            elif regions is not None:
                worst = self._cell_novelty(scope, st, vec, regions)
                if worst is not None and worst[1] > cfg.region_threshold:
                    keep, reason, region, decided_by = True, "novel", worst[0], worst[1]
                    threshold = cfg.region_threshold
            learn = reason != "novel"
            if event and reason == "novel" and self._continues(st, vec, regions, ts, threshold=st.threshold):
                # it looks like a frame of the event just decided (the other half of a blinking light, a
                # swinging sign): still that event, not a new one
                keep, reason, region, decided_by, threshold = False, None, None, dist, st.threshold
            if regions is not None:
                st.cells.step(regions, learn=learn)
            if event:
                st.motion.step(vec, learn=learn)
                if reason == "novel":  # open a candidate instead of keeping at once
                    if worst is None and regions is not None:
                        worst = self._cell_novelty(scope, st, vec, regions)
                    held = self._held(token, ts, vec, regions, dist, worst, st.threshold)
                    st.candidate = _Candidate([held], (self._epoch, scope.index.next_key))
                    self._adapt(st, ts, False)
                    out.append(Decision(keep=False, distance=decided_by, reason=None, threshold=threshold,
                                        region=region, held=True))
                    continue
            if not keep and cfg.max_interval_s is not None:
                since = st.last_keep_ts if st.last_keep_ts is not None else st.first_ts
                if ts - since >= cfg.max_interval_s:
                    keep, reason = True, "heartbeat"
            if keep:
                self._add(scope_name, vec, regions, ts, source, probes)
                st.last_keep_ts = ts
            self._adapt(st, ts, keep)
            decision = Decision(keep=keep, distance=decided_by, reason=reason, threshold=threshold, region=region)
            if keep and source in routed:
                self._released.append((token, decision))
                decision = dataclasses.replace(decision, keep=False, held=True)
            out.append(decision)

        if event and items:  # a source that stopped sending is not left holding frames forever
            latest = max(float(it[1]) for it in items)
            present = {it[0] for it in items}
            for name, st in self._src.items():
                if (name not in present and st.candidate is not None
                        and latest - st.candidate.frames[0].ts >= cfg.max_hold_s):
                    self._close(name, st, latest, probes=probes)
        return out

    def released(self) -> list[tuple[Any, Decision]]:
        """Held frames kept since the last call, in decision order, as (token, Decision(keep=True)).

        The Decision's distance is the frame's distance to the nearest kept frame when it was chosen;
        its threshold is the one it passed (``settle_ratio`` x threshold for a settled frame).
        """
        out, self._released = self._released, []
        return out

    def discarded(self) -> list[Any]:
        """Tokens of held frames finally not kept since the last call (their pixels can go)."""
        out, self._discarded = self._discarded, []
        return out

    def flush(self, source: str | None = None) -> list[tuple[Any, Decision]]:
        """Decide every open candidate (of one source, or all) now, as if it had reached max_hold_s.

        Returns the keeps; the frames not kept go to :meth:`discarded`. Call before saving at shutdown
        and at the end of a finite source.
        """
        if source is not None and source not in self._src:
            raise ValueError(f"unknown source {source!r} (configured: {', '.join(self.sources)})")
        out: list[tuple[Any, Decision]] = []
        for name, st in self._src.items():
            if (source is None or name == source) and st.candidate is not None:
                self._close(name, st, st.candidate.frames[-1].ts, sink=out)
        return out

    def holding(self, source: str | None = None) -> int:
        """Frames held in open candidates (of one source, or all)."""
        return sum(len(st.candidate.frames) for name, st in self._src.items()
                   if st.candidate is not None and (source is None or name == source))

    def index_size(self, source: str) -> int:
        return len(self._scopes[self._scope_of(source)].index)

    def threshold(self, source: str) -> float:
        return self._src[source].threshold

    def last_distance(self, source: str) -> float | None:
        return self._src[source].last_distance

    def keep_rate(self, source: str) -> float | None:
        """The budget controller's keeps per minute for a source (None before any frame time)."""
        return self._src[source].budget.rate_per_minute()

    def reconfigure(self, cfg: FilterConfig) -> None:
        """Apply a reloaded filter section without losing what was kept.

        A scope change rebuilds: per-source indexes are merged by time into one, or the shared one is
        split by the source that kept each frame.
        """
        old = self.cfg
        if cfg.threshold_min > cfg.threshold_max:
            raise ValueError(f"filter.threshold_min {cfg.threshold_min} exceeds threshold_max {cfg.threshold_max}")
        self._epoch += 1
        if cfg.scope != old.scope:
            self._rescope(cfg)
        for sc in self._scopes.values():
            sc.index.set_window(cfg.window)
        for st in self._src.values():
            if cfg.budget_per_minute is None or old.budget_per_minute is None:
                st.threshold = cfg.threshold
                st.budget = _Budget()
            else:  # keep what the controller learnt, inside the new bounds
                st.threshold = min(max(st.threshold, cfg.threshold_min), cfg.threshold_max)
        self.cfg = cfg

    # -- persistence
    def save(self, directory: str | Path, model_id: str) -> Path:
        payload: dict[str, Any] = {}
        scopes = list(self._scopes)
        for n, name in enumerate(scopes):
            sc = self._scopes[name]
            for key, arr in sc.index.state().items():
                payload[f"scope{n}.{key}"] = arr
        payload["filter"] = {
            "version": STATE_VERSION, "dim": self.dim, "scope": self.cfg.scope, "scopes": scopes,
            "region_count": self.region_count, "region_dim": self.region_dim,
            "sources": {s: {"threshold": st.threshold, "last_keep_ts": st.last_keep_ts, "first_ts": st.first_ts,
                            "budget": [st.budget.count, st.budget.weight, st.budget.last_ts],
                            "budget_on": self.cfg.budget_per_minute is not None}
                        for s, st in self._src.items()},
        }
        return save_state(directory, STATE_NAME, payload, model_id)

    def load(self, directory: str | Path, model_id: str) -> bool:
        """Restore saved indexes and controller state; False (and unchanged) when there is none usable.

        A corrupt file raises :class:`~edgefilter.errors.StateError` (it is renamed aside by load_state).
        """
        payload = load_state(directory, STATE_NAME, model_id)
        if payload is None:
            return False
        meta = payload.get("filter")
        if not isinstance(meta, dict) or meta.get("version") != STATE_VERSION:
            log.warning("novelty state in %s has an unknown layout; starting empty", directory)
            return False
        if meta["dim"] != self.dim or meta["scope"] != self.cfg.scope:
            log.warning("novelty state in %s was made with dim %s scope %s, now dim %s scope %s; starting empty",
                        directory, meta["dim"], meta["scope"], self.dim, self.cfg.scope)
            return False
        window = self.cfg.window
        scopes: dict[str, _Scope] = {}
        for n, name in enumerate(meta["scopes"]):
            if name not in self._scopes:
                continue  # a source that is no longer configured
            # (files from before region cells rode along as payload also hold scope{n}.region{r}.*: ignored)
            part = {k.split(".", 1)[1]: v for k, v in payload.items() if k.startswith(f"scope{n}.")
                    and not k.startswith(f"scope{n}.region")}
            index = RollingIndex.from_state(self.dim, window, part)
            scopes[name] = _Scope(index)
        for name, sc in scopes.items():
            self._scopes[name] = sc
        self._epoch += 1
        budget_on = self.cfg.budget_per_minute is not None
        for s, saved in meta["sources"].items():
            st = self._src.get(s)
            if st is None:
                continue
            st.last_keep_ts = saved["last_keep_ts"]
            st.first_ts = saved["first_ts"]
            if budget_on and saved.get("budget_on"):
                st.threshold = min(max(float(saved["threshold"]), self.cfg.threshold_min), self.cfg.threshold_max)
                count, weight, last_ts = saved["budget"]
                st.budget = _Budget(float(count), float(weight), last_ts)
        return True

    # -- internals
    def _held(self, token: Any, ts: float, vec: np.ndarray, regions: np.ndarray | None, dist: float | None,
              worst: tuple[int, float] | None, threshold: float) -> _Held:
        h = _Held(token, ts, vec, None if regions is None else np.asarray(regions, np.float32), dist,
                  worst[0] if worst else None, worst[1] if worst else None)
        h.score = self._score(h.distance, h.region_distance, threshold)
        return h

    def _score(self, dist: float | None, region_dist: float | None, threshold: float) -> float:
        """Novelty relative to the thresholds (> 1: novel); the most novel held frame is the fallback keep."""
        score = math.inf if dist is None else dist / max(threshold, 1e-9)
        if region_dist is not None:
            score = max(score, region_dist / max(self.cfg.region_threshold, 1e-9))
        return score

    def _add(self, scope_name: str, vec: np.ndarray, regions: np.ndarray | None, ts: float, source: str,
             probes: dict | None = None) -> None:
        """Put a kept frame (with its region cells) into its scope's index (and tell this batch's probes)."""
        scope = self._scopes[scope_name]
        key = scope.index.add(vec, ts, self._source_no[source], payload=regions)
        if probes and scope_name in probes:
            probes[scope_name].added(key)

    def _continues(self, st: _SourceState, vec: np.ndarray, cells: np.ndarray | None, ts: float,
                   threshold: float) -> bool:
        """Whether a novel frame is not novel against the frames of the event decided last (and that
        memory is still alive): then it belongs to that event. Extends the memory when it does."""
        recent = st.last_event
        if recent is None or ts > recent.until_ts:
            st.last_event = None
            return False
        near = 1.0 - recent.vectors @ vec <= threshold
        if not near.any():
            return False
        if cells is not None and recent.cells is not None and self.cfg.regional and st.cells.ready:
            _, change = st.cells.novelty(cells, recent.cells[near])
            if change > self.cfg.region_threshold:
                return False
        recent.until_ts = ts + self.cfg.max_hold_s
        return True

    def _cell_novelty(self, scope: _Scope, st: _SourceState, vec: np.ndarray, cells: np.ndarray
                      ) -> tuple[int, float] | None:
        """(cell, change in noise units) of a frame's most changed region against the kept frames most
        like it; None before the source's cell noise is learnt or when no kept frame has cells."""
        if not st.cells.ready:
            return None
        keys = scope.index.shortlist(vec, SHORTLIST, SHORTLIST_RECENT)
        if not keys:
            return None
        return st.cells.novelty(cells, scope.index.payloads(keys))

    def _exact(self, scope: _Scope, st: _SourceState, h: _Held, threshold: float, enough: float,
               region_scale: float = 1.0) -> tuple[float, float | None, float, int | None]:
        """(score, distance, threshold, region) of a held frame against the kept set, by an exact scan.
        Region cells are compared only while the whole image's score is not above ``enough``; their
        score is multiplied by ``region_scale`` (the threshold returned is divided by it)."""
        index = scope.index
        d = float(index.search(h.vector[None, :], exact=True)[0][0, 0]) if len(index) else None
        best = (self._score(d, None, threshold), d, threshold, None)
        if best[0] > enough or h.regions is None or not self.cfg.regional:
            return best
        worst = self._cell_novelty(scope, st, h.vector, h.regions)
        rt = self.cfg.region_threshold
        if worst is not None and worst[1] / max(rt, 1e-9) * region_scale > best[0]:
            best = (worst[1] / max(rt, 1e-9) * region_scale, worst[1], rt / region_scale, worst[0])
        return best

    def _rescore(self, frames: list[_Held], scope: _Scope, st: _SourceState, threshold: float) -> None:
        """Retake held frames' distances after the kept set changed under them (another source of a
        shared scope kept a frame, or the indexes were rebuilt)."""
        q = np.stack([h.vector for h in frames])
        probe = _Probe(scope.index, q)
        for j, h in enumerate(frames):
            h.distance = probe.nearest(j, h.vector, threshold)
            h.region, h.region_distance = None, None
            if h.regions is not None and self.cfg.regional:
                worst = self._cell_novelty(scope, st, h.vector, h.regions)
                if worst is not None:
                    h.region, h.region_distance = worst
            h.score = self._score(h.distance, h.region_distance, threshold)

    def _close(self, source: str, st: _SourceState, now_ts: float, probes: dict | None = None,
               sink: list | None = None) -> bool:
        """Decide an open candidate: keep one of its frames (True) or none (False).

        The last frame (the settled one) is kept when it is farther than settle_ratio x threshold from
        every kept frame, or one of its regions changed by more than region_threshold: the scene settled
        on something new. Otherwise the held frame farthest from
        the kept set is kept, provided it is still novel (in a shared scope another source may have
        kept the same thing meanwhile). The rest are discarded.
        """
        cand, st.candidate = st.candidate, None
        assert cand is not None
        cfg = self.cfg
        scope_name = self._scope_of(source)
        scope = self._scopes[scope_name]
        threshold = st.threshold
        if cand.version != (self._epoch, scope.index.next_key):
            self._rescore(cand.frames, scope, st, threshold)
        chosen = None
        # settled, or at max_hold_s (decided the same way): the latest frame shows the scene as it is now
        last = cand.frames[-1]
        # settle_ratio relaxes the whole-image test only: region changes are in units of the source's own
        # noise already, and a halved region threshold kept unchanged scenes again (QUALITY.md, finding 16)
        got = self._exact(scope, st, last, threshold, cfg.settle_ratio, region_scale=cfg.settle_ratio)
        if got[0] > cfg.settle_ratio:
            chosen = (last, got, cfg.settle_ratio)
        if chosen is None:
            best = max(cand.frames, key=lambda h: h.score)  # first of equals: the earliest
            got = self._exact(scope, st, best, threshold, 1.0)
            if got[0] > 1.0:
                chosen = (best, got, 1.0)
        keeps = self._released if sink is None else sink
        if chosen is not None:
            h, (_, dist, thr, region), ratio = chosen
            self._add(scope_name, h.vector, h.regions if cfg.regional else None, h.ts, source, probes)
            st.last_keep_ts = max(now_ts, st.last_keep_ts if st.last_keep_ts is not None else -math.inf)
            keeps.append((h.token, Decision(keep=True, distance=dist, reason="first" if dist is None else "novel",
                                            threshold=thr * ratio, region=region)))
        self._discarded.extend(x.token for x in cand.frames if chosen is None or x is not chosen[0])
        pick = cand.frames[-RECENT_FRAMES:]  # the latest, contiguous: a stride could alias a flicker away
        with_cells = all(h.regions is not None for h in pick)
        st.last_event = _Recent(np.stack([h.vector for h in pick]),
                                np.stack([h.regions for h in pick]) if with_cells else None, now_ts + cfg.max_hold_s)
        return chosen is not None

    def _scope_names(self, scope: str) -> list[str]:
        return [GLOBAL_SCOPE] if scope == "global" else list(self.sources)

    def _scope_of(self, source: str) -> str:
        return GLOBAL_SCOPE if self.cfg.scope == "global" else source

    def _new_scope(self, cfg: FilterConfig) -> _Scope:
        return _Scope(RollingIndex(self.dim, cfg.window))

    def _rescope(self, cfg: FilterConfig) -> None:
        def rebuild(parts_of: dict[str, list[dict]]) -> dict[str, _Scope]:
            return {name: _Scope(RollingIndex.merged(self.dim, cfg.window, parts)) for name, parts in parts_of.items()}

        def split(state: dict[str, np.ndarray], origin_no: int) -> dict[str, np.ndarray]:
            keep = state["origin"] == origin_no
            return {k: (v[keep] if k != "meta" else v) for k, v in state.items()}

        parts_of: dict[str, list] = collections.defaultdict(list)
        for sc in self._scopes.values():
            main = sc.index.state(graph=False)
            for name in self._scope_names(cfg.scope):
                parts_of[name].append(main if cfg.scope == "global" else split(main, self._source_no[name]))
        self._scopes = rebuild(parts_of)
        log.info("novelty filter scope changed from %s to %s; indexes rebuilt (%s)", self.cfg.scope, cfg.scope,
                 ", ".join(f"{n}: {len(s.index)}" for n, s in self._scopes.items()))

    def _adapt(self, st: _SourceState, ts: float, kept: bool) -> None:
        """Budget: a multiplicative (log-space integral) controller on the keep rate."""
        budget = self.cfg.budget_per_minute
        dt = st.budget.update(ts, kept)
        if budget is None or dt is None or dt == 0.0 or st.budget.weight < RATE_WARMUP_S:
            return
        rate = st.budget.rate_per_minute() or 0.0
        # keeping too often raises the threshold; too rarely lowers it (novelty still has to decide)
        err = max(-2.0, min(2.0, math.log((rate + 0.01 * budget) / budget)))
        t = st.threshold * math.exp(err * dt / ADAPT_TAU_S)
        st.threshold = min(max(t, self.cfg.threshold_min), self.cfg.threshold_max)
