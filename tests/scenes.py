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


def shelves(seed: int = 0) -> np.ndarray:
    """Another still scene: a store room's shelves of boxes of many colours under a grey ceiling."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), (70, 90, 110), np.uint8)
    img[:60] = (150, 150, 150)
    for top in range(70, H - 40, 70):
        cv2.rectangle(img, (0, top + 58), (W, top + 66), (40, 60, 90), -1)
        x = int(rng.integers(0, 20))
        while x < W:
            w = int(rng.integers(30, 80))
            colour = tuple(int(c) for c in rng.integers(30, 240, 3))
            cv2.rectangle(img, (x, top + int(rng.integers(5, 25))), (x + w, top + 58), colour, -1)
            x += w + int(rng.integers(4, 16))
    return img


def park(seed: int = 0) -> np.ndarray:
    """Another still scene: grass with trees and a winding path."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), (60, 150, 70), np.uint8)
    img[:90] = (230, 200, 170)
    pts = np.array([[x, int(250 + 50 * np.sin(x / 90.0))] for x in range(0, W + 20, 20)], np.int32)
    cv2.polylines(img, [pts], False, (150, 190, 210), 28)
    for _ in range(14):
        x, y = int(rng.integers(0, W)), int(rng.integers(80, 220))
        r = int(rng.integers(18, 40))
        cv2.rectangle(img, (x - 4, y), (x + 4, y + 2 * r), (40, 60, 90), -1)
        cv2.circle(img, (x, y), r, tuple(int(c) for c in (rng.integers(20, 60), rng.integers(90, 140), 40)), -1)
    return img
