"""Drift references: embeddings of known-good footage, stored with the model that made them.

A reference file is an ``.npz`` (no pickles) holding ``vectors`` (n, dim) float32 in the
order the frames were read, ``segments`` (the offset where each contiguous stretch of
video starts: one per input, more after subsampling) and a JSON ``meta`` with the model id,
a description and what was read. Drift calibration compares contiguous stretches of the
reference with the rest of it, so the order and the segment boundaries matter: references
are built from contiguous footage at the live frame rate and subsampled in contiguous runs.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EdgefilterError, ReferenceError_

FORMAT_VERSION = 1
# Subsampled references keep contiguous runs this long (at least a default drift window),
# so that the stretches the null is built from look like live windows.
DEFAULT_RUN = 300


@dataclass
class Reference:
    vectors: np.ndarray              # (n, dim) float32, in reading order
    model_id: str
    description: str                 # file name, or "warmup:<n>"
    segments: np.ndarray | None = None   # int64 start offsets of contiguous stretches (first is 0)
    inputs: list[str] = field(default_factory=list)  # what was embedded
    frames_read: int = 0             # frames embedded before subsampling

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.segments is None:
            self.segments = np.zeros(1, dtype=np.int64)
        self.segments = np.asarray(self.segments, dtype=np.int64)
        if not self.frames_read:
            self.frames_read = len(self.vectors)


def save_reference(path: str | os.PathLike, ref: Reference) -> None:
    """Write atomically: a temporary file in the same directory, fsynced, then renamed."""
    p = Path(path)
    meta = {"format": FORMAT_VERSION, "model_id": ref.model_id, "description": ref.description,
            "inputs": list(ref.inputs), "frames_read": int(ref.frames_read)}
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, vectors=ref.vectors, segments=ref.segments, meta=np.array(json.dumps(meta)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_reference(path: str | os.PathLike, expected_model_id: str) -> Reference:
    """Read a reference file; raise ReferenceError_ if it is missing, corrupt or from another model."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            vectors = np.asarray(data["vectors"])
            segments = np.asarray(data["segments"])
            meta = json.loads(str(data["meta"]))
    except FileNotFoundError:
        raise ReferenceError_(f"drift reference {p}: file not found "
                              f"(build one with `edgefilter reference build --out {p} INPUT...`)") from None
    except IsADirectoryError:
        raise ReferenceError_(f"drift reference {p}: is a directory, not a reference file") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as exc:
        raise ReferenceError_(f"drift reference {p}: not a readable reference file ({exc})") from None
    if not isinstance(meta, dict) or "model_id" not in meta:
        raise ReferenceError_(f"drift reference {p}: metadata has no model id")
    if meta.get("format") != FORMAT_VERSION:
        raise ReferenceError_(f"drift reference {p}: format {meta.get('format')!r}, expected {FORMAT_VERSION}")
    if vectors.ndim != 2 or len(vectors) < 4 or not np.issubdtype(vectors.dtype, np.floating):
        raise ReferenceError_(f"drift reference {p}: vectors must be a float (n >= 4, dim) array, "
                              f"got {vectors.dtype} {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ReferenceError_(f"drift reference {p}: vectors contain NaN or infinity")
    if (segments.ndim != 1 or len(segments) == 0 or segments[0] != 0 or np.any(np.diff(segments) <= 0)
            or segments[-1] >= len(vectors)):
        raise ReferenceError_(f"drift reference {p}: segment offsets are inconsistent")
    if meta["model_id"] != expected_model_id:
        raise ReferenceError_(f"drift reference {p} was built with model {meta['model_id']!r}, but the configured "
                              f"model is {expected_model_id!r}: rebuild it with `edgefilter reference build`")
    return Reference(vectors=vectors, model_id=meta["model_id"], description=p.name, segments=segments,
                     inputs=list(meta.get("inputs", [])), frames_read=int(meta.get("frames_read", len(vectors))))


def subsample(vectors: np.ndarray, max_n: int, seed: int = 0, run: int = DEFAULT_RUN,
              segments: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically keep at most ``max_n`` rows, as contiguous runs of ``run`` rows in order.

    The sequence is cut into equal strata, one run per stratum at a seeded random offset, so the
    result covers the whole recording and keeps its frame-to-frame structure. Runs never cross an
    input's segment boundary. Returns (indices into ``vectors``, start offsets of the kept runs)."""
    n = len(vectors)
    if segments is None:
        segments = np.zeros(1, dtype=np.int64)
    if n <= max_n:
        return np.arange(n), np.asarray(segments, dtype=np.int64)
    run = max(1, min(run, max_n))
    rng = np.random.default_rng(seed)
    bounds = np.append(np.asarray(segments, dtype=np.int64), n)
    n_runs = -(-max_n // run)
    edges = np.linspace(0, n, n_runs + 1).astype(np.int64)
    picked, starts, total = [], [], 0
    for a, b in zip(edges[:-1], edges[1:]):
        length = min(run, max_n - total)
        # the segment holding the stratum's middle; keep the run inside it
        seg = int(np.searchsorted(bounds, (a + b) // 2, side="right") - 1)
        lo, hi = max(a, bounds[seg]), min(max(b, a + length), bounds[seg + 1])
        length = min(length, hi - lo)
        if length <= 0:
            continue
        start = int(lo + rng.integers(0, hi - lo - length + 1))
        starts.append(total)
        picked.append(np.arange(start, start + length))
        total += length
    idx = np.concatenate(picked)
    return idx, np.asarray(starts, dtype=np.int64)


def _read_frames(url: str):
    """Yield BGR frames of a video file, image directory or stream, one input at a time."""
    try:
        from .config import SourceConfig
        from .source import open_source
    except ImportError:  # pragma: no cover - the project ships edgefilter.source
        open_source = None
    if open_source is not None:
        src = open_source(SourceConfig(name="reference", url=url))
        src.open()
        try:
            while True:
                item = src.read()
                if item is None:
                    return
                yield item[1]
        finally:
            src.close()
    import cv2  # pragma: no cover

    cap = cv2.VideoCapture(url)  # pragma: no cover
    if not cap.isOpened():  # pragma: no cover
        raise ReferenceError_(f"reference input {url}: cannot open")
    try:  # pragma: no cover
        while True:
            ok, img = cap.read()
            if not ok:
                return
            yield img
    finally:  # pragma: no cover
        cap.release()


def build_reference(inputs: list[str], embedder, out: str | os.PathLike, max_n: int, progress: bool = True,
                    batch: int = 32, limit: int | None = None, seed: int = 0) -> Reference:
    """Embed every frame of each input in order, subsample to ``max_n`` in runs, and save to ``out``.

    ``embedder``: has ``model_id``, ``input_size`` (w, h) and ``embed(uint8 (N, h, w, 3)) -> .vectors``.
    ``limit``: most frames per input (a live stream never ends). Progress goes to stderr on a TTY."""
    from .preprocess import preprocess

    size = tuple(embedder.input_size)
    colour = getattr(embedder, "colour", "RGB")
    show = progress and sys.stderr.isatty()
    chunks: list[np.ndarray] = []
    segments: list[int] = []
    total = 0
    for url in inputs:
        segments.append(total)
        pending: list[np.ndarray] = []
        count = 0

        def flush() -> None:
            nonlocal total
            if pending:
                chunks.append(np.asarray(embedder.embed(np.stack(pending)).vectors, dtype=np.float32))
                total += len(pending)
                pending.clear()
                if show:
                    sys.stderr.write(f"\rreference: {url}: {count} frames, {total} in all")
                    sys.stderr.flush()

        for img in _read_frames(url):
            pending.append(preprocess(img, size, colour))
            count += 1
            if len(pending) >= batch:
                flush()
            if limit is not None and count >= limit:
                break
        flush()
        if count == 0:
            raise ReferenceError_(f"reference input {url}: no frames could be read")
        if segments[-1] == total:  # nothing embedded for this input
            segments.pop()
    if show:
        sys.stderr.write("\n")
    vectors = np.concatenate(chunks)
    idx, segs = subsample(vectors, max_n, seed=seed, segments=np.asarray(segments))
    ref = Reference(vectors=vectors[idx], model_id=embedder.model_id, description=Path(out).name,
                    segments=segs, inputs=list(inputs), frames_read=len(vectors))
    save_reference(out, ref)
    return ref


def cli_build(args_out: str, inputs: list[str], config_path: str | None) -> int:
    """`edgefilter reference build --out FILE INPUT...`: 0 on success, an error line and a status otherwise."""
    from .config import Config, load_config
    from .errors import EXIT_CONFIG, EXIT_ERROR, EXIT_NOINPUT, ConfigError, ModelError, SourceError
    from .model import Embedder

    try:
        cfg = load_config(config_path) if config_path else Config()
        embedder = Embedder.from_config(cfg)
        ref = build_reference(inputs, embedder, args_out, cfg.drift.max_reference)
    except ConfigError as exc:
        print(f"edgefilter reference build: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (SourceError, ReferenceError_) as exc:
        print(f"edgefilter reference build: {exc}", file=sys.stderr)
        return EXIT_NOINPUT
    except (ModelError, EdgefilterError) as exc:
        print(f"edgefilter reference build: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"edgefilter reference build: cannot write {args_out}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edgefilter reference build: interrupted; nothing written", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {args_out}: {len(ref.vectors)} vectors of {ref.frames_read} frames from {len(inputs)} "
          f"input(s), model {ref.model_id}")
    return 0
