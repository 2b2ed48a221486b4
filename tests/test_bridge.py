"""The fleet bridge against a real mosquitto and a real SeaweedFS (S3), fed over real ZeroMQ sockets
with v1 messages; fault tests stop and restart the broker and the store, and SIGKILL the bridge."""
from __future__ import annotations

import base64
import json
import logging
import signal
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq.auth
from bridgeservers import (ACCESS_KEY, BUCKET, SECRET_KEY, FramePublisher, MqttCollector, Mosquitto, make_tls_files,
                           write_bridge_config)
from conftest import free_port, wait_for
from daemonproc import metric, scrape

from edgefilter.bridge.bridge import Bridge
from edgefilter.bridge.config import load_bridge_config
from edgefilter.bridge.store import object_key

TIMEOUT = 30


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto")
    yield b
    b.close()


@pytest.fixture
def bucket() -> str:
    return f"{BUCKET}-{uuid.uuid4().hex[:8]}"  # each test its own bucket in the shared store


@pytest.fixture
def publisher():
    pub = FramePublisher()
    yield pub
    pub.close()


class Running:
    """A Bridge in this process plus a collector on its broker; closes both."""

    def __init__(self, tmp_path, broker, seaweedfs, bucket, publisher, **config):
        self.seaweedfs = seaweedfs
        self.path = write_bridge_config(tmp_path, daemons=[("box1", publisher.endpoint)], mqtt_port=broker.port,
                                        s3_endpoint=seaweedfs.endpoint, bucket=bucket, **config)
        self.collector = MqttCollector(broker.port, "edgefilter/#")
        self.bridge = Bridge(load_bridge_config(self.path))
        self.bridge.start()
        publisher.wait_subscribed()
        assert self.bridge.mqtt.wait_up(10)

    def value(self, name: str, **labels) -> float:
        return self.bridge.metrics.value(name, **labels)

    def why(self) -> str:
        """What a failed wait's message shows: the bridge's links and outbox, and the store's own warnings (a put that
        failed as InternalError says why only in weed's log)."""
        links = {link: self.value("edgefilter_bridge_link_up", link=link) for link in ("mqtt", "s3")}
        return (f"links up {links}, outbox {self.value('edgefilter_bridge_outbox_messages')} message(s), "
                f"{len(self.collector.payloads('/frame'))} frame message(s) collected\n{self.seaweedfs.trouble()}")

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.stop(drain_s=1.0)
            self.collector.close()
            self.bridge = None


@pytest.fixture
def running(tmp_path, broker, seaweedfs, bucket, publisher):
    made: list[Running] = []

    def start(**config) -> Running:
        made.append(Running(tmp_path, broker, seaweedfs, bucket, publisher, **config))
        return made[-1]
    yield start
    for r in made:
        r.close()


def frame_keys(collector: MqttCollector) -> list[str]:
    return [p["key"] for p in collector.payloads("/frame")]


def assert_delivered_once(seaweedfs, bucket, collector, expected: list[str]) -> None:
    """Every frame is one object under its key, and its MQTT message arrived (repeats of a QoS 1 message
    are allowed on the wire; a consumer drops them by key) in the order the frames were received."""
    assert sorted(seaweedfs.keys(bucket)) == sorted(expected)
    seen = list(dict.fromkeys(frame_keys(collector)))
    assert seen == expected


def test_object_keys_are_deterministic_sorted_by_time_and_never_climb_folders():
    header = {"source": "cam1", "ts": 1_764_547_200.25, "seq": 7}
    assert object_key("plant-a", header) == object_key("plant-a", dict(header)) \
        == "plant-a/cam1/2025-12-01/1764547200250_00000007.jpg"
    assert object_key("plant-a", {**header, "ts": 1_764_633_599.999}).startswith("plant-a/cam1/2025-12-01/")
    assert object_key("plant-a", {**header, "source": ".."}).startswith("plant-a/_../")


