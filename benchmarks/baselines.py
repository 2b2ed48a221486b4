"""Frame selection methods to compare edgefilter with, all on per-render-key features.

Every method takes a stream's ``keys`` (the render shown at each frame) and features indexed by key,
and returns the kept frame indices. Greedy methods keep a frame when its distance to *every* kept
frame exceeds a threshold; since a key that repeats has the same feature, each key's minimum distance
to the kept set is cached and only updated against frames kept since it was last seen.

- :func:`uniform`: every N-th frame ("save one frame every N seconds");
- :func:`greedy` with :func:`pixel_distance`: the motion filter on downscaled grey frames (64x36
  thumbnails, mean absolute difference), the strongest simple baseline in the field notes;
- :func:`greedy` with :func:`hamming_distance`: perceptual hashing (imagehash.phash, 64 bits);
- :func:`scene_cuts`: PySceneDetect's ContentDetector, keeping the first frame of every scene;
- :func:`k_center`: offline greedy k-center (farthest-first) on the embeddings, with hindsight;
- :class:`HoldFilter`: a prototype of a per-event novelty filter (hold a candidate until the scene
  settles, then keep its settled frame) to measure what that change to the filter would give.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def uniform(n: int, every: int, phase: int = 0) -> list[int]:
    return list(range(int(phase) % max(1, int(every)), n, max(1, int(every))))


def pixel_distance(kept: np.ndarray, one: np.ndarray) -> np.ndarray:
    """Mean absolute grey-level difference of thumbnails: kept (m, h, w), one (h, w) -> (m,)."""
    return np.abs(kept - one[None]).mean(axis=(1, 2))


_POP = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def hamming_distance(kept: np.ndarray, one: np.ndarray) -> np.ndarray:
    """Bits that differ between packed hashes: kept (m, bytes) uint8, one (bytes,) -> (m,)."""
    return _POP[np.bitwise_xor(kept, one[None])].sum(axis=1)


def greedy(keys: np.ndarray, features: np.ndarray, distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
           threshold: float) -> list[int]:
    """Keep a frame when its distance to every kept frame is greater than ``threshold``."""
    kept: list[int] = []
    bank = np.empty((16,) + features.shape[1:], features.dtype)
    m = 0
    best = np.full(features.shape[0], np.inf)
    seen = np.zeros(features.shape[0], np.int64)  # kept frames already compared with each key
    for i, k in enumerate(keys):
        if seen[k] < m:
            best[k] = min(best[k], float(distance(bank[seen[k]:m], features[k]).min()))
            seen[k] = m
        if best[k] > threshold:
            kept.append(i)
            if m == len(bank):
                bank = np.concatenate([bank, np.empty_like(bank)])
            bank[m] = features[k]
            m += 1
            best[k] = 0.0
            seen[k] = m
    return kept


def scene_cuts(scores: np.ndarray, threshold: float, fps: float, min_scene_s: float = 0.5) -> list[int]:
    """PySceneDetect's ContentDetector decisions on precomputed frame scores.

    The detector's own ``process_frame`` runs (its flash filter and minimum scene length included);
    only its per-frame score, the weighted HSV difference to the previous frame, comes from
    ``scores`` so a threshold sweep does not recompute it. Kept: frame 0 and the first frame of
    every detected scene.
    """
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import ContentDetector

    det = ContentDetector(threshold=threshold, min_scene_len=max(1, int(round(min_scene_s * fps))))
    it = iter(scores)
    det._calculate_frame_score = lambda timecode, img: float(next(it))  # noqa: E731 (score precomputed)
    kept = [0]
    for i in range(len(scores)):
        for cut in det.process_frame(FrameTimecode(i, fps), None):
            f = int(cut.frame_num)
            if f > kept[-1]:
                kept.append(f)
    return kept


def content_scores(keys: np.ndarray, hsv: np.ndarray) -> np.ndarray:
    """ContentDetector's default frame score (mean of |dH|, |dS|, |dV| to the previous frame)."""
    out = np.zeros(len(keys), np.float32)
    cache: dict[tuple[int, int], float] = {}
    for i in range(1, len(keys)):
        a, b = int(keys[i - 1]), int(keys[i])
        pair = (a, b) if a < b else (b, a)
        v = cache.get(pair)
        if v is None:
            d = np.abs(hsv[a].astype(np.int16) - hsv[b].astype(np.int16))
            v = cache[pair] = float(d.reshape(-1, 3).mean(axis=0).mean())
        out[i] = v
    return out


