"""The rolling index of kept frames (usearch graph + exact float32 copy) and batched probes of it."""
from __future__ import annotations

import collections
import logging
import math
from typing import Iterable, Sequence

import numpy as np
from usearch.index import Index

from ..config import WindowConfig

log = logging.getLogger("edgefilter.novelty")

# Candidates asked from usearch per query. Their distances are recomputed exactly from our float32
# copy, so the f16 graph only has to rank the true nearest neighbour among the first few.
CANDIDATES = 4
# f16 storage: measured here (1280-d, 2 cores) about twice as fast to add and search as f32, half the
# memory; precision does not matter because distances are recomputed in float32.
INDEX_DTYPE = "f16"


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
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
        self._version = 0  # counts changes of the kept set: a search memo is good while it is the same
        self._search_memo: dict[int, tuple] = {}  # per candidate count: the frame's probe and the cell shortlist
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
        memo = self._search_memo.get(count)
        if not exact and memo is not None and memo[0] == self._version and np.array_equal(memo[1], vectors):
            # the same queries of the same kept set (frames the pre-gate skipped carry the last embedding):
            # the same answer, without the graph search
            return memo[2], memo[3]
        q = unit(np.atleast_2d(vectors))
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
        dist, keys = np.take_along_axis(dist, order, 1), np.take_along_axis(np.where(ok, keys, -1), order, 1)
        if not exact:
            dist.flags.writeable = keys.flags.writeable = False  # shared with the memo
            self._search_memo[count] = (self._version, np.array(vectors, copy=True), dist, keys)
        return dist, keys

    def distances_to(self, keys: Sequence[int], vector: np.ndarray) -> np.ndarray:
        """Exact cosine distances from one vector to the given live keys."""
        slots = [self._slot[int(k)] for k in keys]
        return 1.0 - self._vectors[slots] @ unit(vector)

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
        # sorted: the same kept frames in a different nearness order are the same payloads (:meth:`payloads`
        # reuses its last answer for the same keys; unsorted, 3 of 4 frames of a demo visitor missed it)
        return sorted(k for k in out if self._has_payload[self._slot[k]])

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
        v = unit(vector).reshape(self.dim)
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
        self._version += 1
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
        self._version += 1
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
            vectors = unit(vectors)
        vectors = np.ascontiguousarray(vectors, np.float32)
        self._vectors, self._ts, self._origin = vectors.copy(), ts.copy(), origin.copy()
        self._live = np.ones(n, bool)
        self._has_payload = np.zeros(n, bool)
        self._slot = {int(k): i for i, k in enumerate(keys)}
        self._order = collections.deque(int(k) for k in keys)
        if graph is None or not self._load_graph(graph, keys):
            # One thread: a parallel build inserts in a different order each time, so the same saved vectors
            # gave a different graph on each restart (a test saw 37-40 of 40 nearest found). Rare path: a
            # restart loads the saved graph; this runs only when it is missing or unusable, or on a rescope.
            self._index.add(keys.astype(np.uint64), vectors, threads=1)
        self.next_key = int(keys.max()) + 1
        self.newest_ts = float(ts.max())
        self._version += 1


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


class Probe:
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