def test_frames_and_drift_reach_the_store_and_the_broker(running, publisher, broker, seaweedfs, bucket):
    r = running(mqtt=("embeddings: true",), s3=("sidecar: true",))
    vec = np.linspace(-1, 1, 8, dtype=np.float32)
    headers = [publisher.frame("cam1", seq, embedding=vec) for seq in range(12)]
    publisher.drift("cam1")
    expected = [object_key("plant-a", h) for h in headers]
    assert wait_for(lambda: len(r.collector.payloads("/frame")) == 12 and r.collector.payloads("/drift"), TIMEOUT), \
        r.why()

    frames = r.collector.payloads("/frame")
    assert [f["seq"] for f in frames] == list(range(12))  # in order, each once
    first = frames[0]
    assert first["key"] == expected[0] == "plant-a/cam1/2025-12-01/1764547200000_00000000.jpg"
    assert first["bucket"] == bucket and first["site"] == "plant-a" and first["model"] == "test-model@1"
    assert np.array_equal(np.frombuffer(base64.b64decode(first["embedding"]), "<f4"), vec)
    assert r.collector.payloads("/drift")[0]["p_value"] == 0.5
    topics = {t for t, _, _ in r.collector.messages}
    assert {"edgefilter/plant-a/cam1/frame", "edgefilter/plant-a/cam1/drift", "edgefilter/plant-a/box-1/status"} <= topics

    s3 = seaweedfs.client()
    sorted_keys = sorted(k for k in seaweedfs.keys(bucket) if k.endswith(".jpg"))
    assert sorted_keys == sorted(expected)
    obj = s3.get_object(Bucket=bucket, Key=expected[3])
    assert obj["Body"].read()[:2] == b"\xff\xd8" and obj["ContentType"] == "image/jpeg"
    assert obj["Metadata"]["seq"] == "3" and obj["Metadata"]["source"] == "cam1"
    sidecar = json.loads(s3.get_object(Bucket=bucket, Key=expected[3][:-4] + ".json")["Body"].read())
    assert sidecar["seq"] == 3 and sidecar["key"] == expected[3]

    assert r.value("edgefilter_bridge_forwarded_total", kind="frame") == 12
    assert r.value("edgefilter_bridge_forwarded_total", kind="drift") == 1
    assert r.value("edgefilter_bridge_received_total", daemon="box1", kind="frame") == 12
    assert r.value("edgefilter_bridge_objects_stored_total") == 12
    assert wait_for(lambda: r.value("edgefilter_bridge_outbox_messages") == 0, 5)
    assert r.value("edgefilter_bridge_link_up", link="mqtt") == 1 == r.value("edgefilter_bridge_link_up", link="s3")

    # the retained status: a new subscriber learns the bridge is online; after a clean stop, offline
    late = MqttCollector(broker.port, "edgefilter/plant-a/box-1/status", client_id="late")
    assert wait_for(lambda: late.raw("/status") == [(b"online", True)], 5)
    r.close()
    assert wait_for(lambda: late.raw("/status")[-1:] == [(b"offline", False)], 5)
    late.close()


def test_seq_gaps_and_malformed_messages_are_counted_and_survived(running, publisher, caplog):
    r = running()
    with caplog.at_level(logging.WARNING):
        for seq in (0, 1, 5):
            publisher.frame("cam1", seq)
        publisher.sock.send_multipart([b"frame/cam1", b"{not json", b"\xff\xd8"])
        publisher.frame("cam1", 6)
        assert wait_for(lambda: len(r.collector.payloads("/frame")) == 4, TIMEOUT), r.why()
    assert r.value("edgefilter_bridge_seq_gaps_total", daemon="box1") == 3
    assert r.value("edgefilter_bridge_malformed_total", daemon="box1") == 1
    assert "box1/cam1: 3 kept frame(s) never reached the bridge: expected seq 2, received 5" in caplog.text


def test_two_daemons_one_with_curve(tmp_path, broker, seaweedfs, bucket, publisher):
    """One bridge, two daemons: a plaintext one and one that admits only the bridge's CURVE key."""
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(keys, "server")
    bridge_public, bridge_secret = zmq.auth.create_certificates(keys, "bridge")
    shutil.copy(bridge_public, allowed)
    secure = FramePublisher(curve_secret=Path(server_secret), authorized_keys=allowed)
    collector = MqttCollector(broker.port, "edgefilter/#")
    cfg = write_bridge_config(tmp_path, mqtt_port=broker.port, s3_endpoint=seaweedfs.endpoint, bucket=bucket,
                              daemons=[("box1", publisher.endpoint),
                                       f"{{name: box2, connect: '{secure.endpoint}', server_key: '{server_public}', "
                                       f"client_cert: '{bridge_secret}'}}"])
    bridge = Bridge(load_bridge_config(cfg))
    try:
        bridge.start()
        publisher.wait_subscribed()
        secure.wait_subscribed()
        for seq in range(3):
            publisher.frame("cam1", seq)
            secure.frame("cam2", seq)
        assert wait_for(lambda: len(collector.payloads("/frame")) == 6, TIMEOUT), seaweedfs.trouble()
        by_source = {s: [p["seq"] for p in collector.payloads("/frame") if p["source"] == s] for s in ("cam1", "cam2")}
        assert by_source == {"cam1": [0, 1, 2], "cam2": [0, 1, 2]}
        assert bridge.metrics.value("edgefilter_bridge_received_total", daemon="box2", kind="frame") == 3
        assert len(seaweedfs.keys(bucket)) == 6
    finally:
        bridge.stop(drain_s=0.5)
        collector.close()
        secure.close()


