"""End to end across the fleet path: `edgefilter run` on a generated video file and `edgefilter bridge`, as
processes, deliver every kept frame to a real mosquitto and a real SeaweedFS."""
from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bridgeservers import BUCKET, MqttCollector, Mosquitto, write_bridge_config
from conftest import free_port, wait_for
from daemonproc import metric, scrape
from videos import make_video, scene_with_events

from edgefilter.client import Subscriber
from edgefilter.message import FrameMessage

ROOT = Path(__file__).resolve().parent.parent


def test_daemon_and_bridge_deliver_every_kept_frame_to_mqtt_and_s3(tmp_path, seaweedfs):
    video = make_video(tmp_path / "clip.avi", scene_with_events(60, [(15, 30), (40, 55)], seed=5, size=(224, 160)),
                       fps=30)
    pub, bridge_metrics = free_port(), free_port()
    daemon_cfg = tmp_path / "config.yaml"
    daemon_cfg.write_text(f"sources: [{{name: clip, url: '{video}'}}]\n"
                          f"publish: {{bind: 'tcp://127.0.0.1:{pub}', embeddings: true}}\nmetrics: {{bind: null}}\n"
                          f"model: {{path: '{ROOT / 'models' / 'efficientnet_lite0_regions.onnx'}'}}\n")
    bucket = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    broker = Mosquitto(tmp_path / "mosquitto")
    collector = MqttCollector(broker.port, "edgefilter/#")
    bridge_cfg = write_bridge_config(tmp_path, daemons=[("box1", f"tcp://127.0.0.1:{pub}")], mqtt_port=broker.port,
                                     s3_endpoint=seaweedfs.endpoint, bucket=bucket, metrics_port=bridge_metrics,
                                     mqtt=("embeddings: true",))
    log = open(tmp_path / "bridge.log", "ab")
    bridge = subprocess.Popen([sys.executable, "-m", "edgefilter", "bridge", "-c", str(bridge_cfg)], stdout=log,
                              stderr=subprocess.STDOUT, cwd=tmp_path)
    witness = Subscriber(f"tcp://127.0.0.1:{pub}", topics=("frame/",))  # what the daemon published, independently
    try:
        # The bridge and the witness subscribe before the daemon binds: ZeroMQ connects when the endpoint appears,
        # and the daemon holds its first messages until both have subscribed (no new subscription for half a
        # second), so both receive its first kept frame.
        assert wait_for(lambda: _scrape_ok(bridge_metrics), 30), (tmp_path / "bridge.log").read_text()
        daemon = subprocess.run([sys.executable, "-m", "edgefilter", "run", "-c", str(daemon_cfg)],
                                capture_output=True, text=True, timeout=180, cwd=tmp_path)
        assert daemon.returncode == 0, daemon.stderr
        kept: list[FrameMessage] = []
        while (msg := witness.recv(timeout=1.0)) is not None:
            kept.append(msg)
        assert len(kept) >= 2 and [m.seq for m in kept] == list(range(len(kept)))

        assert wait_for(lambda: len(collector.payloads("/frame")) >= len(kept), 60), \
            (tmp_path / "bridge.log").read_text() + seaweedfs.trouble()
        frames = collector.payloads("/frame")
        assert [f["seq"] for f in frames] == [m.seq for m in kept]
        assert sorted(seaweedfs.keys(bucket)) == sorted(f["key"] for f in frames)
        s3 = seaweedfs.client()
        for msg, payload in zip(kept, frames):
            assert s3.get_object(Bucket=bucket, Key=payload["key"])["Body"].read() == msg.jpeg
            assert payload["frame_index"] == msg.frame_index and payload["model"] == msg.model
            assert base64.b64decode(payload["embedding"]) == msg.embedding.astype("<f4").tobytes()
        samples = scrape(bridge_metrics)
        assert metric(samples, "edgefilter_bridge_forwarded_total", kind="frame") == len(kept)
        assert metric(samples, "edgefilter_bridge_seq_gaps_total", daemon="box1") == 0
        assert metric(samples, "edgefilter_bridge_link_up", link="mqtt") == 1
    finally:
        witness.close()
        bridge.terminate()
        try:
            bridge.wait(30)
        finally:
            if bridge.poll() is None:
                bridge.kill()
            log.close()
            collector.close()
            broker.close()
    assert bridge.returncode == 0
    assert "Traceback" not in (tmp_path / "bridge.log").read_text()


def _scrape_ok(port: int) -> bool:
    try:
        return metric(scrape(port), "edgefilter_bridge_link_up", link="mqtt") == 1
    except OSError:
        time.sleep(0.1)
        return False
