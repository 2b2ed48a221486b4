"""Publisher over real ZeroMQ sockets on loopback: round trips, seq, slow subscribers, CURVE, binds."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from conftest import free_port
from edgefilter.client import Subscriber
from edgefilter.clock import FakeClock
from edgefilter.config import CurveConfig, PublishConfig
from edgefilter.errors import PublishError
from edgefilter.frame import Frame
from edgefilter.message import DriftMessage, FrameMessage
from edgefilter.metrics import Metrics
from edgefilter.publisher import SUBSCRIBERS_SETTLE_S, Publisher, is_local_endpoint

LOCAL = "tcp://127.0.0.1:*"
MODEL = "efficientnet_lite0-test"


def make_frame(source: str, index: int, *, w: int = 64, h: int = 48, seed: int | None = None,
               noise: bool = False, dim: int = 1280) -> Frame:
    rng = np.random.default_rng(index if seed is None else seed)
    if noise:  # incompressible: big JPEGs fill socket buffers fast
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:  # smooth gradient + a block: decodes close to the original
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = np.linspace(0, 200, w, dtype=np.uint8)[None, :, None]
        img[h // 4: h // 2, w // 4: w // 2] = (20 * index % 255, 90, 200)
    emb = rng.standard_normal(dim).astype(np.float32)
    emb /= np.linalg.norm(emb)
    return Frame(source=source, index=index, ts=1_700_000_000.0 + index / 25, image=img,
                 t_capture=time.monotonic(), embedding=emb)


def wait_for(pred, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def started():
    """Start publishers and always stop them, so a failing test leaves no thread or port behind."""
    pubs: list[Publisher] = []

    def start(cfg: PublishConfig, metrics: Metrics, **kw) -> Publisher:
        pub = Publisher(cfg, metrics, MODEL, **kw)
        pub.start()
        pubs.append(pub)
        return pub

    yield start
    for pub in pubs:
        pub.stop(0.5)


def subscribe(pub: Publisher, metrics: Metrics, expect_subscriptions: int = 2, **kw) -> Subscriber:
    sub = Subscriber(pub.bound_endpoint, **kw)
    # Slow joiner: frames sent before the subscription arrives are not for this subscriber.
    wait_for(lambda: metrics.value("edgefilter_subscribers") >= expect_subscriptions, what="subscription")
    return sub


def recv_frames(sub: Subscriber, n: int, timeout: float = 5.0) -> list[FrameMessage]:
    out: list[FrameMessage] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = sub.recv(0.2)
        if isinstance(msg, FrameMessage):
            out.append(msg)
    return out


def test_round_trip_decodes_real_jpeg_with_complete_header_and_seq_per_source(started, metrics):
    pub = started(PublishConfig(bind=LOCAL), metrics)
    assert pub.bound_endpoint.startswith("tcp://127.0.0.1:") and not pub.bound_endpoint.endswith("*")
    with subscribe(pub, metrics) as sub:
        frames = [make_frame(src, i) for i in range(6) for src in ("cam1", "cam2")]
        for n, f in enumerate(frames):
            pub.publish_frame(f, None if f.index == 0 else 0.2 + f.index / 100,
                              "first" if f.index == 0 else "novel", 0.15, region=f.index if f.index % 2 else None)
        got = recv_frames(sub, len(frames))
    assert len(got) == len(frames)
    for src in ("cam1", "cam2"):
        mine = [m for m in got if m.source == src]
        assert [m.seq for m in mine] == list(range(6)) and [m.frame_index for m in mine] == list(range(6))
        assert sub.gaps[src] == 0
    by_key = {(f.source, f.index): f for f in frames}
    for m in got:
        f = by_key[(m.source, m.frame_index)]
        assert m.header.keys() >= {"v", "source", "seq", "frame_index", "ts", "distance", "reason", "width",
                                   "height", "encoding", "model", "embedding_dim"}
        assert (m.width, m.height, m.model, m.embedding_dim, m.embedding) == (64, 48, MODEL, None, None)
        assert m.ts == f.ts and m.header["threshold"] == 0.15
        assert m.header["region"] == (f.index if f.index % 2 else None)
        assert (m.reason, m.distance) == (("first", None) if f.index == 0 else ("novel", 0.2 + f.index / 100))
        img = m.image()
        assert img.shape == f.image.shape
        assert np.abs(img.astype(int) - f.image.astype(int)).mean() < 3  # the frame itself, JPEG-lossy
    # The publisher thread counts a frame just after sending it: the last count may trail its receipt.
    wait_for(lambda: metrics.value("edgefilter_frames_published_total", source="cam1") == 6, what="cam1 counted")
    wait_for(lambda: metrics.value("edgefilter_frame_latency_seconds_count", source="cam2") == 6,
             what="cam2 latencies observed")
    assert metrics.value("edgefilter_publish_dropped_total", kind="frame") == 0


def test_embeddings_part_and_drift_messages(started, metrics):
    pub = started(PublishConfig(bind=LOCAL, embeddings=True), metrics)
    pub.model_id = "set-after-start"  # the daemon binds before it has loaded the model
    with subscribe(pub, metrics) as sub:
        f = make_frame("cam1", 0)
        pub.publish_frame(f, None, "first", None)
        drift = {"v": 1, "source": "cam1", "ts": 1.0, "window": 300, "reference": "warmup", "mmd2": 0.01,
                 "p_value": 0.5, "ks_min_p": 0.3, "centroid_shift": 0.02, "nn_distance": 0.1, "keep_rate": 0.1,
                 "drift": False}
        pub.publish_drift(drift)
        msgs = [sub.recv(5.0), sub.recv(5.0)]
    frame = next(m for m in msgs if isinstance(m, FrameMessage))
    assert frame.embedding_dim == 1280 and np.array_equal(frame.embedding, f.embedding)
    assert frame.model == "set-after-start"
    assert frame.header["threshold"] is None and frame.header["region"] is None
    got_drift = next(m for m in msgs if isinstance(m, DriftMessage))
    assert got_drift.p_value == 0.5 and got_drift.header == drift
    assert pub.publish_drift({**drift, "mmd2": float("nan")}) is False  # logged and counted, never raised
    assert metrics.value("edgefilter_publish_dropped_total", kind="drift") == 1


def test_slow_subscriber_never_blocks_publishing_drops_are_counted_and_the_gap_shows(started, metrics):
    pub = started(PublishConfig(bind=LOCAL, hwm=2, jpeg_quality=95), metrics, queue_size=4096)
    n = 300
    frames = [make_frame("cam1", i, w=320, h=240, noise=True) for i in range(n)]  # ~200 kB JPEG each
    with subscribe(pub, metrics, rcvhwm=1) as sub:  # connected, never reads while we publish
        # A send that blocked on the full socket would wait for this subscriber forever: the calls must all return
        # (no bound on how fast: a loaded 2-core machine is slow, and slow is no block)
        caller = threading.Thread(target=lambda: [pub.publish_frame(f, 0.5, "novel", 0.15) for f in frames])
        caller.start()
        caller.join(60)
        assert not caller.is_alive(), "publish_frame blocked on a subscriber that does not read"
        wait_for(lambda: pub.pending() == 0, timeout=20, what="publisher thread to handle every frame")
        published = metrics.value("edgefilter_frames_published_total", source="cam1")
        dropped = metrics.value("edgefilter_publish_dropped_total", kind="frame")
        assert dropped > 0 and published + dropped == n
        # The subscriber wakes up: it reads what was buffered, then newer frames after a gap. Newer
        # frames are published until one arrives (the first may still meet a full buffer).
        received: list[int] = []
        deadline = time.monotonic() + 15
        i = n
        while not received or received[-1] < n:
            assert time.monotonic() < deadline, f"no frame after the burst arrived; got {received[-5:]}"
            pub.publish_frame(make_frame("cam1", i), 0.5, "novel", 0.15)
            i += 1
            while (m := sub.recv(0.3)) is not None:
                received.append(m.seq)
    assert received[0] == 0 and received == sorted(set(received))
    assert sub.gaps["cam1"] == received[-1] + 1 - len(received) > 0


def test_full_queue_drops_the_oldest_and_counts_it(metrics):
    pub = Publisher(PublishConfig(bind=LOCAL), metrics, MODEL, queue_size=3)  # not started: nothing drains
    for i in range(5):
        pub.publish_frame(make_frame("cam1", i), 0.3, "novel", 0.1)
    assert pub.pending() == 3
    assert metrics.value("edgefilter_publish_dropped_total", kind="frame") == 2
    assert [item.seq for _, item in pub._queue] == [2, 3, 4]  # dropped frames keep their seq: a gap
    pub.stop(0)


def test_stop_drains_everything_queued(started, metrics):
    pub = Publisher(PublishConfig(bind=LOCAL), metrics, MODEL)
    pub.start()
    with subscribe(pub, metrics) as sub:
        for i in range(40):
            pub.publish_frame(make_frame("cam1", i), 0.3, "novel", 0.1)
        pub.stop(5.0)
        got = recv_frames(sub, 40)
    assert [m.seq for m in got] == list(range(40))
    pub.publish_frame(make_frame("cam1", 40), 0.3, "novel", 0.1)  # after stop: counted, not sent
    assert metrics.value("edgefilter_publish_dropped_total", kind="frame") == 1


def test_subscriber_gauge_follows_connects_and_disconnects(started, metrics):
    pub = started(PublishConfig(bind=LOCAL), metrics)
    a = subscribe(pub, metrics, 2)
    b = subscribe(pub, metrics, 4, topics=("frame/", "drift/"))
    c = subscribe(pub, metrics, 5, topics=("frame/cam1",))
    assert metrics.value("edgefilter_subscribers") == 5
    b.close()
    wait_for(lambda: metrics.value("edgefilter_subscribers") == 3, what="unsubscribe on disconnect")
    a.close()
    c.close()
    wait_for(lambda: metrics.value("edgefilter_subscribers") == 0, what="all gone")


def test_local_endpoints():
    for ep in ("tcp://127.0.0.1:5556", "tcp://127.1.2.3:*", "tcp://localhost:1", "tcp://[::1]:5556",
               "ipc:///tmp/x.sock", "inproc://x"):
        assert is_local_endpoint(ep), ep
    for ep in ("tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://192.168.1.2:1", "tcp://[::]:1", "tcp://eth0:1",
               "tcp://127.0.0.1.example.com:1", "tcp://lo:1", "udp://127.0.0.1:1", "tcp://[::1]x:1"):
        assert not is_local_endpoint(ep), ep


def test_non_loopback_bind_needs_curve_or_explicit_plaintext(started, metrics, caplog):
    with pytest.raises(PublishError) as e:
        Publisher(PublishConfig(bind="tcp://0.0.0.0:*"), metrics, MODEL).start()
    msg = str(e.value)
    assert "publish.bind" in msg and "tcp://0.0.0.0:*" in msg and "publish.curve.secret_key_file" in msg
    assert "publish.allow_plaintext" in msg
    # "lo" is the loopback interface by name: not classed local, so this exercises the plaintext path
    # while binding loopback only.
    with caplog.at_level(logging.WARNING, logger="edgefilter.publisher"):
        pub = started(PublishConfig(bind="tcp://lo:*", allow_plaintext=True), metrics)
    assert pub.bound_endpoint.startswith("tcp://127.0.0.1:")
    assert any("UNENCRYPTED" in r.getMessage() and "UNAUTHENTICATED" in r.getMessage() for r in caplog.records)


def test_bind_failure_names_the_endpoint(started, metrics):
    first = started(PublishConfig(bind=LOCAL), metrics)
    with pytest.raises(PublishError, match=f"cannot bind '{first.bound_endpoint}'"):
        Publisher(PublishConfig(bind=first.bound_endpoint), Metrics(), MODEL).start()
    with pytest.raises(PublishError, match="cannot bind 'tcp://127.0.0.1:notaport'"):
        Publisher(PublishConfig(bind="tcp://127.0.0.1:notaport"), Metrics(), MODEL).start()


@pytest.fixture
def certs(tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "authorized"
    keys.mkdir()
    allowed.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    _, stranger_secret = zmq.auth.create_certificates(keys, "stranger")
    (allowed / "client.key").write_bytes((keys / "client.key").read_bytes())
    return {"server_public": server_public, "server_secret": server_secret, "client_secret": client_secret,
            "stranger_secret": stranger_secret, "allowed": allowed}


def test_curve_allowed_key_receives_and_unknown_key_receives_nothing(started, metrics, certs):
    cfg = PublishConfig(bind=LOCAL, curve=CurveConfig(secret_key_file=str(certs["server_secret"]),
                                                     authorized_keys_dir=str(certs["allowed"])))
    pub = started(cfg, metrics)
    assert pub.curve
    stranger = Subscriber(pub.bound_endpoint, server_public_key=str(certs["server_public"]),
                          client_cert=str(certs["stranger_secret"]))
    plain = Subscriber(pub.bound_endpoint)  # no CURVE at all
    with stranger, plain, subscribe(pub, metrics, server_public_key=str(certs["server_public"]),
                                    client_cert=str(certs["client_secret"])) as friend:
        deadline = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < deadline:  # keep publishing while the outsiders listen
            pub.publish_frame(make_frame("cam1", i), 0.3, "novel", 0.1)
            i += 1
            time.sleep(0.02)
        got = recv_frames(friend, i)
        assert [m.seq for m in got] == list(range(i))
        assert stranger.recv(0.5) is None and plain.recv(0.1) is None
        assert stranger.handshake_failures >= 1 and plain.handshake_failures >= 1 and friend.handshake_failures == 0
        assert metrics.value("edgefilter_subscribers") == 2  # only the friend's two topics


def test_curve_key_problems_name_the_file(metrics, certs, tmp_path):
    def start(**curve):
        Publisher(PublishConfig(bind=LOCAL, curve=CurveConfig(**curve)), metrics, MODEL).start()

    secret, allowed = str(certs["server_secret"]), str(certs["allowed"])
    with pytest.raises(PublishError, match=f"cannot read certificate {tmp_path}/nope"):
        start(secret_key_file=str(tmp_path / "nope"), authorized_keys_dir=allowed)
    with pytest.raises(PublishError, match="server.key holds no secret-key"):
        start(secret_key_file=str(certs["server_public"]), authorized_keys_dir=allowed)
    with pytest.raises(PublishError, match="authorized_keys_dir: .*missing is not a directory"):
        start(secret_key_file=secret, authorized_keys_dir=str(tmp_path / "missing"))
    with pytest.raises(PublishError, match="authorized_keys_dir is not set"):
        start(secret_key_file=secret)
    (certs["allowed"] / "broken.key").write_text("# no key here\n")
    with pytest.raises(PublishError, match="bad public key certificate .*broken.key"):
        start(secret_key_file=secret, authorized_keys_dir=allowed)
    garbled = tmp_path / "garbled.key_secret"
    garbled.write_text('public-key = "short"\nsecret-key = "short"\n')
    with pytest.raises(PublishError, match="garbled.key_secret: a CURVE key is 40 Z85"):
        start(secret_key_file=str(garbled), authorized_keys_dir=str(tmp_path))


def test_reconfigure_applies_quality_and_embeddings_live_and_reports_bind_changes(started, metrics):
    cfg = PublishConfig(bind=LOCAL, jpeg_quality=95)
    pub = started(cfg, metrics)
    with subscribe(pub, metrics) as sub:
        f = make_frame("cam1", 0, w=160, h=120, noise=True)
        pub.publish_frame(f, None, "first", None)
        before = sub.recv(5.0)
        notes = pub.reconfigure(replace(cfg, jpeg_quality=20, embeddings=True, hwm=50, bind="tcp://127.0.0.1:1"))
        pub.publish_frame(f, 0.9, "novel", None)
        after = sub.recv(5.0)
    assert len(after.jpeg) < len(before.jpeg) / 2
    assert before.embedding is None and after.embedding_dim == 1280
    assert notes == ["publish.bind changed from 'tcp://127.0.0.1:*' to 'tcp://127.0.0.1:1': restart to apply"]
    assert [after.seq, before.seq] == [1, 0]


def test_stop_honours_its_deadline_with_a_stuck_subscriber(metrics):
    pub = Publisher(PublishConfig(bind=LOCAL, hwm=1), metrics, MODEL, queue_size=4096)
    pub.start()
    with subscribe(pub, metrics, rcvhwm=1):  # never reads
        for i in range(200):
            pub.publish_frame(make_frame("cam1", i, w=320, h=240, noise=True), 0.5, "novel", 0.1)
        t0 = time.monotonic()
        pub.stop(0.5)
        took = time.monotonic() - t0
    assert took < 10.0, f"stop took {took:.2f} s"  # its deadline is 0.5 s; without one it waits for ever
    published = metrics.value("edgefilter_frames_published_total", source="cam1")
    dropped = metrics.value("edgefilter_publish_dropped_total", kind="frame")
    assert dropped > 0 and published + dropped == 200


def test_reconfigure_rereads_authorized_keys(started, metrics, certs):
    cfg = PublishConfig(bind=LOCAL, curve=CurveConfig(secret_key_file=str(certs["server_secret"]),
                                                     authorized_keys_dir=str(certs["allowed"])))
    pub = started(cfg, metrics)
    stranger = {"server_public_key": str(certs["server_public"]), "client_cert": str(certs["stranger_secret"])}
    with Subscriber(pub.bound_endpoint, **stranger):
        time.sleep(0.5)
        assert metrics.value("edgefilter_subscribers") == 0  # refused
    keys = Path(certs["server_secret"]).parent
    (certs["allowed"] / "stranger.key").write_bytes((keys / "stranger.key").read_bytes())
    assert pub.reconfigure(cfg) == []
    # libzmq does not retry a refused handshake: a new connection is needed, and is now let in.
    with subscribe(pub, metrics, **stranger) as sub:
        pub.publish_frame(make_frame("cam1", 0), None, "first", None)
        assert isinstance(sub.recv(5.0), FrameMessage)


def test_a_frame_that_cannot_be_encoded_is_counted_and_the_thread_goes_on(started, metrics, caplog):
    pub = started(PublishConfig(bind=LOCAL), metrics)
    with subscribe(pub, metrics) as sub:
        broken = make_frame("cam1", 0)
        broken.image = None  # e.g. pixels freed by mistake
        pub.publish_frame(broken, None, "first", None)
        pub.publish_frame(make_frame("cam1", 1), 0.4, "novel", None)
        msg = sub.recv(5.0)
    assert msg.seq == 1 and sub.gaps["cam1"] == 0  # joined at seq 1: the subscriber cannot know about seq 0
    assert metrics.value("edgefilter_publish_dropped_total", kind="frame") == 1
    assert any("frame from cam1 not published" in r.getMessage() for r in caplog.records)


def test_a_subscriber_waiting_before_the_bind_receives_the_first_frame(metrics):
    # The daemon binds, loads its model and keeps frame 0 at once; a subscriber started first reconnects only
    # every 100 ms, so without the startup grace the first keep went to no one (startup_grace_s=0: 5 of 6
    # runs lost frame 0 here).
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Subscriber(endpoint, topics=("frame/",)) as sub:
        pub = Publisher(PublishConfig(bind=endpoint), metrics, MODEL, startup_grace_s=30.0)
        pub.start()
        try:
            pub.publish_frame(make_frame("cam1", 0), 0.3, "novel", 0.1)
            wait_for(lambda: metrics.value("edgefilter_subscribers") >= 1, what="subscription")
            wait_for(lambda: pub.pending() == 0, what="the queue to empty")
            pub.publish_frame(make_frame("cam1", 1), 0.3, "novel", 0.1)
            got = recv_frames(sub, 2)
        finally:
            pub.stop(0.5)
    assert [m.seq for m in got] == [0, 1]


class StandingClock(FakeClock):
    """Monotonic time moves only on ``advance``; ``sleep`` really waits, so threads can run meanwhile."""

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


def test_every_subscriber_waiting_at_the_bind_receives_the_first_frame_not_only_the_quickest(metrics):
    # A bridge and a recorder both waiting for the daemon reconnect at their own times (every 100 to 200 ms);
    # releasing the held frames at the first subscription gave the first keep to one of them only (CI, once).
    clock = StandingClock()  # the hold ends only when the test says time has passed
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with Subscriber(endpoint, topics=("frame/",)) as quick:
        pub = Publisher(PublishConfig(bind=endpoint), metrics, MODEL, clock=clock, startup_grace_s=30.0)
        pub.start()
        try:
            pub.publish_frame(make_frame("cam1", 0), 0.3, "novel", 0.1)
            wait_for(lambda: metrics.value("edgefilter_subscribers") >= 1, what="the first subscription")
            with Subscriber(endpoint, topics=("frame/",)) as slow:
                wait_for(lambda: metrics.value("edgefilter_subscribers") >= 2, what="the second subscription")
                assert pub.pending() == 1  # still held: no time has passed since the last subscription
                assert not pub.wait_released(0.05)
                clock.advance(SUBSCRIBERS_SETTLE_S)
                assert pub.wait_released(5.0)
                got = recv_frames(quick, 1), recv_frames(slow, 1)
        finally:
            pub.stop(0.5)
    assert [[m.seq for m in g] for g in got] == [[0], [0]]


def test_with_no_subscriber_the_startup_grace_ends_and_frames_are_sent_to_no_one(metrics):
    clock = FakeClock()  # sleeping on it advances it: the grace passes without waiting
    pub = Publisher(PublishConfig(bind=LOCAL), metrics, MODEL, clock=clock, startup_grace_s=5.0)
    pub.start()
    try:
        pub.publish_frame(make_frame("cam1", 0), 0.3, "novel", 0.1)
        wait_for(lambda: metrics.value("edgefilter_frames_published_total", source="cam1") == 1,
                 what="the frame to leave")
        assert clock.monotonic() >= 5.0
    finally:
        pub.stop(0.5)
