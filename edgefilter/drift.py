"""Drift statistics: does what a camera sees still look like the reference?

Per source, every ``drift.interval_s``, the last ``drift.window`` processed frames
(every frame that reached the filter, kept or not) are compared with a reference
set of embeddings:

- ``mmd2``: unbiased squared MMD (Gretton et al. 2012, the U-statistic MMD_u^2 with the
  i == j terms left out of both within-sample sums), RBF kernel
  ``exp(-|x - y|^2 / (2 s^2))`` with ``s`` the median pairwise distance within the
  reference (median heuristic, fixed per reference so that every window and the
  null are measured with the same kernel);
- ``p_value``: where ``mmd2`` falls in its null distribution, see below;
- ``ks_min_p``: two-sample Kolmogorov-Smirnov statistics on the reference's top
  ``drift.components`` principal components, each with a p-value from the same kind of
  null, Holm-corrected over the components; the smallest corrected p-value (Holm's
  smallest adjusted p-value equals Bonferroni's: ``min(1, k * min p)``);
- ``centroid_shift``: cosine distance between the window's and the reference's mean;
- ``nn_distance``: mean cosine distance from each window frame to its nearest reference
  frame, exact, read off the (window x reference) product the MMD computes anyway (a usearch
  index gave the same numbers at three times the cost of the whole update);
- ``keep_rate``: share of the window's frames the novelty filter kept.

Calibration. Consecutive video frames are strongly autocorrelated, so a window is not
an i.i.d. sample: a permutation test that shuffles frames (``mmd_permutation_pvalue``,
kept for comparison) reports tiny p-values on streams that never drifted. The null is
taken from the stream's own structure instead: contiguous stretches of the reference,
each as long as the window, are compared with the rest of the reference (leaving out
the stretch and a guard band on either side of it, so that neighbouring, near-identical
frames do not make the stretch look like the rest): a block permutation in which the unit
of exchange is a window-long stretch of video. The stretches overlap, so the p-value is a
predictive one from their distribution (see :class:`PredictiveNull`). It is calibrated when
the reference is contiguous footage at the live frame rate spanning at least ~20-30 windows
of normal operation (benchmarks/DRIFT.md); the ``drift`` flag is ``p_value <= drift.alpha``.

Cost. The reference side (kernel matrix, bandwidth, principal components, null
distributions) is computed once per reference and window length. An
update computes one (window x reference) kernel block, one (window x window) block,
k KS statistics: ~19 ms for window 300 against 2000 vectors of 1280-d with one BLAS thread,
under 1% of the time the model takes to embed those 300 frames on a 2-core CPU.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from .clock import SYSTEM_CLOCK, Clock
from .config import DriftConfig
from .errors import ReferenceError_
from .reference import Reference

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- statistics


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(x), len(y)), float32, via one matrix product."""
    x, y = _f32(x), _f32(y)
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d2, 0.0, out=d2)


def median_bandwidth(reference: np.ndarray, max_n: int = 1000, seed: int = 0) -> float:
    """Median heuristic: the median pairwise Euclidean distance within the reference.

    Computed on at most ``max_n`` vectors (a seeded subset) so its cost stays bounded."""
    ref = _f32(reference)
    if len(ref) > max_n:
        idx = np.sort(np.random.default_rng(seed).choice(len(ref), max_n, replace=False))
        ref = ref[idx]
    d2 = sq_distances(ref, ref)
    iu = np.triu_indices(len(ref), k=1)
    med = float(np.sqrt(np.median(d2[iu])))
    # Identical vectors (a frozen camera) would give 0: keep the kernel defined.
    return med if med > 1e-6 else 1.0


def rbf_kernel(x: np.ndarray, y: np.ndarray, bandwidth: float) -> np.ndarray:
    """k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2)), float32 (len(x), len(y))."""
    k = sq_distances(x, y)
    k *= np.float32(-0.5 / (bandwidth * bandwidth))
    return np.exp(k, out=k)


