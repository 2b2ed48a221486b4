"""Stand-ins shared by tests."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np


class FakeEmbedder:
    """Embeds a frame as its mean-removed 8x8 thumbnail: new objects move it, a static scene does not.
    Its regions are the thumbnail's 2x2 quarters (4x4x3 each, mean-removed), like the regions graph's
    cells. ``delay`` + ``per_frame`` x batch size seconds per call, like a model would take."""

    model_id = "fake-embedder@1"
    dim = 8 * 8 * 3
    input_size = (8, 8)
    colour = "RGB"
    provider = "FakeProvider"
    has_regions = True
    region_count = 4
    region_dim = 4 * 4 * 3

    def __init__(self, delay: float = 0.0, per_frame: float = 0.0):
        self.delay = delay
        self.per_frame = per_frame
        self.batches: list[int] = []

    def embed(self, batch: np.ndarray) -> SimpleNamespace:
        self.batches.append(len(batch))
        if self.delay or self.per_frame:
            time.sleep(self.delay + self.per_frame * len(batch))
        x = batch.astype(np.float32)
        v = x.reshape(len(batch), -1)
        v = v - v.mean(axis=1, keepdims=True)
        v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-6
        n = len(batch)
        cells = x.reshape(n, 2, 4, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, 4, 48)
        cells = cells - cells.mean(axis=2, keepdims=True)
        cells /= np.linalg.norm(cells, axis=2, keepdims=True) + 1e-6
        return SimpleNamespace(vectors=v, regions=cells)
