"""Frame preprocessing for the embedding model, done off the inference thread.

A camera frame (OpenCV's BGR, or grey, or BGRA) becomes the model's input: a
uint8 image of the card's size and colour order. Normalisation ((x-127)/128 for
the default model) lives inside the ONNX graph, so what crosses the queue to the
inference thread is a small uint8 array, four times lighter than float32.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# cvtColor codes per (input channels, wanted colour order)
_CONVERSIONS = {
    (1, "RGB"): cv2.COLOR_GRAY2RGB,
    (1, "BGR"): cv2.COLOR_GRAY2BGR,
    (3, "RGB"): cv2.COLOR_BGR2RGB,
    (3, "BGR"): None,
    (4, "RGB"): cv2.COLOR_BGRA2RGB,
    (4, "BGR"): cv2.COLOR_BGRA2BGR,
}


def preprocess(image_bgr: np.ndarray, size: tuple[int, int] = (224, 224), colour: str = "RGB") -> np.ndarray:
    """Resize and reorder one frame for the model.

    ``image_bgr``: uint8, (h, w) grey, (h, w, 1) grey, (h, w, 3) BGR or (h, w, 4) BGRA.
    ``size``: (width, height) of the model input. ``colour``: "RGB" or "BGR".
    Returns a C-contiguous uint8 array of shape (height, width, 3).
    """
    img = np.asarray(image_bgr)
    if img.dtype != np.uint8:
        raise ValueError(f"preprocess: expected a uint8 image, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    channels = 1 if img.ndim == 2 else img.shape[2] if img.ndim == 3 else 0
    key = (channels, colour.upper())
    if key not in _CONVERSIONS or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"preprocess: unsupported image shape {img.shape} or colour {colour!r}")
    w, h = int(size[0]), int(size[1])
    # Resize before converting colour: fewer pixels to convert.
    if img.shape[1] != w or img.shape[0] != h:
        img = resize(img, w, h)
    code = _CONVERSIONS[key]
    if code is not None:
        img = cv2.cvtColor(img, code)
    return np.ascontiguousarray(img)


WORKING_SIZE = (640, 360)  # (long side, short side): what the thumbnails and the model input need at most


def working_copy(image: np.ndarray) -> np.ndarray:
    """The frame that the per-frame work (gates, thumbnails, model input) reads: a frame at least twice
    ``WORKING_SIZE`` is block-averaged by the largest power of two that keeps it at least that size, either
    way round. A 1080p frame is halved to 960x540: its thumbnails and model input then cost 1.5 instead of
    4.6 ms on one core (2026-12-04), and the model input differs from the full frame's by rounding alone
    (both are block averages by 4). Smaller frames are returned as they are; the full frame stays the one
    kept and sent. ``image``: a frame :func:`edgefilter.gates.corrupt` lets through (the daemon asks first)."""
    h, w = image.shape[:2]
    long_side, short_side = max(w, h), min(w, h)
    k = 1
    while long_side // (2 * k) >= WORKING_SIZE[0] and short_side // (2 * k) >= WORKING_SIZE[1]:
        k *= 2
    if k == 1:
        return image
    return cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)


def area_factor(src_w: int, src_h: int, w: int, h: int) -> int:
    """The power of two by which a frame can be block-averaged while both sides stay at least 3/4 of
    the target's (so what is left is a plain resize by less than 1.5x)."""
    k = 1
    while src_w // (2 * k) * 4 >= 3 * w and src_h // (2 * k) * 4 >= 3 * h:
        k *= 2
    return k


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Shrink without aliasing, cheaply: block-average by a power of two (OpenCV's integer-factor
    INTER_AREA path), then bilinear for the rest. A general INTER_AREA resize averages as well but
    costs 4-9x more (0.9 ms for 640x360 -> 224x224 on one core here, 5 ms from 1080p; this: 0.1 / 1.2
    ms); that was about a twentieth of the two cores' time at full rate."""
    k = area_factor(img.shape[1], img.shape[0], w, h)
    if k > 1:
        img = cv2.resize(img, (img.shape[1] // k, img.shape[0] // k), interpolation=cv2.INTER_AREA)
    if img.shape[1] == w and img.shape[0] == h:
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def stack(tensors: Sequence[np.ndarray]) -> np.ndarray:
    """Stack preprocessed frames into one (N, h, w, 3) batch with a single copy."""
    if len(tensors) == 0:
        raise ValueError("stack: no frames")
    first = tensors[0]
    if len(tensors) == 1:
        # A view, not a copy: the inference call reads it once and lets it go.
        return np.ascontiguousarray(first)[None]
    out = np.empty((len(tensors),) + first.shape, dtype=first.dtype)
    for i, t in enumerate(tensors):
        if t.shape != first.shape:
            raise ValueError(f"stack: frame {i} has shape {t.shape}, expected {first.shape}")
        out[i] = t
    return out
