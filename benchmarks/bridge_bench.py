"""Bridge throughput through a local mosquitto and SeaweedFS (S3), side by side in one run.

    PYTHONPATH=. python3 benchmarks/bridge_bench.py [--frames 600] [--json out.json]

Runs, each on a fresh broker and the same store (the bridge in this process, fed over real ZeroMQ by a
publisher that sends as fast as it can):

- ``live``: frames stream in while both links are up (S3 uploads in parallel, ``s3.uploads`` 4 and 1);
- ``backlog``: the broker is down while the frames arrive (the outbox takes them), then comes back: the
  flush rate after an outage;
- ``drift``: drift messages only (MQTT, no upload): the broker path alone.

Prints frames/s, MB/s of JPEG, the ingest rate (ZeroMQ into the outbox) and ratios between the runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bridgeservers import BUCKET, FramePublisher, MqttCollector, Mosquitto, SeaweedFS, write_bridge_config  # noqa: E402

from edgefilter.bridge.bridge import Bridge  # noqa: E402
from edgefilter.bridge.config import load_bridge_config  # noqa: E402
from edgefilter.message import encode_frame  # noqa: E402


def camera_jpegs(n: int, size=(640, 360), seed: int = 0) -> list[bytes]:
    """JPEGs that compress like camera frames (smooth scene, sensor noise, a moving object), not like noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / w), (yy * 255 / h), ((xx + yy) * 127 / (w + h))], -1).astype(np.float32)
    out = []
    for i in range(n):
        img = base + rng.normal(0, 4, base.shape)
        x = (i * 7) % (w - 60)
        img[100:200, x:x + 60] = (40, 200, 90)
        ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(buf.tobytes())
    return out


def wait(pred, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError("timed out")
        time.sleep(0.005)


def run(kind: str, work: Path, store: SeaweedFS, jpegs: list[bytes], uploads: int = 4) -> dict:
    folder = work / f"{kind}-{uploads}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    broker = Mosquitto(folder / "mosquitto")
    pub = FramePublisher()
    pub.sock.setsockopt(zmq.SNDHWM, 0)  # never drop on the sending side: the bridge must take all
    cfg = write_bridge_config(folder, daemons=[("box1", pub.endpoint)], mqtt_port=broker.port,
                              s3_endpoint=store.endpoint, bucket=f"{BUCKET}-{uuid.uuid4().hex[:8]}",
                              s3=(f"uploads: {uploads}",))
    bridge = Bridge(load_bridge_config(cfg))
    bridge.start()
    collector = MqttCollector(broker.port, "edgefilter/#", client_id=f"bench-{folder.name}")
    try:
        pub.wait_subscribed()
        assert bridge.mqtt.wait_up(10)
        m = bridge.metrics
        n = len(jpegs)
        if kind == "backlog":
            broker.stop()
            wait(lambda: not bridge.mqtt.up, 10)
        t0 = time.perf_counter()
        if kind == "drift":
            for i in range(n):
                pub.drift("cam1", i * 0.001)
        else:
            for seq, jpeg in enumerate(jpegs):
                pub.sock.send_multipart(encode_frame(pub.header("cam1", seq), jpeg))
        what = "drift" if kind == "drift" else "frame"
        wait(lambda: m.value("edgefilter_bridge_received_total", daemon="box1", kind=what) == n, 300)
        t_in = time.perf_counter() - t0
        store_only = None
        if kind == "backlog":
            wait(lambda: m.value("edgefilter_bridge_objects_stored_total") == n, 300)
            store_only = round(n / (time.perf_counter() - t0), 1)  # uploads alone, the broker being away
            broker.start()
            t0 = time.perf_counter()  # the flush alone (the JPEGs were uploaded while the broker was away)
        wait(lambda: m.value("edgefilter_bridge_forwarded_total", kind=what) == n, 600)
        elapsed = time.perf_counter() - t0
        wait(lambda: len(collector.payloads("/" + what)) >= n, 60)
        mb = sum(map(len, jpegs)) / 1e6 if kind == "live" else 0.0  # the backlog flush moves no JPEG
        return {"run": kind, "uploads": uploads, "messages": n, "seconds": round(elapsed, 2),
                "per_s": round(n / elapsed, 1), "jpeg_mb_per_s": round(mb / elapsed, 2) if mb else None,
                "ingest_per_s": round(n / t_in, 1), "store_only_per_s": store_only, "seq_gaps": m.value("edgefilter_bridge_seq_gaps_total",
                                                                        daemon="box1")}
    finally:
        bridge.stop(drain_s=1.0)
        collector.close()
        pub.close()
        broker.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    jpegs = camera_jpegs(args.frames)
    print(f"{args.frames} frames of 640x360, mean JPEG {np.mean([len(j) for j in jpegs]) / 1e3:.1f} kB "
          f"(quality 90)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        store = SeaweedFS(work / "seaweedfs")
        print(f"SeaweedFS ready in {time.perf_counter() - t:.1f} s")
        try:
            results = [run("live", work, store, jpegs, uploads=4), run("live", work, store, jpegs, uploads=1),
                       run("backlog", work, store, jpegs), run("drift", work, store, jpegs * 2)]
        finally:
            store.close()
    for r in results:
        mbs = f"{r['jpeg_mb_per_s']:6.2f} MB/s" if r["jpeg_mb_per_s"] else "      -     "
        print(f"{r['run']:8s} uploads={r['uploads']}  {r['messages']:5d} msgs in {r['seconds']:6.2f} s  "
              f"{r['per_s']:7.1f} msg/s  {mbs}  ingest {r['ingest_per_s']:7.1f} msg/s  gaps {r['seq_gaps']:.0f}")
    live4, live1, backlog, drift = results
    print(f"backlog: uploads alone (broker away) {backlog['store_only_per_s']} frames/s")
    print(f"ratios: live uploads 4/1 = {live4['per_s'] / live1['per_s']:.2f}x; backlog flush / live = "
          f"{backlog['per_s'] / live4['per_s']:.2f}x; drift (MQTT only) / live frames = "
          f"{drift['per_s'] / live4['per_s']:.2f}x; ingest / live forward = {live4['ingest_per_s'] / live4['per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