def k_center(vectors: np.ndarray, k_max: int) -> list[int]:
    """Farthest-first order of frames (cosine on unit vectors), starting at frame 0: the first k of
    the returned list are greedy k-center's selection for every k <= k_max."""
    n = len(vectors)
    order = [0]
    d = 1.0 - vectors @ vectors[0]
    for _ in range(min(k_max, n) - 1):
        j = int(np.argmax(d))
        if d[j] <= 0:
            break
        order.append(j)
        d = np.minimum(d, 1.0 - vectors @ vectors[j])
    return order


class HoldFilter:
    """Prototype: decide per event instead of per frame.

    A frame farther than ``threshold`` from every kept frame opens a candidate. The candidate is held
    while the scene moves; once ``settle`` consecutive frames each differ from their predecessor by
    less than the stream's noise floor (``floor_k`` times the running median of frame-to-frame
    distances, at least ``eps_min``), the last settled frame is kept if it is farther than
    ``settled_threshold`` from every kept frame. Otherwise, or after ``max_hold`` frames without
    settling, the held frame farthest from the kept set is kept (what a per-frame filter keeps).
    Returns kept frames and, for each, the frame at which it was decided (the publication delay).
    """

    def __init__(self, threshold: float = 0.15, settled_threshold: float = 0.08, settle: int = 5,
                 max_hold: int = 50, floor_k: float = 2.0, eps_min: float = 0.01, window: int = 300):
        self.threshold, self.settled_threshold = threshold, settled_threshold
        self.settle, self.max_hold = settle, max_hold
        self.floor_k, self.eps_min, self.window = floor_k, eps_min, window

    def run(self, vectors: np.ndarray) -> tuple[list[int], dict[int, int]]:
        n, dim = vectors.shape
        kept: list[int] = []
        decided: dict[int, int] = {}
        bank = np.empty((64, dim), np.float32)
        m = 0
        steps: list[float] = []
        held: list[tuple[int, float]] = []  # (frame, distance to kept) while a candidate is open
        still = 0

        def nearest(v: np.ndarray) -> float:
            return float((1.0 - bank[:m] @ v).min()) if m else math.inf

        def keep(i: int, now: int) -> None:
            nonlocal bank, m
            if m == len(bank):
                bank = np.concatenate([bank, np.empty_like(bank)])
            bank[m] = vectors[i]
            m += 1
            kept.append(i)
            decided[i] = now

        for i in range(n):
            v = vectors[i]
            step = float(1.0 - v @ vectors[i - 1]) if i else 0.0
            floor = max(self.eps_min, self.floor_k * float(np.median(steps[-self.window:]))) if steps else self.eps_min
            if i:
                steps.append(step)
            d = nearest(v)
            if not held:
                if d > self.threshold or m == 0:
                    held = [(i, d)]
                    still = 0
                continue
            held.append((i, d))
            still = still + 1 if step < floor else 0
            if still >= self.settle:
                if d > self.settled_threshold:
                    keep(i, i)
                else:
                    best = max(held, key=lambda x: x[1])
                    if nearest(vectors[best[0]]) > self.threshold:
                        keep(best[0], i)
                held = []
            elif len(held) >= self.max_hold:
                best = max(held, key=lambda x: x[1])
                keep(best[0], i)
                held = []
        if held:
            best = max(held, key=lambda x: x[1])
            keep(best[0], n - 1)
        return kept, decided
