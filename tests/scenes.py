"""Generated still scenes for the selection tests (no footage: tests must pass on a fresh clone)."""
from __future__ import annotations

import cv2
import numpy as np

W, H = 640, 360


def street(seed: int = 0) -> np.ndarray:
    """A textured still scene: sky, buildings with windows, a road with lane marks."""
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.uint8)
    img[:140] = (200, 170, 140)
    for x in range(0, W, 80):
        colour = tuple(int(c) for c in rng.integers(60, 160, 3))
        top = int(rng.integers(40, 100))
        cv2.rectangle(img, (x, top), (x + 70, 180), colour, -1)
        for wy in range(top + 10, 170, 22):
            for wx in range(x + 8, x + 64, 18):
                cv2.rectangle(img, (wx, wy), (wx + 9, wy + 12), (230, 220, 150), -1)
    img[180:] = (90, 90, 95)
    for x in range(0, W, 60):
        cv2.rectangle(img, (x, 268), (x + 30, 272), (230, 230, 230), -1)
    return img
