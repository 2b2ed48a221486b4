"""The edgefilter wire format, version 1 (a stable contract).

Every message is a ZeroMQ multipart message whose first part is the topic, so a
subscriber filters by prefix (``frame/``, ``drift/``, ``frame/cam1`` - note that
a prefix also matches ``frame/cam10``). Headers are UTF-8 JSON objects (strict
JSON: no NaN or Infinity). Decoders must ignore keys they do not know, so later
versions can add keys without breaking v1 readers; a change that breaks a v1
reader gets a new ``v``.

Kept frame: ``[topic, header, jpeg]`` or ``[topic, header, jpeg, embedding]``

- ``topic``: ``b"frame/<source>"`` in UTF-8.
- ``header``: JSON object with at least

  ============== ============================================================
  key            value
  ============== ============================================================
  v              ``1``
  source         source name (1-64 of ``A-Z a-z 0-9 _ . -``), equal to the
                 name in the topic
  seq            int >= 0, per source, +1 for every kept frame the publisher
                 handled, so a frame dropped for a slow subscriber shows as a
                 gap; it restarts at 0 when the daemon restarts
  frame_index    int >= 0, position of the frame in its source since the
                 daemon started (for a file: its frame number in the file)
  ts             capture time, Unix seconds (number)
  distance       cosine distance to the nearest kept neighbour that decided
                 (number), or ``null`` for the first frame of a source
  reason         ``"first"``, ``"novel"`` or ``"heartbeat"`` (the novelty filter),
                 or ``"label"``/``"prompt"`` (kept by a ``rules.keep_labels`` or
                 ``rules.keep_prompts`` rule)
  width, height  int > 0, size of the JPEG image in pixels
  encoding       ``"jpeg"``
  model          id of the embedding model (from its card)
  embedding_dim  int > 0 when the embedding part is sent, else ``null``
  ============== ============================================================

  The publisher also sends ``threshold`` (the novelty threshold in force, a
  number or ``null``) and ``region`` (``null``, or the row-major grid cell whose
  change made the frame novel; then ``distance`` and ``threshold`` are that
  change and ``filter.region_threshold``, in units of the cell's noise); both are
  informative, not required.

  Also informative, sent when known: ``labels`` (the model's top 5 classes,
  ``[{"name": str, "score": number}]``, best first; the default model's
  ImageNet classes), ``prompts`` (the ``rules.keep_prompts`` it matches,
  ``[{"text": str, "score": number}]``), ``rule`` (``"keep_labels:<name>"`` or
  ``"keep_prompts:<text>"`` when a keep rule kept the frame, else absent) and ``outlier`` (with a drift reference loaded:
  ``{"distance": number, "percentile": number}``, the cosine distance to the
  nearest reference frame and its percentile among the reference's own
  leave-one-out distances).
- ``jpeg``: the JPEG-encoded frame (starts with ``FF D8``).
- ``embedding`` (only when ``publish.embeddings`` is on): ``embedding_dim``
  little-endian float32 values, exactly ``4 * embedding_dim`` bytes. The default
  model's embeddings are L2-normalised.

Drift statistics: ``[topic, header]``

- ``topic``: ``b"drift/<source>"``.
- ``header``: JSON object with at least ``v`` (1), ``source``, ``ts`` (number),
  ``window`` (int >= 0, frames in the tested window), ``reference`` (string
  naming the reference, or ``null``), ``mmd2``, ``p_value``, ``ks_min_p``,
  ``centroid_shift``, ``nn_distance``, ``keep_rate`` (each a finite number, or
  ``null`` when it could not be computed) and ``drift`` (``true``/``false``).

Limits a decoder enforces: topic at most 256 bytes, header at most 64 KiB,
``embedding_dim`` at most 65536. :func:`decode` raises only
:class:`~edgefilter.errors.MessageError` on malformed input and never
unpickles or evaluates anything.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MessageError

VERSION = 1
FRAME_PREFIX = "frame/"
DRIFT_PREFIX = "drift/"
REASONS = ("first", "novel", "heartbeat", "label", "prompt")
MAX_TOPIC_BYTES = 256
MAX_HEADER_BYTES = 64 * 1024
MAX_EMBEDDING_DIM = 65536

_SOURCE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
DRIFT_STATS = ("mmd2", "p_value", "ks_min_p", "centroid_shift", "nn_distance", "keep_rate")


@dataclass
class FrameMessage:
    """A kept frame as received. ``header`` holds every key, unknown ones included."""

    source: str
    seq: int
    frame_index: int
    ts: float
    distance: float | None
    reason: str
    width: int
    height: int
    encoding: str
    model: str
    embedding_dim: int | None
    jpeg: bytes
    embedding: np.ndarray | None = None  # float32 (embedding_dim,) when sent
    header: dict = field(default_factory=dict)

    def image(self) -> np.ndarray:
        """The frame decoded to a BGR uint8 array; MessageError when the JPEG is corrupt."""
        import cv2

        buf = np.frombuffer(self.jpeg, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        if img is None:
            raise MessageError(f"frame/{self.source} seq {self.seq}: JPEG part does not decode")
        return img


@dataclass
class DriftMessage:
    """Drift statistics of one source's last window. ``header`` holds every key."""

    source: str
    ts: float
    window: int
    reference: str | None
    mmd2: float | None
    p_value: float | None
    ks_min_p: float | None
    centroid_shift: float | None
    nn_distance: float | None
    keep_rate: float | None
    drift: bool
    header: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- field checks


