"""End to end, as a user runs it: `python -m edgefilter run -c FILE` as a process on a generated video,
with the real default ONNX model, a real ZeroMQ subscriber and the real metrics endpoint."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port
from daemonproc import metric, scrape
from videos import make_video, scene_with_events

from edgefilter.client import Subscriber
from edgefilter.message import FrameMessage

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 90
EVENTS = [(25, 45), (60, 80)]
REQUIRED = {"v", "source", "seq", "frame_index", "ts", "distance", "reason", "width", "height", "encoding",
            "model", "embedding_dim"}


@pytest.fixture
def daemon_config(tmp_path):
    video = make_video(tmp_path / "clip.avi", scene_with_events(FRAMES, EVENTS, seed=11, size=(320, 240), radius=60), fps=30)
    pub, met = free_port(), free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""
sources:
  - name: clip
    url: {video}
  - name: demo              # keeps the daemon alive after the file so the metrics can be read
    url: "demo://?fps=5&width=320&height=180"
    realtime: true
model:
  path: {ROOT / 'models' / 'efficientnet_lite0_regions.onnx'}
  providers: auto
publish:
  bind: tcp://127.0.0.1:{pub}
  embeddings: true
metrics:
  bind: 127.0.0.1:{met}
""")
    return cfg, pub, met


def test_daemon_process_publishes_kept_frames_and_metrics_agree(daemon_config, tmp_path):
    cfg, pub, met = daemon_config
    sub = Subscriber(f"tcp://127.0.0.1:{pub}", topics=("frame/clip",))
    proc = subprocess.Popen([sys.executable, "-m", "edgefilter", "run", "-c", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    msgs: list[FrameMessage] = []
    try:
        deadline = time.monotonic() + 90
        samples = {}
        while time.monotonic() < deadline:
            msg = sub.recv(timeout=0.2)
            if msg is not None:
                msgs.append(msg)
                continue
            assert proc.poll() is None, proc.stderr.read()
            try:
                samples = scrape(met)
            except OSError:
                continue
            done = metric(samples, "edgefilter_frames_captured_total", source="clip") == FRAMES
            kept = metric(samples, "edgefilter_frames_kept_total", source="clip")
            # every frame went through the model or was skipped by the pre-gate (on by default) as unchanged
            processed = (metric(samples, "edgefilter_frames_embedded_total", source="clip")
                         + metric(samples, "edgefilter_frames_gated_total", source="clip"))
            if done and processed == FRAMES and kept == len(msgs) and kept > 0:
                scraped = len(msgs)  # what the counters below had seen
                break
        else:
            pytest.fail(f"timed out: {len(msgs)} messages, samples {samples}")
        proc.send_signal(signal.SIGTERM)
        # An event still open when the clip ended is decided when the source has been quiet for max_hold_s,
        # or at shutdown at the latest (nothing kept is lost): listen until the daemon has exited.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = sub.recv(timeout=0.2)
            if msg is not None:
                msgs.append(msg)
            elif proc.poll() is not None:
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err

    # kept frames decode, headers are complete, seq has no gaps
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    card = json.loads((ROOT / "models" / "efficientnet_lite0_regions.json").read_text())
    for m in msgs:
        assert REQUIRED <= set(m.header)
        assert m.model == card["id"] and m.embedding_dim == 1280 and m.embedding.shape == (1280,)
        img = m.image()
        assert img.shape == (240, 320, 3) and (m.width, m.height) == (320, 240)
    assert msgs[0].reason == "first" and msgs[0].frame_index == 0
    # every event has a kept frame; the static stretches between them add little
    kept = [m.frame_index for m in msgs]
    for start, end in EVENTS:
        assert any(start <= i < end + 3 for i in kept), (kept, start, end)
    assert len(kept) < FRAMES / 3

    # counters agree with what had arrived when they were read (an event still open then is published later)
    assert metric(samples, "edgefilter_frames_published_total", source="clip") == scraped
    assert metric(samples, "edgefilter_source_up", source="demo") == 1
    assert metric(samples, "edgefilter_embed_batch_size_count") > 0
    assert metric(samples, "edgefilter_frame_latency_seconds_count", source="clip") == scraped
    assert metric(samples, "edgefilter_ready") == 1
    assert "CPUExecutionProvider" in err  # the log names the provider


def test_file_only_daemon_drains_and_exits_zero(tmp_path):
    video = make_video(tmp_path / "clip.avi", scene_with_events(40, [(10, 25)], seed=2, size=(224, 160)), fps=30)
    pub = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"sources: [{{name: clip, url: '{video}'}}]\n"
                   f"publish: {{bind: 'tcp://127.0.0.1:{pub}'}}\nmetrics: {{bind: null}}\n"
                   f"model: {{path: '{ROOT / 'models' / 'efficientnet_lite0_regions.onnx'}'}}\n")
    sub = Subscriber(f"tcp://127.0.0.1:{pub}", topics=("frame/",))
    try:
        r = subprocess.run([sys.executable, "-m", "edgefilter", "run", "-c", str(cfg)], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        got = []
        while (m := sub.recv(timeout=1.0)) is not None:
            got.append(m)
    finally:
        sub.close()
    assert got and got[0].reason == "first"
    assert [m.seq for m in got] == list(range(len(got)))


def test_missing_model_is_a_clear_error_before_ready(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"sources: [{{name: d, url: 'demo://'}}]\nmodel: {{path: nowhere/model.onnx}}\n"
                   f"publish: {{bind: 'tcp://127.0.0.1:{free_port()}'}}\nmetrics: {{bind: null}}\n")
    r = subprocess.run([sys.executable, "-m", "edgefilter", "run", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 69
    assert "nowhere/model.onnx" in r.stderr and "Traceback" not in r.stderr