def _offdiag_mean(k: np.ndarray) -> float:
    n = k.shape[0]
    return (float(k.sum(dtype=np.float64)) - float(np.trace(k, dtype=np.float64))) / (n * (n - 1))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased squared MMD (MMD_u^2) between samples x (m, d) and y (n, d), RBF kernel."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd2_unbiased needs at least two vectors in each sample")
    return (_offdiag_mean(rbf_kernel(x, x, bandwidth)) + _offdiag_mean(rbf_kernel(y, y, bandwidth))
            - 2.0 * float(rbf_kernel(x, y, bandwidth).mean(dtype=np.float64)))


def mmd_permutation_pvalue(x: np.ndarray, y: np.ndarray, bandwidth: float, permutations: int = 200,
                           seed: int = 0) -> tuple[float, float]:
    """Classic permutation test of MMD_u^2 that shuffles individual vectors.

    Valid for i.i.d. samples only; on video windows it is badly anti-conservative (see the
    module docstring). Kept as the textbook baseline for tests and the benchmark."""
    z = np.concatenate([_f32(x), _f32(y)])
    m, n = len(x), len(z)
    k = rbf_kernel(z, z, bandwidth).astype(np.float64)
    np.fill_diagonal(k, 0.0)

    def stat(mask: np.ndarray) -> float:
        a = mask.astype(np.float64)
        b = 1.0 - a
        kxx = a @ k @ a / (m * (m - 1))
        kyy = b @ k @ b / ((n - m) * (n - m - 1))
        kxy = a @ k @ b / (m * (n - m))
        return kxx + kyy - 2.0 * kxy

    observed = np.zeros(n, dtype=bool)
    observed[:m] = True
    obs = stat(observed)
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(permutations):
        count += stat(rng.permutation(observed)) >= obs
    return obs, (1 + count) / (1 + permutations)


