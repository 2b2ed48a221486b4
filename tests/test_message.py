"""Wire format v1: encode/decode round trips and a decoder that only ever raises MessageError."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefilter.errors import MessageError
from edgefilter.message import (MAX_HEADER_BYTES, DriftMessage, FrameMessage, decode, encode_drift,
                                encode_frame)


def _jpeg(w: int = 32, h: int = 24, seed: int = 0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


JPEG = _jpeg()


def frame_header(**over) -> dict:
    h = {"v": 1, "source": "cam1", "seq": 3, "frame_index": 17, "ts": 1_700_000_000.25, "distance": 0.31,
         "reason": "novel", "width": 32, "height": 24, "encoding": "jpeg", "model": "efficientnet_lite0",
         "embedding_dim": None}
    h.update(over)
    return h


def drift_header(**over) -> dict:
    h = {"v": 1, "source": "cam1", "ts": 1_700_000_010.0, "window": 300, "reference": "warmup",
         "mmd2": 0.01, "p_value": 0.4, "ks_min_p": 0.2, "centroid_shift": 0.03, "nn_distance": 0.1,
         "keep_rate": 0.05, "drift": False}
    h.update(over)
    return h


def test_frame_round_trip_without_embedding():
    parts = encode_frame(frame_header(), JPEG)
    assert len(parts) == 3 and parts[0] == b"frame/cam1"
    msg = decode(parts)
    assert isinstance(msg, FrameMessage)
    assert (msg.source, msg.seq, msg.frame_index, msg.reason, msg.width, msg.height) == ("cam1", 3, 17, "novel", 32, 24)
    assert msg.ts == 1_700_000_000.25 and msg.distance == 0.31 and msg.embedding is None
    assert msg.image().shape == (24, 32, 3)


def test_frame_round_trip_with_embedding_is_little_endian_float32():
    emb = np.random.default_rng(1).standard_normal(1280).astype(np.float32)
    parts = encode_frame(frame_header(embedding_dim=1280), JPEG, emb)
    assert len(parts) == 4 and len(parts[3]) == 4 * 1280
    assert np.array_equal(np.frombuffer(parts[3], dtype="<f4"), emb)
    msg = decode(parts)
    assert msg.embedding.dtype == np.float32 and np.array_equal(msg.embedding, emb)


def test_first_frame_has_null_distance_and_unknown_keys_are_kept():
    msg = decode(encode_frame(frame_header(distance=None, reason="first", future={"x": [1]}), JPEG))
    assert msg.distance is None and msg.header["future"] == {"x": [1]}


def test_drift_round_trip():
    msg = decode(encode_drift(drift_header(mmd2=None, drift=True)))
    assert isinstance(msg, DriftMessage)
    assert msg.drift is True and msg.mmd2 is None and msg.window == 300 and msg.p_value == 0.4


def _bad(parts, fragment: str) -> None:
    with pytest.raises(MessageError) as e:
        decode(parts)
    assert fragment in str(e.value)


def _frame_parts(header: dict, *extra: bytes) -> list[bytes]:
    return [f"frame/{header.get('source', 'cam1')}".encode(), json.dumps(header).encode(), JPEG, *extra]


@pytest.mark.parametrize("header,fragment", [
    (frame_header(v=2), "version"),
    (frame_header(v=True), "version"),
    ({k: v for k, v in frame_header().items() if k != "seq"}, "lacks 'seq'"),
    (frame_header(seq=1.0), "'seq' must be an integer"),
    (frame_header(seq=-1), "'seq' must be >= 0"),
    (frame_header(width=0), "'width' must be >= 1"),
    (frame_header(ts="now"), "'ts' must be a number"),
    (frame_header(ts=10**400), "'ts' must be finite"),
    (frame_header(reason="bored"), "'reason' must be one of"),
    (frame_header(encoding="png"), "'encoding' must be 'jpeg'"),
    (frame_header(model=None), "'model' must be a string"),
    (frame_header(embedding_dim=0), "'embedding_dim' must be >= 1"),
    (frame_header(embedding_dim=4), "no embedding part"),
    (frame_header(source="../etc"), "source must be"),
])
def test_decode_rejects_bad_frame_headers(header, fragment):
    _bad(_frame_parts(header), fragment)


def test_decode_rejects_structural_problems():
    good = encode_frame(frame_header(), JPEG)
    _bad(good[:1], "1 parts")
    _bad(good + [b"x", b"y"], "5 parts")
    _bad([b"frame/cam1", good[1]], "3 or 4 parts")
    _bad([b"video/cam1"] + good[1:], "unknown topic")
    _bad([b"\xff\xfe"] + good[1:], "not UTF-8")
    _bad([b"frame/cam2"] + good[1:], "header says 'cam1'")
    _bad([good[0], b"\xc3\x28"] + good[2:], "header is not UTF-8")
    _bad([good[0], b"{not json"] + good[2:], "not JSON")
    _bad([good[0], b"[1, 2]"] + good[2:], "JSON object")
    _bad([good[0], good[1].replace(b'"ts":1700000000.25', b'"ts":NaN')] + good[2:], "NaN")
    _bad([good[0], b" " * (MAX_HEADER_BYTES + 1)] + good[2:], "more than")
    _bad([good[0], b"[" * 50_000 + b"]" * 50_000] + good[2:], "more than")
    _bad([good[0], b"[" * 30_000 + b"]" * 30_000] + good[2:], "")
    _bad(good[:2] + [b"GIF89a"], "FF D8")
    _bad(good + [b"\x00" * 8], "embedding_dim is null")
    parts4 = encode_frame(frame_header(embedding_dim=4), JPEG, np.ones(4, np.float32))
    _bad(parts4[:3] + [parts4[3][:12]], "expected 4 * embedding_dim = 16")
    _bad(parts4[:3] + [np.array([1, np.nan, 0, 0], "<f4").tobytes()], "NaN")
    _bad(encode_drift(drift_header()) + [b""], "a drift message has 2 parts")
    _bad([b"drift/cam1", json.dumps(drift_header(drift=1)).encode()], "'drift' must be true or false")
    _bad([b"drift/cam1", json.dumps(drift_header(p_value="x")).encode()], "'p_value' must be a number")


def test_encode_refuses_what_decode_would_reject():
    with pytest.raises(MessageError, match="'mmd2' must be finite"):
        encode_drift(drift_header(mmd2=math.nan))
    with pytest.raises(MessageError, match="strict JSON"):
        encode_drift(drift_header(extra=math.inf))
    with pytest.raises(MessageError, match="embedding has 3 values"):
        encode_frame(frame_header(embedding_dim=4), JPEG, np.ones(3, np.float32))
    with pytest.raises(MessageError, match="FF D8"):
        encode_frame(frame_header(), b"not a jpeg")
    with pytest.raises(MessageError, match="NaN"):
        encode_frame(frame_header(embedding_dim=2), JPEG, np.array([np.nan, 1], np.float32))


def test_image_of_a_corrupt_jpeg_raises_message_error():
    msg = decode(_frame_parts(frame_header()))
    msg.jpeg = b"\xff\xd8garbage"
    with pytest.raises(MessageError, match="does not decode"):
        msg.image()


# --------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)
# Headers near-valid most of the time: start from a valid one and perturb a few keys.
frame_keys = list(frame_header().keys()) + ["extra"]
drift_keys = list(drift_header().keys()) + ["extra"]
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _check_result(msg) -> None:
    assert isinstance(msg, (FrameMessage, DriftMessage))
    assert isinstance(msg.source, str) and isinstance(msg.header, dict)
    assert math.isfinite(msg.ts)
    if isinstance(msg, FrameMessage):
        assert isinstance(msg.seq, int) and msg.seq >= 0 and msg.reason in ("first", "novel", "heartbeat")
        assert (msg.embedding is None) == (msg.embedding_dim is None)


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_decode_of_arbitrary_bytes_raises_only_message_error(parts):
    try:
        _check_result(decode(parts))
    except MessageError:
        pass


@SETTINGS
@given(topic=st.sampled_from([b"frame/cam1", b"drift/cam1", b"frame/", b"drift/x y"]),
       body=json_values, extra=st.lists(st.binary(max_size=32), max_size=2))
def test_decode_of_arbitrary_json_raises_only_message_error(topic, body, extra):
    try:
        _check_result(decode([topic, json.dumps(body).encode()] + extra))
    except MessageError:
        pass


@SETTINGS
@given(kind=st.sampled_from(["frame", "drift"]), data=st.data())
def test_decode_of_perturbed_headers_raises_only_message_error(kind, data):
    header = frame_header() if kind == "frame" else drift_header()
    keys = frame_keys if kind == "frame" else drift_keys
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=3)):
        if data.draw(st.booleans()):
            header.pop(key, None)
        else:
            header[key] = data.draw(json_values)
    tail = [JPEG] if kind == "frame" else []
    tail += data.draw(st.lists(st.binary(max_size=16), max_size=1))
    topic = f"{kind}/{header.get('source')}".encode() if isinstance(header.get("source"), str) else b"frame/cam1"
    try:
        _check_result(decode([topic, json.dumps(header).encode()] + tail))
    except MessageError:
        pass


sources = st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=64)
finite = st.floats(allow_nan=False, allow_infinity=False)
strict_json = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10)


@SETTINGS
@given(source=sources, seq=st.integers(0, 2**63), index=st.integers(0, 2**40), ts=finite,
       distance=st.none() | st.floats(0, 2), reason=st.sampled_from(["first", "novel", "heartbeat"]),
       dim=st.none() | st.integers(1, 64), extra=st.dictionaries(st.text("xyz", min_size=4, max_size=6), strict_json,
                                                                max_size=2))
def test_frame_encode_decode_round_trip(source, seq, index, ts, distance, reason, dim, extra):
    header = {**extra, **frame_header(source=source, seq=seq, frame_index=index, ts=ts, distance=distance,
                                      reason=reason, embedding_dim=dim)}
    emb = None if dim is None else np.arange(dim, dtype=np.float32) / 7
    msg = decode(encode_frame(header, JPEG, emb))
    assert (msg.source, msg.seq, msg.frame_index, msg.ts, msg.distance, msg.reason) == (
        source, seq, index, ts, distance, reason)
    assert msg.jpeg == JPEG and msg.header == header
    if dim is not None:
        assert np.array_equal(msg.embedding, emb)


@SETTINGS
@given(source=sources, ts=finite, window=st.integers(0, 10**6), reference=st.none() | st.text(max_size=30),
       stats=st.lists(st.none() | finite, min_size=6, max_size=6), drift=st.booleans())
def test_drift_encode_decode_round_trip(source, ts, window, reference, stats, drift):
    keys = ("mmd2", "p_value", "ks_min_p", "centroid_shift", "nn_distance", "keep_rate")
    header = drift_header(source=source, ts=ts, window=window, reference=reference, drift=drift,
                          **dict(zip(keys, stats)))
    msg = decode(encode_drift(header))
    assert (msg.source, msg.ts, msg.window, msg.reference, msg.drift) == (source, ts, window, reference, drift)
    assert [getattr(msg, k) for k in keys] == stats
