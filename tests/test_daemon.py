"""The daemon's wiring, in process: real captures of real video files, real ZeroMQ, real filter;
a small deterministic embedder stands in for the ONNX model so every case runs in a second or two
(the real model runs end to end in test_e2e.py)."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from fakes import FakeEmbedder
from videos import make_video, scene_with_events, static_scene

from edgefilter.client import Subscriber
from conftest import wait_for
from edgefilter.config import (Config, DriftConfig, EmbedConfig, FilterConfig, GatesConfig, MetricsConfig, PublishConfig,
                               SourceConfig, StateConfig, load_config)
from edgefilter.capture import Capture
from edgefilter.daemon import Daemon
from edgefilter.message import DriftMessage, FrameMessage
from edgefilter.source import Source


def make_config(tmp_path, port, sources, **sections) -> Config:
    sections.setdefault("publish", PublishConfig(bind=f"tcp://127.0.0.1:{port}"))
    sections.setdefault("metrics", MetricsConfig(bind=None))
    sections.setdefault("filter", FilterConfig(threshold=0.1))
    # every frame through the model, so counts of embedded frames are exact (the pre-gate has its own tests)
    sections.setdefault("gates", GatesConfig(skip_unchanged=0.0))
    return Config(sources=sources, base_dir=str(tmp_path), **sections)


class Running:
    """A daemon in a thread plus a subscriber that collects everything it publishes."""

    def __init__(self, cfg: Config, embedder: FakeEmbedder, topics=("frame/",), **kw):
        self.embedder = embedder
        self.sub = Subscriber(cfg.publish.bind, topics=topics)
        self.daemon = Daemon(cfg, registry=CollectorRegistry(), embedder_factory=self._load, **kw)
        self.messages: list[FrameMessage] = []
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _load(self, cfg, cache_dir=None) -> FakeEmbedder:
        # The real model takes a while to load after the bind; the fake one stands in for that wait
        # until the subscription has arrived, so the first kept frame reaches the subscriber.
        deadline = time.monotonic() + 5
        while self.daemon.metrics.value("edgefilter_subscribers") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.embedder

    def _run(self) -> None:
        self.code = self.daemon.run()

    def collect(self, until_exit: bool = True, timeout: float = 30.0) -> list[FrameMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.sub.recv(timeout=0.2)
            if msg is not None:
                self.messages.append(msg)
            elif until_exit and not self.thread.is_alive():
                break
        assert not (until_exit and self.thread.is_alive()), "daemon did not finish in time"
        return self.messages

    def value(self, name: str, **labels) -> float:
        return self.daemon.metrics.value(name, **labels)

    def close(self) -> None:
        self.daemon.stop()
        self.thread.join(10)
        self.sub.close()


def run_to_end(cfg: Config, embedder, **kw) -> tuple[Running, list[FrameMessage]]:
    """Run a daemon until its sources end; everything it published."""
    run = Running(cfg, embedder, **kw)
    try:
        msgs = run.collect()
    finally:
        run.close()
    return run, msgs


@pytest.fixture
def events_video(tmp_path):
    frames = scene_with_events(120, [(30, 50), (80, 100)], seed=3)
    return make_video(tmp_path / "events.avi", frames, fps=25)


def test_file_runs_to_the_end_and_every_event_is_kept(tmp_path, port, events_video):
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(events_video))])
    run, msgs = run_to_end(cfg, FakeEmbedder())
    assert run.code == 0
    assert msgs[0].reason == "first" and msgs[0].frame_index == 0 and msgs[0].distance is None
    kept = [m.frame_index for m in msgs]
    assert any(30 <= i < 50 for i in kept) and any(80 <= i < 100 for i in kept)
    assert not any(5 <= i < 30 for i in kept), "the static scene under sensor noise was kept again"
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    assert all(m.reason == "novel" and m.distance > 0.1 for m in msgs[1:])
    assert run.value("edgefilter_frames_captured_total", source="cam") == 120
    assert run.value("edgefilter_frames_kept_total", source="cam") == len(msgs)
    assert run.value("edgefilter_frames_published_total", source="cam") == len(msgs)
    assert run.value("edgefilter_index_size", source="cam") == len(msgs)
    img = msgs[0].image()
    assert img.shape == (120, 160, 3)


def small_object_video(tmp_path) -> Path:
    """A still scene with sensor noise; from frame 60 on a small dark object sits in the top-left quarter."""
    base = static_scene(5).astype(np.int16)
    rng = np.random.default_rng(6)
    frames = []
    for i in range(100):
        img = base + rng.normal(0, 2.0, base.shape).round().astype(np.int16)
        if i >= 60:
            img[15:45, 20:60] = 20
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return make_video(tmp_path / "object.avi", frames, fps=25)


@pytest.mark.parametrize("regional", [True, False])
def test_a_small_object_is_kept_by_its_region(tmp_path, port, regional):
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(small_object_video(tmp_path)))],
                      filter=FilterConfig(mode="frame", threshold=0.5, regional=regional))
    run, msgs = run_to_end(cfg, FakeEmbedder())
    assert run.code == 0 and msgs[0].reason == "first"
    later = [m for m in msgs[1:]]
    if regional:  # the whole thumbnail moves less than 0.5; its top-left quarter (region 0) far more than its noise
        assert [m.frame_index for m in later] == [60] and later[0].header["region"] == 0
        # distance keeps its meaning (whole image, below the threshold); the region's change has its own key
        assert later[0].distance < later[0].header["threshold"] == 0.5
        assert later[0].header["region_score"] > FilterConfig().region_threshold
        assert run.value("edgefilter_frames_kept_regional_total", source="cam") == 1
    else:
        assert later == [] and run.value("edgefilter_frames_kept_regional_total", source="cam") == 0


class WholeImageEmbedder(FakeEmbedder):
    """A model without a region output (like models/efficientnet_lite0.onnx)."""

    has_regions = False
    region_count = 0
    region_dim = None

    def embed(self, batch: np.ndarray):
        out = super().embed(batch)
        out.regions = None
        return out


def test_regional_by_default_with_a_model_without_regions_runs_on_the_whole_image(tmp_path, port, caplog):
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(small_object_video(tmp_path)))],
                      filter=FilterConfig(mode="frame", threshold=0.5))
    assert cfg.filter.regional  # the default
    with caplog.at_level("WARNING", logger="edgefilter"):
        run, msgs = run_to_end(cfg, WholeImageEmbedder())
    assert run.code == 0 and [m.reason for m in msgs] == ["first"]  # the small object: whole image only
    assert any("has no region output: the whole image alone decides" in r.getMessage() for r in caplog.records)


def test_frames_of_several_sources_are_batched_together(tmp_path, port):
    videos = [make_video(tmp_path / f"v{i}.avi", scene_with_events(60, [(20, 40)], seed=i), fps=25) for i in range(3)]
    cfg = make_config(tmp_path, port, [SourceConfig(name=f"cam{i}", url=str(v)) for i, v in enumerate(videos)],
                      embed=EmbedConfig(max_batch=6, max_wait_ms=50))
    embedder = FakeEmbedder(delay=0.01)
    run, msgs = run_to_end(cfg, embedder)
    assert run.code == 0
    assert max(embedder.batches) > 1 and max(embedder.batches) <= 6
    assert sum(embedder.batches) == 180
    for i in range(3):
        seqs = [m.seq for m in msgs if m.source == f"cam{i}"]
        assert seqs == list(range(len(seqs))) and seqs
        assert run.value("edgefilter_frames_captured_total", source=f"cam{i}") == 60


def test_a_large_frame_is_worked_on_halved_and_sent_whole(tmp_path, port, monkeypatch):
    from edgefilter import daemon as daemon_module

    seen: list[tuple[int, ...]] = []
    real = daemon_module.preprocess

    def spy(image, *args, **kwargs):
        seen.append(image.shape)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(daemon_module, "preprocess", spy)
    frames = [cv2.resize(f, (1280, 720)) for f in scene_with_events(6, [(2, 4)], seed=5)]
    video = make_video(tmp_path / "hd.avi", frames, fps=25)
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(video))],
                      filter=FilterConfig(threshold=0.0, mode="frame"))
    run, msgs = run_to_end(cfg, FakeEmbedder())
    assert run.code == 0
    assert seen == [(360, 640, 3)] * 6  # the model input made from the working copy
    assert msgs and all((m.width, m.height) == (1280, 720) for m in msgs)  # the kept frame at full size


class ScriptedSource(Source):
    """A camera handing out the given arrays as its frames (a grey one read without RGB conversion gives
    (h, w, 1) frames; a thermal one, uint16)."""

    kind = "scripted camera"

    def __init__(self, name, frames):
        super().__init__(name, "scripted://", live=False, finite=True)
        self.frames, self.n = frames, 0

    def open(self):
        pass

    def read(self):
        if self.n >= len(self.frames):
            return None
        self.n += 1
        return self.n - 1, self.frames[self.n - 1]


@pytest.mark.parametrize("size", [(64, 48), (1280, 720)])  # worked on as it is, and through the working copy
def test_one_channel_frames_are_grey_frames_not_a_dead_source(tmp_path, port, size):
    frames = [cv2.cvtColor(cv2.resize(f, size), cv2.COLOR_BGR2GRAY)[:, :, None]
              for f in scene_with_events(30, [(10, 20)], seed=2)]

    run, msgs = run_scripted(tmp_path, port, frames)
    assert run.code == 0
    assert run.value("edgefilter_frames_embedded_total", source="cam") == 30  # every frame, none lost to an error
    assert msgs and msgs[0].frame_index == 0 and any(10 <= m.frame_index < 20 for m in msgs)


def run_scripted(tmp_path, port, frames):
    def capture(src, sink, metrics, **kw):
        return Capture(src, sink, metrics, open_source=lambda cfg, **_: ScriptedSource(cfg.name, frames), **kw)

    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url="camera.avi")])
    return run_to_end(cfg, FakeEmbedder(), capture_factory=capture)


def test_frames_no_stage_can_read_are_dropped_as_corrupt_and_the_source_goes_on(tmp_path, port):
    good = scene_with_events(12, [(6, 9)], seed=4)
    odd = [np.zeros((48, 64, 2), np.uint8), good[0].astype(np.uint16), np.zeros((4, 4, 3), np.uint8),
           np.zeros((48, 64, 5), np.uint8), np.zeros((2, 48, 64, 3), np.uint8)]
    frames = good[:3] + odd + good[3:]
    run, msgs = run_scripted(tmp_path, port, frames)
    assert run.code == 0
    assert run.value("edgefilter_frames_dropped_total", source="cam", reason="corrupt") == len(odd)
    assert run.value("edgefilter_frames_embedded_total", source="cam") == len(good)
    # good[k] of k >= 3 comes as frame len(odd) + k: the event after the odd frames is kept
    assert any(len(odd) + 6 <= m.frame_index < len(odd) + 9 for m in msgs), [m.frame_index for m in msgs]


def test_a_frame_that_breaks_a_stage_is_dropped_and_the_source_goes_on(tmp_path, port, monkeypatch, caplog):
    from edgefilter import daemon as daemon_module

    real, calls = daemon_module.view_thumbnail, []

    def breaks_twice(image, grey=None):
        calls.append(1)
        if len(calls) in (4, 5):
            raise RuntimeError("a stage broke on this frame")
        return real(image, grey)

    monkeypatch.setattr(daemon_module, "view_thumbnail", breaks_twice)
    with caplog.at_level(logging.ERROR, logger="edgefilter"):
        run, msgs = run_scripted(tmp_path, port, scene_with_events(40, [(20, 30)], seed=6))
    assert run.code == 0
    assert run.value("edgefilter_frames_dropped_total", source="cam", reason="error") == 2
    assert run.value("edgefilter_frames_embedded_total", source="cam") == 38
    assert any(20 <= m.frame_index < 30 for m in msgs)  # the event after them is kept
    reports = [r for r in caplog.records if "broke the capture stage" in r.getMessage()]
    assert len(reports) == 1 and reports[0].exc_info is not None  # the second, within the minute, is counted


def test_a_live_source_drops_under_backpressure_and_counts_it(tmp_path, port):
    cfg = make_config(tmp_path, port, [SourceConfig(name="live", url="demo://?fps=400&width=160&height=120",
                                                    realtime=True)],
                      embed=EmbedConfig(max_batch=1, max_wait_ms=0, queue_size=2))
    run = Running(cfg, FakeEmbedder(delay=0.02))
    try:
        deadline = time.monotonic() + 10
        while run.value("edgefilter_frames_dropped_total", source="live", reason="backpressure") < 20:
            assert time.monotonic() < deadline, "no backpressure drops counted"
            time.sleep(0.05)
    finally:
        run.close()
    captured = run.value("edgefilter_frames_captured_total", source="live")
    dropped = sum(run.value("edgefilter_frames_dropped_total", source="live", reason=r)
                  for r in ("backpressure", "shutdown", "dark", "bright", "frozen", "corrupt", "blurred"))
    processed = run.value("edgefilter_frames_embedded_total", source="live")
    assert captured == processed + dropped  # every frame accounted for, none silently lost


def test_stop_drains_what_was_taken_and_exits_zero(tmp_path, port):
    video = make_video(tmp_path / "long.avi", scene_with_events(400, [(100, 150), (300, 350)], seed=5), fps=25)
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(video))])
    run = Running(cfg, FakeEmbedder(delay=0.05))
    # frames flow (the decoder is a process of its own: on a loaded machine it may take a while to start)
    assert wait_for(lambda: run.value("edgefilter_frames_captured_total", source="cam") > 0, timeout=60)
    run.daemon.stop()
    run.thread.join(15)
    msgs = run.collect(until_exit=True, timeout=2)
    run.sub.close()
    assert run.code == 0
    captured = run.value("edgefilter_frames_captured_total", source="cam")
    embedded = run.value("edgefilter_frames_embedded_total", source="cam")
    shutdown = run.value("edgefilter_frames_dropped_total", source="cam", reason="shutdown")
    assert 0 < captured < 400
    assert captured == embedded + shutdown
    assert len(msgs) == run.value("edgefilter_frames_published_total", source="cam")


def test_restart_on_an_unchanged_scene_keeps_nothing_again(tmp_path, port):
    still = [static_scene(7)] * 40
    video = make_video(tmp_path / "still.avi", still, fps=25)
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(video))],
                      state=StateConfig(dir=str(tmp_path / "state")),
                      gates=GatesConfig(frozen=False))
    first = Running(cfg, FakeEmbedder())
    try:
        assert len(first.collect()) == 1
    finally:
        first.close()
    assert (tmp_path / "state").is_dir()
    second = Running(cfg, FakeEmbedder())
    try:
        again = second.collect()
    finally:
        second.close()
    assert again == []
    assert second.value("edgefilter_index_size", source="cam") == 1
    assert second.value("edgefilter_frames_captured_total", source="cam") == 40


def test_sighup_reload_applies_good_config_and_keeps_running_on_bad(tmp_path, port):
    path = tmp_path / "c.yaml"
    text = (f"sources: [{{name: live, url: 'demo://?fps=30&width=160&height=120', realtime: true}}]\n"
            f"publish: {{bind: 'tcp://127.0.0.1:{port}'}}\nmetrics: {{bind: null}}\n")
    path.write_text(text + "filter: {threshold: 0.1}\n")
    cfg = load_config(path)
    run = Running(cfg, FakeEmbedder(), config_path=str(path))
    try:
        time.sleep(0.5)
        path.write_text(text + "filter: {threshold: 0.3}\n")
        assert run.daemon.reload() is True
        assert run.daemon.novelty.threshold("live") == pytest.approx(0.3)
        path.write_text(text + "filter: {threshold: lots}\n")
        assert run.daemon.reload() is False
        assert run.daemon.novelty.threshold("live") == pytest.approx(0.3)
        assert run.value("edgefilter_config_reloads_total", result="ok") == 1
        assert run.value("edgefilter_config_reloads_total", result="error") == 1
        assert run.thread.is_alive()
    finally:
        run.close()
    assert run.code == 0


class StopJustAfterTheWait(threading.Event):
    """The daemon's stop event, set by the main loop's own wait once armed: the stop comes just after that wait
    timed out, and the drift thread has ended (as it does on a stop) before the loop looks at its threads."""

    def __init__(self, loop_thread_name: str):
        super().__init__()
        self.loop_thread_name = loop_thread_name
        self.armed = threading.Event()
        self.threads: list[threading.Thread] = []

    def wait(self, timeout=None):
        if timeout is not None and self.armed.is_set() and threading.current_thread().name == self.loop_thread_name:
            self.armed.clear()
            self.set()
            for t in self.threads:
                if t.name == "drift":
                    t.join(5)
            return False
        return super().wait(timeout)


def test_a_stop_that_ends_the_drift_thread_is_a_clean_exit_not_a_dead_stage(tmp_path, port):
    cfg = make_config(tmp_path, port, [SourceConfig(name="live", url="demo://?fps=30&width=160&height=120",
                                                    realtime=True)])
    daemon = Daemon(cfg, registry=CollectorRegistry(), embedder_factory=lambda cfg, cache_dir=None: FakeEmbedder())
    stop = daemon._stop = StopJustAfterTheWait("daemon-under-test")
    stop.threads = daemon._threads
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run()), name="daemon-under-test", daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: daemon.metrics.value("edgefilter_frames_captured_total", source="live") >= 3, 10)
        stop.armed.set()
        thread.join(15)
    finally:
        stop.set()
        thread.join(10)
    assert codes == [0]


def test_quality_gates_drop_and_count_dark_frames(tmp_path, port):
    frames = [static_scene(1)] * 10 + [np.zeros((120, 160, 3), np.uint8)] * 10
    video = make_video(tmp_path / "dark.avi", frames, fps=25)
    cfg = make_config(tmp_path, port, [SourceConfig(name="cam", url=str(video))],
                      gates=dataclasses.replace(GatesConfig(), frozen=False, skip_unchanged=0.0))
    run = Running(cfg, FakeEmbedder())
    try:
        run.collect()
    finally:
        run.close()
    assert run.value("edgefilter_frames_dropped_total", source="cam", reason="dark") == 10
    assert run.value("edgefilter_frames_embedded_total", source="cam") == 10


def test_drift_statistics_flow_as_messages_and_gauges(tmp_path, port):
    cfg = make_config(tmp_path, port, [SourceConfig(name="live", url="demo://?fps=100&width=160&height=120",
                                                    realtime=True)],
                      drift=DriftConfig(enabled=True, warmup=60, window=20, interval_s=0.3, permutations=20))
    run = Running(cfg, FakeEmbedder(), topics=("drift/",))
    try:
        drift = [m for m in run.collect(until_exit=False, timeout=6) if isinstance(m, DriftMessage)]
    finally:
        run.close()
    assert drift, "no drift message within 6 s"
    h = drift[-1].header
    assert h["source"] == "live" and h["window"] == 20 and 0.0 <= h["p_value"] <= 1.0
    assert isinstance(h["drift"], bool)
    assert run.value("edgefilter_drift_updates_total", source="live") >= len(drift)
    assert 0.0 <= run.value("edgefilter_drift_p_value", source="live") <= 1.0


class NotifySocket:
    """A real sd_notify datagram socket, as systemd binds it."""

    def __init__(self, path):
        import socket as _socket
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except OSError:
                return self.messages


def test_service_manager_hears_ready_watchdog_reload_and_stopping(tmp_path, port):
    from edgefilter.notify import Notifier
    path = tmp_path / "c.yaml"
    path.write_text(f"sources: [{{name: live, url: 'demo://?fps=30&width=160&height=120', realtime: true}}]\n"
                    f"publish: {{bind: 'tcp://127.0.0.1:{port}'}}\nmetrics: {{bind: null}}\n")
    sock = NotifySocket(tmp_path / "notify")
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"})
    run = Running(load_config(path), FakeEmbedder(), config_path=str(path), notifier=notifier)
    try:
        time.sleep(1.0)
        run.daemon.request_reload()
        time.sleep(0.6)
    finally:
        run.close()
    lines = [line for m in sock.drain() for line in m.split("\n")]
    assert "READY=1" in lines and "STOPPING=1" in lines and "RELOADING=1" in lines
    assert lines.index("READY=1") < lines.index("RELOADING=1") < lines.index("STOPPING=1")
    assert lines.count("WATCHDOG=1") >= 5  # every 0.1 s while frames flow


def test_a_stuck_pipeline_stops_petting_the_watchdog(tmp_path, port):
    from edgefilter.notify import Notifier
    release = threading.Event()

    class StuckEmbedder(FakeEmbedder):
        def embed(self, batch):
            release.wait(30)  # the model hangs (a wedged GPU driver, say)
            return super().embed(batch)

    cfg = make_config(tmp_path, port, [SourceConfig(name="live", url="demo://?fps=30&width=160&height=120",
                                                    realtime=True)])
    cfg = dataclasses.replace(cfg, shutdown_timeout_s=1.0)
    sock = NotifySocket(tmp_path / "notify")
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "200000"})
    run = Running(cfg, StuckEmbedder(), notifier=notifier)
    try:
        time.sleep(1.0)
        sock.drain()
        early = sock.messages.count("WATCHDOG=1")
        time.sleep(6.5)  # past the stuck limit (5 s without progress while work waits)
        sock.drain()
        sock.messages.clear()
        time.sleep(1.0)
        late = sock.drain().count("WATCHDOG=1")
    finally:
        release.set()
        run.close()
    assert early >= 3, "the watchdog was not petted while the pipeline was young"
    assert late == 0, "the watchdog was still petted while the pipeline made no progress"


def test_progress_line_only_for_a_person_at_a_terminal(monkeypatch):
    from edgefilter import daemon as daemon_module
    cfg = Config(sources=[SourceConfig(name="f", url="x.mp4")])
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr(daemon_module.sys.stderr, "isatty", lambda: True)
    assert daemon_module._show_progress(cfg) is True
    monkeypatch.setenv("INVOCATION_ID", "0123")  # set by systemd for every service
    assert daemon_module._show_progress(cfg) is False
    monkeypatch.delenv("INVOCATION_ID")
    monkeypatch.setattr(daemon_module.sys.stderr, "isatty", lambda: False)
    assert daemon_module._show_progress(cfg) is False
