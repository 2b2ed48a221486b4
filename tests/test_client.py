"""Subscriber client and `subscribe` logic against a hand-driven XPUB socket on loopback."""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from edgefilter.client import Subscriber, cli_subscribe
from edgefilter.errors import PublishError
from edgefilter.message import DriftMessage, FrameMessage, encode_drift, encode_frame


def jpeg(seed: int) -> bytes:
    img = np.full((24, 32, 3), seed * 10 % 256, np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def frame_parts(source: str, seq: int, index: int | None = None) -> list[bytes]:
    header = {"v": 1, "source": source, "seq": seq, "frame_index": seq * 5 if index is None else index,
              "ts": 1_700_000_000.0 + seq, "distance": None if seq == 0 else 0.3, "reason": "first" if seq == 0
              else "novel", "width": 32, "height": 24, "encoding": "jpeg", "model": "m", "embedding_dim": None}
    return encode_frame(header, jpeg(seq))


DRIFT = encode_drift({"v": 1, "source": "cam1", "ts": 5.0, "window": 300, "reference": None, "mmd2": 0.1,
                      "p_value": 0.001, "ks_min_p": 0.01, "centroid_shift": 0.2, "nn_distance": 0.3,
                      "keep_rate": 0.2, "drift": True})


class Server:
    """An XPUB socket the test drives message by message."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.linger = 0
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscriptions reach wait_subscribed
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.last_endpoint.decode()

    def wait_subscribed(self, n: int = 2, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while n:
            assert time.monotonic() < deadline, "subscription never arrived"
            if self.sock.poll(100) and self.sock.recv()[:1] == b"\x01":
                n -= 1

    def send(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_recv_decodes_skips_malformed_and_times_out(server):
    with Subscriber(server.endpoint) as sub:
        server.wait_subscribed()
        server.send([b"frame/cam1", b"{not json", b"x"])
        server.send(frame_parts("cam1", 0))
        server.send(DRIFT)
        first, second = sub.recv(5.0), sub.recv(5.0)
        assert isinstance(first, FrameMessage) and first.seq == 0 and first.image().shape == (24, 32, 3)
        assert isinstance(second, DriftMessage) and second.drift is True and second.reference is None
        assert sub.malformed == 1
        t0 = time.monotonic()
        assert sub.recv(0.3) is None
        assert 0.25 < time.monotonic() - t0 < 10.0  # its timeout, then None (slow under load, never early)


def test_iteration_and_gap_tracking_per_source(server):
    seen = []
    with Subscriber(server.endpoint, on_gap=lambda s, exp, got: seen.append((s, exp, got))) as sub:
        server.wait_subscribed()
        for src, seq in [("a", 4), ("a", 5), ("b", 0), ("a", 9), ("b", 1), ("b", 3), ("a", 0)]:
            server.send(frame_parts(src, seq))
        it = iter(sub)
        got = [next(it) for _ in range(7)]
    assert [(m.source, m.seq) for m in got][:3] == [("a", 4), ("a", 5), ("b", 0)]
    # joining at seq 4 is no gap; a->9 misses 6,7,8; b->3 misses 2; a going back to 0 is a restart, no gap
    assert sub.gaps == {"a": 3, "b": 1}
    assert seen == [("a", 6, 9), ("b", 2, 3)]


def test_record_writes_frames_manifest_drift_and_reports_gaps(server, tmp_path, caplog):
    out = tmp_path / "out"
    with Subscriber(server.endpoint) as sub:
        server.wait_subscribed()
        for parts in [frame_parts("cam1", 0), frame_parts("cam1", 1), [b"frame/cam1", b"garbage"], DRIFT,
                      frame_parts("cam1", 3), frame_parts("cam2", 0), frame_parts("cam1", 4)]:
            server.send(parts)
        summary = sub.record(out, count=5, duration=10)
    assert (summary.frames, summary.drift, summary.malformed) == (5, 1, 1)
    assert summary.gaps == {"cam1": 1, "cam2": 0} and summary.missing == 1
    assert summary.frames_by_source == {"cam1": 4, "cam2": 1}
    assert "missing seq: cam1: 1" in summary.text()
    assert any("cam1: 1 frame(s) missing: expected seq 2, received 3" in r.getMessage() for r in caplog.records)
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(m["source"], m["seq"]) for m in lines] == [("cam1", 0), ("cam1", 1), ("cam1", 3), ("cam2", 0),
                                                         ("cam1", 4)]
    for m in lines:
        assert m["file"] == f"{m['source']}/{m['seq']:08d}_{m['frame_index']}.jpg"
        assert (out / m["file"]).read_bytes() == jpeg(m["seq"])
        assert m["received_ts"] > 1_600_000_000 and m["model"] == "m"
    drift = [json.loads(line) for line in (out / "drift.jsonl").read_text().splitlines()]
    assert len(drift) == 1 and drift[0]["drift"] is True and drift[0]["p_value"] == 0.001


def test_record_stops_on_duration_and_stop_event_and_never_overwrites(server, tmp_path):
    out = tmp_path / "out"
    with Subscriber(server.endpoint) as sub:
        server.wait_subscribed()
        server.send(frame_parts("..", 0, index=0))  # a legal source name that must not become a path
        t0 = time.monotonic()
        summary = sub.record(out, duration=0.5)
        assert 0.4 < time.monotonic() - t0 < 10 and summary.frames == 1
        assert (out / "_.." / "00000000_0.jpg").exists()
        server.send(frame_parts("..", 0, index=0))  # publisher restarted: same seq and index again
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        t0 = time.monotonic()
        summary = sub.record(out, stop_event=stop)
        assert time.monotonic() - t0 < 10 and summary.frames == 1
    assert (out / "_.." / "00000000_0-1.jpg").exists()
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2  # appended, not truncated


def test_messages_over_max_size_are_not_delivered(server):
    with Subscriber(server.endpoint, max_message_size=10_000) as small, Subscriber(server.endpoint) as big:
        server.wait_subscribed(4)
        parts = frame_parts("cam1", 0)
        parts[2] = parts[2] + b"\x00" * 20_000  # still a JPEG prefix, but too big for `small`
        server.send(parts)
        assert isinstance(big.recv(5.0), FrameMessage)
        assert small.recv(0.5) is None


def test_bad_keys_are_publish_errors(tmp_path):
    with pytest.raises(PublishError, match="neither a certificate file nor a 40-character Z85 key"):
        Subscriber("tcp://127.0.0.1:1", server_public_key="short")
    with pytest.raises(PublishError, match="not a valid Z85 key"):
        Subscriber("tcp://127.0.0.1:1", server_public_key='"' * 40)
    key = "x" * 40
    with pytest.raises(PublishError, match="client certificate.*missing.key_secret"):
        Subscriber("tcp://127.0.0.1:1", server_public_key=key, client_cert=str(tmp_path / "missing.key_secret"))
    with pytest.raises(PublishError, match="cannot connect to 'nonsense'"):
        Subscriber("nonsense")


def test_cli_subscribe_records_and_prints_summary(server, tmp_path, capsys):
    out = tmp_path / "rec"

    def feed():
        server.wait_subscribed(1)
        for seq in (0, 1, 2):
            server.send(frame_parts("cam1", seq))

    t = threading.Thread(target=feed)
    t.start()
    rc = cli_subscribe(server.endpoint, str(out), count=3, duration=10, topics=["frame/"], server_key=None,
                       client_cert=None)
    t.join(5)
    assert rc == 0
    assert "3 frames (cam1: 3)" in capsys.readouterr().out
    assert len(list((out / "cam1").glob("*.jpg"))) == 3
    assert cli_subscribe("nonsense", str(out), 1, 1, None, None, None) == 64