def ks_statistics(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic D per column of x (m, k) and y (n, k) (scipy's ks_2samp statistic)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=0)
    y = np.sort(np.asarray(y, dtype=np.float64), axis=0)
    m, n = len(x), len(y)
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        pooled = np.concatenate([x[:, j], y[:, j]])
        fx = np.searchsorted(x[:, j], pooled, side="right") / m
        fy = np.searchsorted(y[:, j], pooled, side="right") / n
        out[j] = np.abs(fx - fy).max()
    return out


def kolmogorov_sf(z: np.ndarray) -> np.ndarray:
    """Survival function of the Kolmogorov distribution (scipy.stats.kstwobign.sf)."""
    z = np.atleast_1d(np.asarray(z, dtype=np.float64))
    out = np.ones_like(z)
    big = z > 0.2  # below 0.2 the series needs many terms and the value is 1 to 1e-10
    k = np.arange(1, 101)[:, None]
    terms = 2.0 * (-1.0) ** (k - 1) * np.exp(-2.0 * (k * k) * (z[big][None, :] ** 2))
    out[big] = np.clip(terms.sum(0), 0.0, 1.0)
    return out


def ks_2samp_asymptotic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS statistics and their i.i.d. asymptotic p-values (Kolmogorov limit, sqrt(mn/(m+n)) D).

    Like the shuffling MMD test, the i.i.d. p-values are wrong on video; the monitor uses
    calibrated ones."""
    d = ks_statistics(x, y)
    en = len(x) * len(y) / (len(x) + len(y))
    return d, kolmogorov_sf(np.sqrt(en) * d)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=np.float64)
    k = len(p)
    order = np.argsort(p)
    adj = np.maximum.accumulate((k - np.arange(k)) * p[order])
    out = np.empty(k)
    out[order] = np.minimum(adj, 1.0)
    return out


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0
    return float(1.0 - np.dot(a, b) / (na * nb))


def centroid_shift(x: np.ndarray, y: np.ndarray) -> float:
    """Cosine distance between the means of two samples."""
    return cosine_distance(np.asarray(x, np.float64).mean(0), np.asarray(y, np.float64).mean(0))


def _orthonormal(q: np.ndarray) -> np.ndarray:
    """Orthonormal basis of a tall, thin matrix's columns (Cholesky QR, twice for accuracy)."""
    for _ in range(2):
        g = q.T @ q
        g[np.diag_indices_from(g)] += 1e-12 * max(1.0, float(np.trace(g)))
        q = np.linalg.solve(np.linalg.cholesky(g), q.T).T
    return q


def principal_components(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and the top-k principal directions (k, d) of x, by a seeded randomised SVD."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    xc = x - mean
    k = min(k, min(xc.shape))
    rng = np.random.default_rng(seed)
    q = xc @ rng.standard_normal((xc.shape[1], k + 10))
    for _ in range(4):  # power iterations: the spectrum of image embeddings decays slowly
        q = _orthonormal(q)
        q = xc @ (xc.T @ q)
    q = _orthonormal(q)
    _, _, vt = np.linalg.svd(q.T @ xc, full_matrices=False)
    return mean, vt[:k]


# --------------------------------------------------------------------------- calibration


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for i in range(1, 300):
        m2 = 2 * i
        aa = i * (b - i) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + i) * (qab + i) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (scipy.special.betainc)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (scipy.stats.t.sf)."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


class PredictiveNull:
    """The null distribution of a statistic, from contiguous stretches of the reference.

    The stretches overlap, so they hold only ``effective`` independent window-long samples
    (reference length / window): too few to read a 5% tail off their empirical distribution
    (that alone flags ~2x too often). The statistic is log-transformed (shifted below the
    null's minimum, so an unbiased MMD^2 that dips under 0 stays defined) and the p-value is a
    normal-theory prediction for one new window given that sample: Student's t with
    ``effective - 1`` degrees of freedom and the spread widened by sqrt(1 + 1/effective).
    """

    def __init__(self, null: np.ndarray, effective: float):
        null = np.asarray(null, dtype=np.float64)
        lo, med = float(null.min()), float(np.median(null))
        spread = med - lo if med > lo else max(abs(med), 1e-12)
        # The shift that makes the log-values most symmetric (a one-parameter Box-Cox): a far
        # shift leaves the statistic almost linear, a near one takes the log of a skewed tail.
        best = None
        for f in np.geomspace(0.05, 50.0, 25):
            y = np.log(null - (lo - f * spread))
            skew = abs(float(((y - y.mean()) ** 3).mean()) / max(float(y.std()) ** 3, 1e-300))
            if best is None or skew < best[0]:
                best = (skew, lo - f * spread)
        self.shift = best[1]
        y = np.log(null - self.shift)
        self.mu = float(y.mean())
        self.sd = max(float(y.std()), 1e-9)
        self.effective = effective

    def p_value(self, observed: float) -> float:
        if observed <= self.shift:
            return 1.0
        k = self.effective
        z = (math.log(observed - self.shift) - self.mu) / (self.sd * math.sqrt(1.0 + 1.0 / k))
        return float(min(1.0, max(0.0, student_t_sf(z, k - 1.0))))


# --------------------------------------------------------------------------- reference side


def _blocks(n: int, m: int, segments: np.ndarray, count: int) -> np.ndarray:
    """Start offsets of window-long stretches lying inside one segment, at most ``count``, evenly spread."""
    bounds = list(segments) + [n]
    starts = [np.arange(a, b - m + 1) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= m]
    if not starts:
        return np.arange(0, max(1, n - m + 1))
    allowed = np.concatenate(starts)
    if len(allowed) <= count:
        return allowed
    return allowed[np.round(np.linspace(0, len(allowed) - 1, count)).astype(int)]


class ReferenceModel:
    """Everything about one reference that windows are compared with, computed once.

    ``window``: frames per live window (the null is built for this length);
    ``permutations``: how many contiguous stretches form the null; ``components``: KS components.
    """

    def __init__(self, reference: Reference, window: int, permutations: int, components: int):
        vectors = _f32(reference.vectors)
        n = len(vectors)
        if n < 4:
            raise ReferenceError_(f"drift reference {reference.description}: needs at least 4 vectors, has {n}")
        self.reference = reference
        self.vectors = vectors
        # With a short reference the null needs at least two window-long stretches.
        self.window = max(2, min(window, n // 2))
        if self.window < window:
            log.warning("drift reference %s has %d frames, too few for windows of %d: comparing the last %d "
                        "frames of each window (give the reference at least twice drift.window frames)",
                        reference.description, n, window, self.window)
        m = self.window
        self.bandwidth = median_bandwidth(vectors)
        k_rr = rbf_kernel(vectors, vectors, self.bandwidth)
        np.fill_diagonal(k_rr, 0.0)
        self.k_rr_mean = float(k_rr.sum(dtype=np.float64)) / (n * (n - 1))
        self.mean, self.components = principal_components(vectors, components)
        self.ref_proj = (vectors - self.mean) @ self.components.T.astype(np.float32)
        self.ref_proj_sorted = np.sort(self.ref_proj.astype(np.float64), axis=0)
        centroid = vectors.mean(0, dtype=np.float64)
        self.centroid = centroid
        self._sq_norms = (vectors * vectors).sum(1)
        self._inv_norms = (1.0 / np.sqrt(np.maximum(self._sq_norms, 1e-30))).astype(np.float32)
        # ---- the null: window-long stretches of the reference vs the rest of it
        self.guard = max(0, min(m // 2, (n - 2 * m) // 2))
        segments = np.asarray(reference.segments if reference.segments is not None else [0], dtype=np.int64)
        starts = _blocks(n, m, segments, permutations)
        sat = np.zeros((n + 1, n + 1))
        np.cumsum(np.cumsum(k_rr, axis=0, dtype=np.float64), axis=1, out=sat[1:, 1:])
        row_sums = np.concatenate([[0.0], np.cumsum(k_rr.sum(1, dtype=np.float64))])
        total = row_sums[-1]
        del k_rr

        def rect(r0: int, r1: int, c0: int, c1: int) -> float:
            return sat[r1, c1] - sat[r0, c1] - sat[r1, c0] + sat[r0, c0]

        null_mmd, null_ks = [], []
        for s in starts:
            e = s + m
            g0, g1 = max(0, s - self.guard), min(n, e + self.guard)
            rest_n = n - (g1 - g0)
            within = rect(s, e, s, e) / (m * (m - 1))
            rest = (total - 2.0 * (row_sums[g1] - row_sums[g0]) + rect(g0, g1, g0, g1)) / (rest_n * (rest_n - 1))
            cross = (row_sums[e] - row_sums[s] - rect(s, e, g0, g1)) / (m * rest_n)
            null_mmd.append(within + rest - 2.0 * cross)
            rest = np.concatenate([self.ref_proj[:g0], self.ref_proj[g1:]])
            null_ks.append(ks_statistics(self.ref_proj[s:e], rest))
        self.null_mmd = np.asarray(null_mmd)
        self.null_ks = np.asarray(null_ks)
        # Independent window-long stretches the reference holds: the null's effective sample size.
        bounds = np.append(segments, n)
        lengths = np.diff(bounds)
        usable = lengths[lengths >= m].sum() if (lengths >= m).any() else n
        self.effective_blocks = max(2.0, usable / m)
        self.mmd_null = PredictiveNull(self.null_mmd, self.effective_blocks)
        self.ks_nulls = [PredictiveNull(self.null_ks[:, j], self.effective_blocks)
                         for j in range(self.null_ks.shape[1])]

    def compare(self, window: np.ndarray) -> dict:
        """Statistics of one window (m, d) against the reference."""
        w = _f32(window[-self.window:])
        m = len(w)
        k_ww = rbf_kernel(w, w, self.bandwidth)
        # One (window x reference) product gives both the kernel block and every cosine
        # similarity, so the nearest-neighbour distance costs no second pass over the reference.
        w_sq = (w * w).sum(1)
        dot = w @ self.vectors.T
        cos_best = (dot * self._inv_norms[None, :]).max(1) / np.sqrt(np.maximum(w_sq, 1e-30))
        k_wr = dot
        k_wr *= np.float32(-2.0)
        k_wr += w_sq[:, None]
        k_wr += self._sq_norms[None, :]
        np.maximum(k_wr, 0.0, out=k_wr)
        k_wr *= np.float32(-0.5 / (self.bandwidth * self.bandwidth))
        np.exp(k_wr, out=k_wr)
        mmd2 = _offdiag_mean(k_ww) + self.k_rr_mean - 2.0 * float(k_wr.mean(dtype=np.float64))
        d = ks_statistics((w - self.mean) @ self.components.T.astype(np.float32), self.ref_proj_sorted)
        ks_p = np.array([nl.p_value(x) for nl, x in zip(self.ks_nulls, d)])
        return {"window": m, "mmd2": float(mmd2), "p_value": self.mmd_null.p_value(mmd2),
                "ks_min_p": float(holm(ks_p).min()),
                "centroid_shift": cosine_distance(w.mean(0, dtype=np.float64), self.centroid),
                "nn_distance": float(np.mean(1.0 - cos_best, dtype=np.float64))}


# --------------------------------------------------------------------------- the monitor


@dataclass(frozen=True)
class DriftReport:
    source: str
    ts: float
    window: int
    reference: str
    mmd2: float
    p_value: float
    ks_min_p: float
    centroid_shift: float
    nn_distance: float
    keep_rate: float
    drift: bool
    compute_s: float = 0.0  # seconds the statistics took (for the cost gauge and the benchmark)

    def header(self) -> dict:
        """The published JSON header (message version 1)."""
        h = {"v": 1}
        h.update(dataclasses.asdict(self))
        h["compute_ms"] = round(h.pop("compute_s") * 1000.0, 3)
        return h


class _SourceState:
    """Ring buffers of one source. ``observe`` writes one row; ``poll`` copies the window."""

    def __init__(self, window: int, dim: int, warmup: int | None):
        self.vectors = np.zeros((window, dim), dtype=np.float32)
        self.kept = np.zeros(window, dtype=bool)
        self.pos = 0          # next row to write
        self.count = 0        # frames written since the window was (re)started
        self.warm = np.zeros((warmup, dim), dtype=np.float32) if warmup else None
        self.warm_count = 0
        self.model: ReferenceModel | None = None
        self.last_poll: float | None = None

    def resize(self, window: int) -> None:
        old_v, old_k = self.ordered()
        keep = min(window, len(old_v))
        self.vectors = np.zeros((window, self.vectors.shape[1]), dtype=np.float32)
        self.kept = np.zeros(window, dtype=bool)
        self.vectors[:keep] = old_v[len(old_v) - keep:]
        self.kept[:keep] = old_k[len(old_k) - keep:]
        self.count, self.pos = keep, keep % window

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        n = min(self.count, len(self.vectors))
        if self.count <= len(self.vectors):
            return self.vectors[:n].copy(), self.kept[:n].copy()
        idx = (np.arange(n) + self.pos) % len(self.vectors)
        return self.vectors[idx], self.kept[idx]


class DriftMonitor:
    """Windows of every source's embeddings, compared with a reference at an interval.

    ``observe`` is called from the filter thread for every processed frame and only
    copies one vector into a ring buffer. ``poll`` runs in the drift thread and does the
    statistics outside the lock. Without a reference file each source warms up its own
    reference from its first ``cfg.warmup`` frames (those frames are not also tested).
    """

    def __init__(self, cfg: DriftConfig, sources: list[str], model_id: str, dim: int,
                 reference: Reference | None, clock: Clock = SYSTEM_CLOCK):
        if reference is not None and reference.vectors.shape[1] != dim:
            raise ReferenceError_(f"drift reference {reference.description}: vectors have {reference.vectors.shape[1]} "
                                  f"dimensions, the model {model_id} gives {dim}")
        self.cfg = cfg
        self.model_id = model_id
        self.dim = dim
        self.clock = clock
        self.reference = reference
        self._lock = threading.Lock()
        self._shared: ReferenceModel | None = None  # built lazily in poll(), never in observe()
        self._states = {s: _SourceState(cfg.window, dim, None if reference is not None else cfg.warmup)
                        for s in sources}

    # -- hot path
    def observe(self, source: str, vector: np.ndarray, kept: bool) -> None:
        st = self._states.get(source)
        if st is None or vector is None:
            return
        with self._lock:
            if st.warm is not None and st.warm_count < len(st.warm):
                st.warm[st.warm_count] = vector
                st.warm_count += 1
                return
            st.vectors[st.pos] = vector
            st.kept[st.pos] = kept
            st.pos = (st.pos + 1) % len(st.vectors)
            st.count += 1

    # -- drift thread
    def poll(self) -> list[DriftReport]:
        now = self.clock.monotonic()
        reports = []
        for name, st in self._states.items():
            with self._lock:
                cfg = self.cfg
                if st.last_poll is not None and now - st.last_poll < cfg.interval_s:
                    continue
                if st.count < len(st.vectors):
                    continue
                vectors, kept = st.ordered()
                warm = st.warm if st.warm is not None and st.model is None else None
            t0 = self.clock.monotonic()
            model = self._model_for(st, warm, cfg)
            stats = model.compare(vectors)
            keep_rate = float(kept[-stats["window"]:].mean())
            elapsed = self.clock.monotonic() - t0
            with self._lock:
                st.last_poll = now
            reports.append(DriftReport(source=name, ts=self.clock.time(), reference=self._describe(model),
                                       keep_rate=keep_rate, drift=stats["p_value"] <= cfg.alpha,
                                       compute_s=elapsed, **stats))
        return reports

    def _model_for(self, st: _SourceState, warm: np.ndarray | None, cfg: DriftConfig) -> ReferenceModel:
        if self.reference is not None:
            if self._shared is None:
                self._shared = ReferenceModel(self.reference, cfg.window, cfg.permutations, cfg.components)
            return self._shared
        if st.model is None:
            ref = Reference(vectors=warm.copy(), model_id=self.model_id, description=f"warmup:{len(warm)}",
                            segments=np.zeros(1, dtype=np.int64))
            st.model = ReferenceModel(ref, cfg.window, cfg.permutations, cfg.components)
        return st.model

    def _describe(self, model: ReferenceModel) -> str:
        ref = model.reference
        if ref.description.startswith("warmup:"):
            return ref.description
        return f"{ref.description} (model {ref.model_id})"

    def reconfigure(self, cfg: DriftConfig) -> None:
        """Apply a reloaded config: window, interval, alpha, permutations and components.

        A changed reference file or warm-up length needs a restart (the reference is loaded
        with the model)."""
        with self._lock:
            old = self.cfg
            if cfg.reference != old.reference or cfg.warmup != old.warmup:
                log.warning("reload: drift.reference and drift.warmup changes need a restart; not applied")
            self.cfg = cfg
            rebuild = (cfg.window, cfg.permutations, cfg.components) != (old.window, old.permutations, old.components)
            if cfg.window != old.window:
                for st in self._states.values():
                    st.resize(cfg.window)
            if rebuild:
                self._shared = None
                for st in self._states.values():
                    if st.model is not None:
                        ref = st.model.reference
                        st.model = None
                        st.warm = ref.vectors  # rebuilt from the same warm-up frames in poll()
                        st.warm_count = len(ref.vectors)
