"""The unit of work that flows capture -> preprocess -> embed -> filter -> publish."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    source: str            # configured source name
    index: int             # 0-based position in its source since start (for a file: frame number in the file)
    ts: float              # capture time, Unix seconds
    image: np.ndarray      # the decoded frame, BGR uint8 HxWx3 (what is JPEG-encoded when kept)
    t_capture: float = 0.0  # monotonic capture time, for latency
    tensor: np.ndarray | None = None      # model input, uint8 RGB (h, w, 3), set by preprocessing
    embedding: np.ndarray | None = None   # L2-normalised float32 (dim,), set by the embedder
    regions: np.ndarray | None = None     # optional (R, dim) region embeddings
    gated: bool = False    # True when the pre-gate skipped the model (embedding reused)
    view: np.ndarray | None = None        # luma + colour thumbnail (novelty.view.view_thumbnail), for best views
    # A file's own time (its first frame's capture time + frame number / fps): the novelty filter's clock for
    # a file read faster than real time, whose hold and stillness times are the scene's, not the machine's.
    media_ts: float | None = None

    @property
    def scene_ts(self) -> float:
        return self.media_ts if self.media_ts is not None else self.ts
    meta: dict = field(default_factory=dict)
