"""Test media made on the fly: real encoded videos, image directories and simple scenes.

Import from tests with ``from videos import make_video`` (pytest puts tests/ on sys.path; there is no
tests/__init__.py). Everything is deterministic for a given seed.

This OpenCV build (FFmpeg backend) writes and reads back ``mp4v`` in ``.mp4`` and ``MJPG``/``XVID`` in
``.avi``; ``avc1`` (H.264) cannot be written here. ``mp4v`` keeps its index at the end of the file, so an
``.mp4`` cut short does not open at all; an ``.avi`` cut short still plays its first part.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}

# Frame numbers are drawn as a row of big black/white blocks, which survive lossy codecs.
_BITS = 12


def make_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | Callable[[int], np.ndarray],
               fps: float = 25.0, size: tuple[int, int] | None = None, fourcc: str | None = None,
               count: int | None = None) -> Path:
    """Encode ``frames`` (BGR uint8 arrays, or ``frames(i)`` for ``i < count``) into a real video file.

    ``size`` is (width, height); frames of another size are resized. The codec follows the suffix
    (``.mp4``: mp4v, ``.avi``: MJPG) unless ``fourcc`` is given. Returns the path.
    """
    path = Path(path)
    if callable(frames):
        if count is None:
            raise ValueError("make_video: a frame function needs count=")
        fn = frames
        frames = (fn(i) for i in range(count))
    code = fourcc or FOURCC_BY_SUFFIX.get(path.suffix.lower())
    if code is None:
        raise ValueError(f"make_video: no codec known for {path.suffix!r}; pass fourcc=")
    writer = None
    n = 0
    try:
        for img in frames:
            if size is None:
                size = (img.shape[1], img.shape[0])
            if writer is None:
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), float(fps), size)
                if not writer.isOpened():
                    raise RuntimeError(f"make_video: OpenCV cannot write {code} into {path}")
            if (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            writer.write(np.ascontiguousarray(img, dtype=np.uint8))
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if n == 0:
        raise ValueError("make_video: no frames given")
    return path


def make_image_dir(path: str | os.PathLike, frames: Iterable[np.ndarray], ext: str = "png",
                   corrupt: Sequence[int] = (), pattern: str = "frame_{:04d}") -> Path:
    """Write frames as ``frame_0000.png``...; indices in ``corrupt`` get garbage bytes instead of an image."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    for i, img in enumerate(frames):
        file = path / (pattern.format(i) + "." + ext)
        if i in corrupt:
            file.write_bytes(rng.integers(0, 256, 333, dtype=np.uint8).tobytes())
        elif not cv2.imwrite(str(file), img):
            raise RuntimeError(f"make_image_dir: cannot write {file}")
    return path


def static_scene(seed: int = 0, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A textured still scene (BGR), different for every seed."""
    w, h = size
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, (max(2, h // 12), max(2, w // 12), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(4):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(img, (x, y), (x + w // 6, y + h // 6), colour, -1)
    return img


def scene_with_events(n: int, events: Sequence[tuple[int, int]], seed: int = 0, size: tuple[int, int] = (160, 120),
                      noise: float = 2.0, radius: int | None = None) -> list[np.ndarray]:
    """``n`` frames of one static scene with sensor noise; during each ``[start, end)`` of ``events`` a bright
    object crosses the view from left to right."""
    w, h = size
    base = static_scene(seed, size).astype(np.int16)
    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(n):
        img = base + rng.normal(0, noise, base.shape).astype(np.int16) if noise else base.copy()
        img = np.clip(img, 0, 255).astype(np.uint8)
        for k, (start, end) in enumerate(events):
            if start <= i < end:
                t = (i - start) / max(1, end - start - 1)
                cx = int(w * (0.1 + 0.8 * t))
                colour = ((0, 0, 255), (0, 255, 0), (255, 0, 0))[k % 3]
                cv2.circle(img, (cx, h // 2), radius or max(3, h // 6), colour, -1)
        out.append(img)
    return out


def numbered_frame(i: int, size: tuple[int, int] = (160, 120), seed: int = 0) -> np.ndarray:
    """A frame that carries its own number (read back with :func:`frame_number`), on a static scene."""
    img = static_scene(seed, size)
    w, h = size
    block = w // _BITS
    for b in range(_BITS):
        v = 255 if (i >> b) & 1 else 0
        img[: h // 4, b * block:(b + 1) * block] = v
    return img


def frame_number(img: np.ndarray) -> int:
    """The number :func:`numbered_frame` drew into ``img`` (robust to lossy compression)."""
    h, w = img.shape[:2]
    block = w // _BITS
    n = 0
    for b in range(_BITS):
        patch = img[2: h // 4 - 2, b * block + 2:(b + 1) * block - 2]
        if patch.mean() > 127:
            n |= 1 << b
    return n


def numbered_frames(count: int, size: tuple[int, int] = (160, 120), seed: int = 0) -> list[np.ndarray]:
    return [numbered_frame(i, size, seed) for i in range(count)]


def truncate(path: str | os.PathLike, fraction: float = 0.5) -> Path:
    """Cut a file to ``fraction`` of its bytes, in place (a copy interrupted mid-write)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path