def test_broker_stopped_and_restarted_mid_stream(running, publisher, broker, seaweedfs, bucket, caplog):
    caplog.set_level(logging.INFO, logger="edgefilter.bridge")
    r = running()
    headers = [publisher.frame("cam1", seq) for seq in range(10)]
    assert wait_for(lambda: len(r.collector.payloads("/frame")) == 10, TIMEOUT), r.why()
    broker.stop()
    assert wait_for(lambda: r.value("edgefilter_bridge_link_up", link="mqtt") == 0, 10)
    headers += [publisher.frame("cam1", seq) for seq in range(10, 25)]
    # the JPEGs still reach the store; the MQTT messages wait in the outbox
    assert wait_for(lambda: r.value("edgefilter_bridge_objects_stored_total") == 25, TIMEOUT), r.why()
    assert wait_for(lambda: r.value("edgefilter_bridge_outbox_messages") == 15, 10)
    assert r.value("edgefilter_bridge_outbox_oldest_age_seconds") > 0
    broker.start()
    headers += [publisher.frame("cam1", seq) for seq in range(25, 30)]
    expected = [object_key("plant-a", h) for h in headers]
    assert wait_for(lambda: len(set(frame_keys(r.collector))) == 30, TIMEOUT), r.why()
    assert_delivered_once(seaweedfs, bucket, r.collector, expected)
    assert r.value("edgefilter_bridge_retries_total", link="mqtt") >= 1
    assert r.value("edgefilter_bridge_link_up", link="mqtt") == 1
    assert wait_for(lambda: r.value("edgefilter_bridge_outbox_messages") == 0, 5)
    assert "(session resumed)" in caplog.text  # the broker kept the bridge's persistent session across its restart


def test_store_stopped_and_restarted_mid_stream(running, publisher, seaweedfs, bucket):
    r = running()
    headers = [publisher.frame("cam1", seq) for seq in range(5)]
    assert wait_for(lambda: len(r.collector.payloads("/frame")) == 5, TIMEOUT), r.why()
    seaweedfs.stop_s3()
    try:
        headers += [publisher.frame("cam1", seq) for seq in range(5, 20)]
        publisher.drift("cam1", 1.0)  # a drift message behind frames that wait waits too: order is kept
        assert wait_for(lambda: r.value("edgefilter_bridge_link_up", link="s3") == 0, 10)
        assert wait_for(lambda: r.value("edgefilter_bridge_outbox_messages") == 16, 10)
        assert len(r.collector.payloads("/frame")) == 5 and not r.collector.payloads("/drift")
    finally:
        seaweedfs.start_s3()
    expected = [object_key("plant-a", h) for h in headers]
    assert wait_for(lambda: len(r.collector.payloads("/drift")) == 1, TIMEOUT), r.why()
    assert_delivered_once(seaweedfs, bucket, r.collector, expected)
    kinds = [t.rsplit("/", 1)[1] for t, _, _ in r.collector.messages if not t.endswith("/status")]
    assert kinds[-1] == "drift"
    assert r.value("edgefilter_bridge_retries_total", link="s3") >= 1
    assert r.value("edgefilter_bridge_link_up", link="s3") == 1


def test_outbox_limit_drops_the_oldest_and_counts_them(running, publisher, broker):
    r = running(outbox=("max_bytes: 30000",))
    broker.stop()
    assert wait_for(lambda: r.value("edgefilter_bridge_link_up", link="mqtt") == 0, 10)
    for seq in range(40):  # ~3.5 KB each: the outbox holds only the newest few
        publisher.frame("cam1", seq)
    assert wait_for(lambda: r.value("edgefilter_bridge_received_total", daemon="box1", kind="frame") == 40, 10)
    dropped = r.value("edgefilter_bridge_dropped_total", reason="full")
    assert dropped > 20
    # plus any message the MQTT client took before it noticed the broker had gone (pinned, at most a few)
    assert wait_for(lambda: r.value("edgefilter_bridge_outbox_bytes") <= 30000 + 4 * 4000, 5)
    broker.start()
    assert wait_for(lambda: r.value("edgefilter_bridge_outbox_messages") == 0, TIMEOUT), r.why()

    def delivered() -> list[int]:
        return sorted({p["seq"] for p in r.collector.payloads("/frame")})
    # an empty outbox means handed to the MQTT client, not yet at the subscriber: wait for them to arrive
    assert wait_for(lambda: len(delivered()) >= 40 - dropped, TIMEOUT), r.why()
    seqs = delivered()
    assert len(seqs) == 40 - dropped
    # the oldest were dropped: every frame after the last dropped one arrived; older survivors are only those
    # the MQTT client already held (it delivers them whatever the outbox does, so they are not counted dropped)
    last_dropped = max(set(range(40)) - set(seqs))
    assert [s for s in seqs if s > last_dropped] == list(range(last_dropped + 1, 40))
    assert len([s for s in seqs if s < last_dropped]) <= 4


