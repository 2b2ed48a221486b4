"""A real live stream on loopback: ffmpeg serves a generated clip as MPEG-TS over TCP; the capture
reads it, notices when the server dies, and reconnects when it comes back.

ffmpeg is the one on PATH, else the binary of the `imageio-ffmpeg` wheel (in the `test` extra), so a fresh
machine needs no system package; the test fails with a clear message when neither exists, never skips.
"""
from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time

import pytest
from prometheus_client import CollectorRegistry

from edgefilter.capture import Capture
from edgefilter.config import BackoffConfig, SourceConfig
from edgefilter.metrics import Metrics
from conftest import free_port, wait_for
from videos import frame_number, make_video, numbered_frames

CLIP_FRAMES = 50


def require_ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is not None:
        return path
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        pytest.fail(f"ffmpeg is required for the stream tests: none on PATH and none from imageio-ffmpeg ({exc}); "
                    "install the test extra (pip install -e '.[cpu,test]') or apt-get install ffmpeg")


class Server:
    """``ffmpeg -re -stream_loop -1 -i clip -f mpegts tcp://127.0.0.1:PORT?listen=1`` as a camera stand-in."""

    def __init__(self, ffmpeg: str, clip, port: int, log_path):
        self.cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                    "-i", str(clip),
                    # Re-encode so the codec headers travel in-band, and often (keyframes every 10 frames),
                    # as a camera's stream does; a plain copy of an mp4 stream has them only in its container.
                    "-c:v", "mpeg4", "-q:v", "4", "-g", "10",
                    "-f", "mpegts", f"tcp://127.0.0.1:{port}?listen=1"]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


def test_capture_survives_the_stream_server_dying_and_returning(tmp_path):
    ffmpeg = require_ffmpeg()
    clip = make_video(tmp_path / "clip.mp4", numbered_frames(CLIP_FRAMES), fps=25)
    port = free_port()
    server = Server(ffmpeg, clip, port, tmp_path / "ffmpeg.log")
    frames = []

    def sink(frame, live):
        assert live
        frames.append(frame)
        return True

    metrics = Metrics(CollectorRegistry())
    cfg = SourceConfig(name="lobby", url=f"tcp://127.0.0.1:{port}", stall_s=2.0, open_timeout_s=2.0,
                       read_timeout_s=1.0, backoff=BackoffConfig(initial_s=0.1, max_s=0.5, jitter=0.1))
    cap = Capture(cfg, sink, metrics, rng=random.Random(0))
    up = lambda: metrics.value("edgefilter_source_up", source="lobby")  # noqa: E731
    reconnects = lambda: metrics.value("edgefilter_source_reconnects_total", source="lobby")  # noqa: E731
    server.start()
    try:
        cap.start()
        assert wait_for(lambda: len(frames) >= 15, 8), f"no frames from the stream ({server.log_path.read_text()})"
        assert up() == 1 and cap.up

        server.kill()
        assert wait_for(lambda: up() == 0, 5), "the capture did not notice the server dying"
        stopped_at = len(frames)
        time.sleep(0.5)
        assert len(frames) == stopped_at, "frames kept coming from a dead server"
        assert metrics.value("edgefilter_source_errors_total", source="lobby") >= 1
        assert not cap.finished  # a stream is retried forever

        server.start()
        assert wait_for(lambda: len(frames) >= stopped_at + 15, 10), "no frames after the server came back"
        assert up() == 1 and reconnects() > 0
    finally:
        cap.stop()
        server.kill()
        assert cap.join(5)
    assert up() == 0
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))  # in order, across the reconnect
    numbers = [frame_number(f.image) for f in frames]
    assert all(0 <= n < CLIP_FRAMES for n in numbers)
    first_run = numbers[:stopped_at]
    assert sum(b == (a + 1) % CLIP_FRAMES for a, b in zip(first_run, first_run[1:])) >= len(first_run) - 3
    assert frames[0].image.shape == (120, 160, 3)
