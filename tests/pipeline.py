"""Generated frames fed to the filter as the daemon feeds it (pre-gate, view thumbnails, region cells), through
a real model: shared by the selection tests."""
from __future__ import annotations

import cv2
import numpy as np

from edgefilter.clock import FakeClock
from edgefilter.config import FilterConfig, GatesConfig
from edgefilter.gates import ChangeGate, grey_thumbnail
from edgefilter.model import Embedder
from edgefilter.novelty import NoveltyFilter
from edgefilter.novelty.view import view_thumbnail
from edgefilter.preprocess import preprocess
from scenes import H, W


def camera(img: np.ndarray, rng: np.random.Generator, shake: int = 3, exposure: float = 0.18) -> np.ndarray:
    """What a real camera adds to an unchanged view: shake, auto-exposure, flicker, sensor noise."""
    m = np.float32([[1, 0, rng.integers(-shake, shake + 1)], [0, 1, rng.integers(-shake, shake + 1)]])
    out = cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    gain = 1.0 + rng.uniform(-exposure, exposure)
    out = out * gain + rng.uniform(-6, 6) + rng.normal(0, 4, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def run(filt: NoveltyFilter, embedder: Embedder, frames: list[np.ndarray], start: int = 0,
        gate: ChangeGate | None = None) -> list[int]:
    """Feed frames as the daemon does (pre-gate, view thumbnails, tokens); the frame numbers kept."""
    kept: list[int] = []
    out = embedder.embed(np.stack([preprocess(f, embedder.input_size, embedder.colour) for f in frames]))
    last = 0
    for i, img in enumerate(frames):
        n = start + i
        view = view_thumbnail(img)
        if gate is None or not gate.should_skip(grey_thumbnail(img), view):
            last = i
        cells = out.regions[last] if filt.region_count else None  # the regions model's cells, when compared
        d = filt.decide([("cam", n / 10.0, out.vectors[last], cells, n, view)])[0]
        if d.keep:
            kept.append(n)
        kept.extend(tok for tok, _ in filt.released())
        filt.discarded()
    return kept


def run_with_cells(cfg: FilterConfig, embedder: Embedder, frames: list[np.ndarray]) -> list[int]:
    """As the daemon runs a source with the default model: pre-gate, view thumbnails, region cells."""
    filt = NoveltyFilter(cfg, embedder.dim, ["cam"], FakeClock(), region_count=embedder.region_count,
                         region_dim=embedder.region_dim)
    return run(filt, embedder, frames, gate=ChangeGate(GatesConfig())) + [tok for tok, _ in filt.flush()]