def test_wrong_mqtt_password_is_logged_without_the_password_and_nothing_is_lost(tmp_path, seaweedfs, bucket,
                                                                                  publisher, caplog, monkeypatch):
    broker = Mosquitto(tmp_path / "auth", password=("bridge", "right-password"))
    try:
        monkeypatch.setenv("EF_TEST_MQTT_PASSWORD", "wrong-password")
        cfg = write_bridge_config(tmp_path, daemons=[("box1", publisher.endpoint)], mqtt_port=broker.port,
                                  s3_endpoint=seaweedfs.endpoint, bucket=bucket,
                                  mqtt=("username: bridge", "password: {env: EF_TEST_MQTT_PASSWORD}"))
        with caplog.at_level(logging.INFO):
            bridge = Bridge(load_bridge_config(cfg))
            bridge.start()
            try:
                publisher.wait_subscribed()
                publisher.frame("cam1", 0)
                assert wait_for(lambda: "refused the connection" in caplog.text, 10)
                assert wait_for(lambda: bridge.metrics.value("edgefilter_bridge_outbox_messages") == 1, 5)
                assert bridge.metrics.value("edgefilter_bridge_link_up", link="mqtt") == 0
            finally:
                bridge.stop(drain_s=0.5)
        assert "wrong-password" not in caplog.text and SECRET_KEY not in caplog.text
        # the right password from a file: the frame kept in the outbox goes out
        (tmp_path / "mqtt-password").write_text("right-password\n")
        cfg.write_text(cfg.read_text().replace("{env: EF_TEST_MQTT_PASSWORD}", "{file: mqtt-password}"))
        collector = MqttCollector(broker.port, "edgefilter/#", auth=("bridge", "right-password"))
        bridge = Bridge(load_bridge_config(cfg))
        bridge.start()
        try:
            assert wait_for(lambda: len(collector.payloads("/frame")) == 1, TIMEOUT), seaweedfs.trouble()
        finally:
            bridge.stop(drain_s=0.5)
            collector.close()
        assert "right-password" not in caplog.text
    finally:
        broker.close()


def test_wrong_s3_keys_from_the_environment_are_logged_without_the_secret(tmp_path, broker, seaweedfs, bucket,
                                                                          publisher, caplog, monkeypatch):
    monkeypatch.setenv("EF_TEST_S3_ACCESS", ACCESS_KEY)
    monkeypatch.setenv("EF_TEST_S3_SECRET", "not-the-s3-secret")
    cfg = write_bridge_config(tmp_path, daemons=[("box1", publisher.endpoint)], mqtt_port=broker.port,
                              s3_endpoint=seaweedfs.endpoint, bucket=bucket)
    cfg.write_text(cfg.read_text().replace("{file: s3-access}", "{env: EF_TEST_S3_ACCESS}")
                   .replace("{file: s3-secret}", "{env: EF_TEST_S3_SECRET}"))
    bridge = Bridge(load_bridge_config(cfg))
    try:
        bridge.start()
        publisher.wait_subscribed()
        publisher.frame("cam1", 0)
        assert wait_for(lambda: "(check s3.access_key and s3.secret_key)" in caplog.text, 10)
        assert bridge.metrics.value("edgefilter_bridge_link_up", link="s3") == 0
        assert bridge.metrics.value("edgefilter_bridge_outbox_messages") == 1  # waits for keys that work
    finally:
        bridge.stop(drain_s=0.5)
    assert "not-the-s3-secret" not in caplog.text


