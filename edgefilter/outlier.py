"""An outlier score for kept frames against the drift reference (rarity, for a labelling queue).

``distance`` is the cosine distance from a frame to its nearest reference frame. Alone it says little
(what is far depends on how spread out the reference is), so it comes with ``percentile``: where that
distance falls among the reference's own leave-one-out nearest-neighbour distances (each reference frame
against all the others). 50 is an ordinary frame; 100 is farther than any reference frame is from the
rest. A downstream queue sorts by it to look at the rarest frames first.
"""
from __future__ import annotations

import numpy as np

_CHUNK = 1024  # rows per matrix product: bounded memory for large references


class OutlierScorer:
    def __init__(self, reference: np.ndarray):
        ref = np.asarray(reference, dtype=np.float32)
        norms = np.linalg.norm(ref, axis=1, keepdims=True)
        self._ref = ref / np.where(norms > 0, norms, 1.0)
        n = len(self._ref)
        loo = np.empty(n, dtype=np.float32)
        for start in range(0, n, _CHUNK):
            sims = self._ref[start:start + _CHUNK] @ self._ref.T
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf  # leave the frame itself out
            loo[start:start + _CHUNK] = 1.0 - sims.max(1)
        # A one-frame reference has no leave-one-out distance: every distance is then at percentile 100.
        self._loo = np.sort(loo[np.isfinite(loo)])

    def score(self, vector: np.ndarray) -> dict:
        """``{"distance", "percentile"}`` for one embedding (the header's ``outlier``)."""
        v = np.asarray(vector, dtype=np.float32)
        distance = float(max(0.0, 1.0 - float((self._ref @ (v / max(float(np.linalg.norm(v)), 1e-12))).max())))
        if len(self._loo) == 0:
            percentile = 100.0
        else:
            percentile = 100.0 * float(np.searchsorted(self._loo, distance, side="right")) / len(self._loo)
        return {"distance": round(distance, 5), "percentile": round(percentile, 1)}