def _where(kind: str, source: Any) -> str:
    return f"{kind}/{source}" if isinstance(source, str) else kind


def _required(h: dict, key: str, where: str) -> Any:
    if key not in h:
        raise MessageError(f"{where}: header lacks {key!r}")
    return h[key]


def _int(h: dict, key: str, where: str, *, min: int = 0, nullable: bool = False) -> int | None:
    v = _required(h, key, where)
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise MessageError(f"{where}: header {key!r} must be an integer, got {type(v).__name__}")
    if v < min:
        raise MessageError(f"{where}: header {key!r} must be >= {min}, got {v}")
    return v


def _num(h: dict, key: str, where: str, *, nullable: bool = False) -> float | None:
    v = _required(h, key, where)
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MessageError(f"{where}: header {key!r} must be a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise MessageError(f"{where}: header {key!r} must be finite, got {v!r}")
    return f


def _str(h: dict, key: str, where: str, *, nullable: bool = False) -> str | None:
    v = _required(h, key, where)
    if v is None and nullable:
        return None
    if not isinstance(v, str):
        raise MessageError(f"{where}: header {key!r} must be a string, got {type(v).__name__}")
    return v


def _bool(h: dict, key: str, where: str) -> bool:
    if key not in h:
        raise MessageError(f"{where}: header lacks {key!r}")
    v = h[key]
    if not isinstance(v, bool):
        raise MessageError(f"{where}: header {key!r} must be true or false, got {type(v).__name__}")
    return v


def _common(h: dict, kind: str) -> tuple[str, str]:
    """Check ``v`` and ``source``; return (source, where-text for messages)."""
    source = h.get("source")
    where = _where(kind, source)
    if "v" not in h:
        raise MessageError(f"{where}: header lacks 'v'")
    if isinstance(h["v"], bool) or h["v"] != VERSION or not isinstance(h["v"], int):
        raise MessageError(f"{where}: unsupported message version {h['v']!r} (this decoder reads v{VERSION})")
    source = _str(h, "source", where)
    if not _SOURCE_RE.fullmatch(source):
        raise MessageError(f"{where}: source must be 1-64 characters of A-Z a-z 0-9 _ . -, got {source!r}")
    return source, where


def _check_frame_header(h: dict) -> FrameMessage:
    """Validate a frame header; returns a FrameMessage without payload."""
    source, where = _common(h, "frame")
    reason = _str(h, "reason", where)
    if reason not in REASONS:
        raise MessageError(f"{where}: header 'reason' must be one of {', '.join(REASONS)}, got {reason!r}")
    encoding = _str(h, "encoding", where)
    if encoding != "jpeg":
        raise MessageError(f"{where}: header 'encoding' must be 'jpeg', got {encoding!r}")
    dim = _int(h, "embedding_dim", where, min=1, nullable=True)
    if dim is not None and dim > MAX_EMBEDDING_DIM:
        raise MessageError(f"{where}: header 'embedding_dim' {dim} exceeds {MAX_EMBEDDING_DIM}")
    return FrameMessage(
        source=source, seq=_int(h, "seq", where), frame_index=_int(h, "frame_index", where),
        ts=_num(h, "ts", where), distance=_num(h, "distance", where, nullable=True), reason=reason,
        width=_int(h, "width", where, min=1), height=_int(h, "height", where, min=1), encoding=encoding,
        model=_str(h, "model", where), embedding_dim=dim, jpeg=b"", header=h)


def _check_drift_header(h: dict) -> DriftMessage:
    source, where = _common(h, "drift")
    stats = {k: _num(h, k, where, nullable=True) for k in DRIFT_STATS}
    return DriftMessage(source=source, ts=_num(h, "ts", where), window=_int(h, "window", where),
                        reference=_str(h, "reference", where, nullable=True), drift=_bool(h, "drift", where),
                        header=h, **stats)


def _dump(header: dict, where: str) -> bytes:
    try:
        data = json.dumps(header, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise MessageError(f"{where}: header cannot be encoded as strict JSON: {e}") from None
    if len(data) > MAX_HEADER_BYTES:
        raise MessageError(f"{where}: header is {len(data)} bytes, more than {MAX_HEADER_BYTES}")
    return data


def _reject_constant(name: str) -> Any:
    raise MessageError(f"header contains {name}, which strict JSON does not allow")


# --------------------------------------------------------------------------- encode / decode


def encode_frame(header: dict, jpeg: bytes, embedding: np.ndarray | None = None) -> list[bytes]:
    """Multipart parts of a kept frame. The header is validated (MessageError when invalid);
    ``embedding_dim`` must agree with ``embedding`` (null without one)."""
    msg = _check_frame_header(header)
    where = f"frame/{msg.source}"
    if not bytes(jpeg[:2]) == b"\xff\xd8":
        raise MessageError(f"{where}: JPEG part does not start with the JPEG marker FF D8")
    parts = [(FRAME_PREFIX + msg.source).encode("utf-8"), _dump(header, where), bytes(jpeg)]
    if embedding is None:
        if msg.embedding_dim is not None:
            raise MessageError(f"{where}: header has embedding_dim {msg.embedding_dim} but no embedding is sent")
        return parts
    vec = np.ascontiguousarray(embedding, dtype="<f4").reshape(-1)
    if msg.embedding_dim != vec.size:
        raise MessageError(f"{where}: embedding has {vec.size} values but header embedding_dim is "
                           f"{msg.embedding_dim}")
    if not np.isfinite(vec).all():
        raise MessageError(f"{where}: embedding contains NaN or infinity")
    parts.append(vec.tobytes())
    return parts


def encode_drift(header: dict) -> list[bytes]:
    """Multipart parts of a drift message; MessageError when the header is invalid."""
    msg = _check_drift_header(header)
    where = f"drift/{msg.source}"
    return [(DRIFT_PREFIX + msg.source).encode("utf-8"), _dump(header, where)]


def decode(parts: list[bytes]) -> FrameMessage | DriftMessage:
    """Decode a received multipart message; raises only MessageError when it is not valid v1."""
    try:
        return _decode(parts)
    except MessageError:
        raise
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as e:  # defensive: never leak
        raise MessageError(f"malformed message: {type(e).__name__}: {e}") from None


def _decode(parts: list[bytes]) -> FrameMessage | DriftMessage:
    if not isinstance(parts, (list, tuple)) or not 2 <= len(parts) <= 4:
        n = len(parts) if isinstance(parts, (list, tuple)) else "?"
        raise MessageError(f"message has {n} parts; v1 has 2 (drift) or 3-4 (frame)")
    parts = [bytes(p) for p in parts]
    topic_b, header_b = parts[0], parts[1]
    if len(topic_b) > MAX_TOPIC_BYTES:
        raise MessageError(f"topic is {len(topic_b)} bytes, more than {MAX_TOPIC_BYTES}")
    try:
        topic = topic_b.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError(f"topic is not UTF-8: {topic_b[:64]!r}") from None
    if topic.startswith(FRAME_PREFIX):
        kind = "frame"
        if len(parts) not in (3, 4):
            raise MessageError(f"{topic}: a frame message has 3 or 4 parts, got {len(parts)}")
    elif topic.startswith(DRIFT_PREFIX):
        kind = "drift"
        if len(parts) != 2:
            raise MessageError(f"{topic}: a drift message has 2 parts, got {len(parts)}")
    else:
        raise MessageError(f"unknown topic {topic[:64]!r} (v1 has frame/<source> and drift/<source>)")
    topic_source = topic[len(kind) + 1:]

    if len(header_b) > MAX_HEADER_BYTES:
        raise MessageError(f"{topic}: header is {len(header_b)} bytes, more than {MAX_HEADER_BYTES}")
    try:
        text = header_b.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError(f"{topic}: header is not UTF-8") from None
    try:
        header = json.loads(text, parse_constant=_reject_constant)
    except MessageError as e:
        raise MessageError(f"{topic}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise MessageError(f"{topic}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise MessageError(f"{topic}: header must be a JSON object, got {type(header).__name__}")

    msg = _check_frame_header(header) if kind == "frame" else _check_drift_header(header)
    if msg.source != topic_source:
        raise MessageError(f"{topic}: topic names source {topic_source!r} but header says {msg.source!r}")
    if kind == "drift":
        return msg

    assert isinstance(msg, FrameMessage)
    msg.jpeg = parts[2]
    if msg.jpeg[:2] != b"\xff\xd8":
        raise MessageError(f"{topic} seq {msg.seq}: JPEG part does not start with FF D8")
    if len(parts) == 4:
        if msg.embedding_dim is None:
            raise MessageError(f"{topic} seq {msg.seq}: embedding part sent but embedding_dim is null")
        if len(parts[3]) != 4 * msg.embedding_dim:
            raise MessageError(f"{topic} seq {msg.seq}: embedding part is {len(parts[3])} bytes, expected "
                               f"4 * embedding_dim = {4 * msg.embedding_dim}")
        vec = np.frombuffer(parts[3], dtype="<f4").astype(np.float32)
        if not np.isfinite(vec).all():
            raise MessageError(f"{topic} seq {msg.seq}: embedding contains NaN or infinity")
        msg.embedding = vec
    elif msg.embedding_dim is not None:
        raise MessageError(f"{topic} seq {msg.seq}: embedding_dim is {msg.embedding_dim} but no embedding part "
                           f"was sent")
    return msg