def test_tls_and_password_to_the_broker(tmp_path, seaweedfs, bucket, publisher, monkeypatch):
    tls = make_tls_files(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "tls-broker", password=("bridge", "tls-password"), tls=tls)
    monkeypatch.setenv("EF_TEST_MQTT_PASSWORD", "tls-password")
    collector = MqttCollector(broker.port, "edgefilter/#", auth=("bridge", "tls-password"), ca_file=tls["ca"])
    cfg = write_bridge_config(tmp_path, daemons=[("box1", publisher.endpoint)], mqtt_port=broker.port,
                              s3_endpoint=seaweedfs.endpoint, bucket=bucket,
                              mqtt=("username: bridge", "password: {env: EF_TEST_MQTT_PASSWORD}",
                                    f"tls: {{enabled: true, ca_file: '{tls['ca']}'}}"))
    bridge = Bridge(load_bridge_config(cfg))
    try:
        bridge.start()
        assert bridge.mqtt.where == f"mqtts://127.0.0.1:{broker.port}"
        publisher.wait_subscribed()
        publisher.frame("cam1", 0)
        assert wait_for(lambda: len(collector.payloads("/frame")) == 1, TIMEOUT), seaweedfs.trouble()
    finally:
        bridge.stop(drain_s=0.5)
        collector.close()
        broker.close()


def test_a_broker_certificate_from_another_ca_is_refused(tmp_path, seaweedfs, bucket, publisher, caplog):
    broker = Mosquitto(tmp_path / "tls-broker", tls=make_tls_files(tmp_path / "tls"))
    other_ca = make_tls_files(tmp_path / "other")["ca"]
    cfg = write_bridge_config(tmp_path, daemons=[("box1", publisher.endpoint)], mqtt_port=broker.port,
                              s3_endpoint=seaweedfs.endpoint, bucket=bucket,
                              mqtt=(f"tls: {{enabled: true, ca_file: '{other_ca}'}}",))
    bridge = Bridge(load_bridge_config(cfg))
    try:
        bridge.start()
        publisher.wait_subscribed()
        publisher.frame("cam1", 0)
        assert wait_for(lambda: bridge.metrics.value("edgefilter_bridge_outbox_messages") == 1, 10)
        assert wait_for(lambda: "cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED]" in caplog.text, 10)
        assert not bridge.mqtt.up
        assert bridge.metrics.value("edgefilter_bridge_link_up", link="mqtt") == 0
    finally:
        bridge.stop(drain_s=0.5)
        broker.close()


def test_bridge_killed_with_a_full_outbox_loses_nothing(tmp_path, broker, seaweedfs, bucket, publisher):
    """`edgefilter bridge` as a process: the broker is down, frames pile up in the outbox, the bridge is
    SIGKILLed; started again with the broker back, it delivers every frame exactly once by key. Killed once
    more, its last will says `offline`."""
    metrics_port = free_port()
    cfg = write_bridge_config(tmp_path, daemons=[("box1", publisher.endpoint)], mqtt_port=broker.port,
                              s3_endpoint=seaweedfs.endpoint, bucket=bucket, metrics_port=metrics_port)
    collector = MqttCollector(broker.port, "edgefilter/#")
    broker.stop()
    log = open(tmp_path / "bridge.log", "ab")

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "edgefilter", "bridge", "-c", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT, cwd=tmp_path)

    def outbox() -> float:
        try:
            return metric(scrape(metrics_port), "edgefilter_bridge_outbox_messages")
        except OSError:
            return -1

    proc = start()
    try:
        publisher.wait_subscribed(30)
        headers = [publisher.frame("cam1", seq) for seq in range(30)]
        assert wait_for(lambda: outbox() == 30, TIMEOUT), (tmp_path / "bridge.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        broker.start()
        proc = start()
        expected = [object_key("plant-a", h) for h in headers]
        assert wait_for(lambda: len(set(frame_keys(collector))) == 30, TIMEOUT), (tmp_path / "bridge.log").read_text() \
            + seaweedfs.trouble()
        assert_delivered_once(seaweedfs, bucket, collector, expected)
        assert wait_for(lambda: outbox() == 0, 10)
        assert collector.raw("/status")[-1][0] == b"online"  # live, or retained if it came before our resubscribe
        # killed again, as the service watchdog kills (SIGABRT): every thread's stack goes to the journal, and
        # the broker publishes the last will, retained, for everyone watching the status
        proc.send_signal(signal.SIGABRT)
        assert proc.wait(30) == -signal.SIGABRT
        assert wait_for(lambda: collector.raw("/status")[-1][0] == b"offline", 10)
        late = MqttCollector(broker.port, "edgefilter/plant-a/box-1/status", client_id="late")
        assert wait_for(lambda: late.raw("/status") == [(b"offline", True)], 5)
        late.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        collector.close()
        log.close()
    text = (tmp_path / "bridge.log").read_text()
    assert "30 messages" in text and "Traceback" not in text and SECRET_KEY not in text
    assert "Fatal Python error: Aborted" in text and "in cli_bridge" in text, text[-3000:]
