"""Capture: ordering, sampling, pacing, healing with backoff, the stall watchdog, metrics and logs."""
from __future__ import annotations

import logging
import random
import threading
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from edgefilter.capture import Capture
from edgefilter.clock import SYSTEM_CLOCK, FakeClock
from edgefilter.config import BackoffConfig, SourceConfig
from edgefilter.errors import SourceError
from edgefilter.metrics import Metrics
from edgefilter.source import Source, open_source
from conftest import wait_for
from videos import frame_number, make_image_dir, make_video, numbered_frame, numbered_frames

NAME = "cam"


class Collector:
    """A sink that records what it gets; ``stop_after`` makes it return False."""

    def __init__(self, stop_after: int | None = None):
        self.frames = []
        self.lives = set()
        self.stop_after = stop_after
        self.lock = threading.Lock()
        self.event = threading.Event()

    def __call__(self, frame, live):
        with self.lock:
            self.frames.append(frame)
            self.lives.add(live)
        self.event.set()
        return not (self.stop_after is not None and len(self.frames) >= self.stop_after)

    def count(self):
        with self.lock:
            return len(self.frames)

    def indices(self):
        with self.lock:
            return [f.index for f in self.frames]


class FakeSource(Source):
    """A scripted live source: fails to open, raises after some frames, or blocks in read on an Event."""

    kind = "fake camera"

    def __init__(self, name, url="rtsp://user:hunter2@10.0.0.9/live", *, live=True, fail_open=False, frames=None,
                 raise_after=None, block_after=None, block_open=False, release: threading.Event | None = None,
                 clock: FakeClock | None = None, period: float = 0.0):
        super().__init__(name, url, live=live, finite=not live, fps=None, clocked=live)
        self.fail_open, self.frames_left = fail_open, frames
        self.raise_after, self.block_after, self.block_open = raise_after, block_after, block_open
        self.release = release or threading.Event()
        self.n = 0
        self.clock, self.period = clock, period  # a fake camera delivering at 1/period fps on a fake clock
        self.closed = threading.Event()
        self.read_after_release = False

    def open(self):
        if self.block_open:
            self.release.wait()
        if self.fail_open:
            raise SourceError(f"source {self.name!r}: cannot open fake camera")

    def read(self):
        if self.block_after is not None and self.n >= self.block_after:
            self.release.wait()  # like VideoCapture.read on a dead stream: blocks until released
            self.read_after_release = True
        if self.raise_after is not None and self.n >= self.raise_after:
            raise SourceError(f"source {self.name!r}: fake camera read failed")
        if self.frames_left is not None and self.n >= self.frames_left:
            return None
        i = self.n
        self.n += 1
        time.sleep(0.001)  # a camera takes time per frame
        if self.clock is not None:
            self.clock.advance(self.period)
        return i, numbered_frame(i, (64, 48))

    def close(self):
        self.closed.set()


class Opener:
    """open_source replacement: hands out the scripted sources one per connection (the last one repeats)."""

    def __init__(self, *sources):
        self.sources = list(sources)
        self.calls = 0

    def __call__(self, cfg, base_dir=".", clock=None):
        src = self.sources[min(self.calls, len(self.sources) - 1)]
        self.calls += 1
        if callable(src) and not isinstance(src, Source):
            return src()
        return src


def make_capture(cfg, sink, clock=SYSTEM_CLOCK, opener=open_source, base_dir=".", seed=0):
    metrics = Metrics(CollectorRegistry())
    metrics.init_source(cfg.name)
    cap = Capture(cfg, sink, metrics, clock=clock, base_dir=base_dir, open_source=opener, rng=random.Random(seed))
    return cap, metrics


def run_to_end(cap, timeout=10.0):
    cap.start()
    assert cap.join(timeout), "capture did not finish"


def cfg(url="", **kw):
    return SourceConfig(name=kw.pop("name", NAME), url=str(url), **kw)


# --------------------------------------------------------------------------- files


def test_file_frames_in_order_then_finished(tmp_path):
    path = make_video(tmp_path / "v.mp4", numbered_frames(30), fps=30)
    sink, clock = Collector(), FakeClock()
    cap, m = make_capture(cfg(path), sink, clock=clock)
    run_to_end(cap)
    assert cap.finished and cap.error is None and not cap.up
    assert sink.indices() == list(range(30))
    assert [frame_number(f.image) for f in sink.frames] == list(range(30))
    assert sink.lives == {False}
    f = sink.frames[0]
    assert f.source == NAME and f.ts == clock.time() and f.t_capture == clock.monotonic()
    assert m.value("edgefilter_source_up", source=NAME) == 0
    assert m.value("edgefilter_source_errors_total", source=NAME) == 0
    assert m.value("edgefilter_source_reconnects_total", source=NAME) == 0


def test_a_file_read_faster_than_real_time_carries_its_own_clock(tmp_path):
    # the novelty filter's holds and stillness are seconds of the scene, not of how fast the file was read
    path = make_video(tmp_path / "v.mp4", numbered_frames(30), fps=25)
    sink, clock = Collector(), FakeClock()
    cap, _ = make_capture(cfg(path), sink, clock=clock)
    run_to_end(cap)
    t0 = sink.frames[0].ts
    assert [f.media_ts for f in sink.frames] == pytest.approx([t0 + i / 25 for i in range(30)])
    assert all(f.ts == t0 for f in sink.frames)  # the fake clock did not move: the header's ts is capture time
    assert sink.frames[-1].scene_ts == pytest.approx(t0 + 29 / 25)


@pytest.mark.parametrize("fps,max_fps,expected", [
    (30, 10, list(range(0, 30, 3))),
    (25, 10, [0, 3, 5, 8, 10, 13, 15, 18, 20, 23]),
    (10, 20, list(range(10))),  # slower than the cap: every frame
])
def test_max_fps_samples_files_by_media_time(tmp_path, fps, max_fps, expected):
    n = 30 if fps == 30 else (25 if fps == 25 else 10)
    path = make_video(tmp_path / "v.avi", numbered_frames(n), fps=fps)
    sink = Collector()
    cap, m = make_capture(cfg(path, max_fps=max_fps), sink, clock=FakeClock())
    run_to_end(cap)
    assert sink.indices() == expected
    assert [frame_number(f.image) for f in sink.frames] == expected
    assert sum(m.value("edgefilter_frames_dropped_total", source=NAME, reason=r)
               for r in ("backpressure", "corrupt")) == 0  # sampling is not dropping


def test_realtime_paces_a_file_at_its_native_rate(tmp_path):
    path = make_video(tmp_path / "v.avi", numbered_frames(10), fps=20)
    sink, clock = Collector(), FakeClock()
    cap, _ = make_capture(cfg(path, realtime=True), sink, clock=clock)
    run_to_end(cap)
    t = np.array([f.t_capture for f in sink.frames])
    assert np.allclose(np.diff(t), 0.05, atol=1e-6)
    assert clock.monotonic() == pytest.approx(0.45, abs=1e-6)
    assert sink.lives == {False}  # a paced file still makes the pipeline wait


def test_realtime_with_max_fps_keeps_media_timing(tmp_path):
    path = make_video(tmp_path / "v.avi", numbered_frames(20), fps=20)
    sink, clock = Collector(), FakeClock()
    cap, _ = make_capture(cfg(path, realtime=True, max_fps=5), sink, clock=clock)
    run_to_end(cap)
    assert sink.indices() == [0, 4, 8, 12, 16]
    assert np.allclose(np.diff([f.t_capture for f in sink.frames]), 0.2, atol=1e-6)


def test_realtime_short_clip_on_the_real_clock(tmp_path):
    path = make_video(tmp_path / "v.avi", numbered_frames(8), fps=25)
    sink = Collector()
    cap, _ = make_capture(cfg(path, realtime=True), sink)
    t0 = time.monotonic()
    run_to_end(cap)
    elapsed = time.monotonic() - t0
    assert sink.indices() == list(range(8))
    assert 0.25 < elapsed < 10.0  # 7 intervals of 40 ms, plus opening (a loaded machine: slow, never early)
    # paced to the media clock: no frame comes before its time (a late one may be followed by a quicker
    # one that catches up, so gaps alone can be under 40 ms on a loaded machine)
    since_first = np.array([f.t_capture for f in sink.frames]) - sink.frames[0].t_capture
    assert np.all(since_first >= 0.04 * np.arange(8) - 0.005)


@pytest.mark.parametrize("content", [None, b"garbage" * 1000])
def test_missing_or_undecodable_file_finishes_with_one_error(tmp_path, caplog, content):
    path = tmp_path / "cam.mp4"
    if content is not None:
        path.write_bytes(content)
    sink = Collector()
    cap, m = make_capture(cfg("cam.mp4"), sink, base_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="edgefilter"):
        run_to_end(cap)
    assert cap.finished and sink.count() == 0
    assert str(path) in cap.error and "'cam'" in cap.error
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage()
    assert m.value("edgefilter_source_errors_total", source=NAME) == 1
    assert m.value("edgefilter_source_reconnects_total", source=NAME) == 0
    assert m.value("edgefilter_source_up", source=NAME) == 0


def test_bad_demo_url_finishes_with_error():
    cap, _ = make_capture(cfg("demo://?bogus=1"), Collector())
    run_to_end(cap)
    assert cap.finished and "bogus" in cap.error


def test_image_dir_corrupt_file_counted_as_corrupt_drop(tmp_path):
    d = make_image_dir(tmp_path / "imgs", numbered_frames(6), corrupt=[2])
    sink = Collector()
    cap, m = make_capture(cfg(d), sink)
    run_to_end(cap)
    assert sink.indices() == [0, 1, 3, 4, 5] and cap.finished and cap.error is None
    assert m.value("edgefilter_frames_dropped_total", source=NAME, reason="corrupt") == 1


def test_sink_false_stops_the_capture(tmp_path):
    sink = Collector(stop_after=3)
    cap, _ = make_capture(cfg("demo://?width=64&height=48"), sink)  # endless
    run_to_end(cap)
    assert sink.count() == 3 and not cap.finished


def test_max_fps_samples_cameras_by_arrival_time():
    clock = FakeClock()
    camera = FakeSource(NAME, clock=clock, period=1 / 30)  # 30 fps, whatever it claims
    camera.fps = 25.0
    sink = Collector(stop_after=10)
    cap, _ = make_capture(cfg("rtsp://x", max_fps=10), sink, clock=clock, opener=Opener(camera))
    run_to_end(cap)
    assert sink.indices() == list(range(0, 30, 3))
    assert np.allclose(np.diff([f.t_capture for f in sink.frames]), 0.1, atol=1e-6)


def test_finite_realtime_demo_is_live_and_finishes():
    sink, clock = Collector(), FakeClock()
    cap, _ = make_capture(cfg("demo://?width=64&height=48&fps=50&frames=20", realtime=True), sink, clock=clock)
    run_to_end(cap)
    assert cap.finished and sink.indices() == list(range(20)) and sink.lives == {True}
    assert clock.monotonic() == pytest.approx(19 / 50, abs=1e-6)


def test_demo_realtime_is_live_and_paced():
    sink, clock = Collector(stop_after=5), FakeClock()
    cap, m = make_capture(cfg("demo://?width=64&height=48&fps=10", realtime=True), sink, clock=clock)
    cap.start()
    assert cap.join(5)
    assert sink.lives == {True}
    assert np.allclose(np.diff([f.t_capture for f in sink.frames]), 0.1, atol=1e-6)


def test_one_failing_source_does_not_affect_another(tmp_path):
    good_sink, bad_sink = Collector(), Collector()
    path = make_video(tmp_path / "ok.avi", numbered_frames(12), fps=10)
    good, mg = make_capture(cfg(path, name="good"), good_sink)
    bad, mb = make_capture(cfg(tmp_path / "missing.avi", name="bad"), bad_sink)
    bad.start()
    good.start()
    assert bad.join(5) and good.join(5)
    assert bad.finished and bad.error and good.finished and good.error is None
    assert good_sink.indices() == list(range(12))
    assert mg.value("edgefilter_source_errors_total", source="good") == 0


# --------------------------------------------------------------------------- healing


def test_reconnect_with_capped_exponential_backoff(caplog):
    fails = [FakeSource(NAME, fail_open=True) for _ in range(5)]
    works = FakeSource(NAME, frames=None)
    opener = Opener(*fails, works)
    sink, clock = Collector(stop_after=20), FakeClock()
    backoff = BackoffConfig(initial_s=1.0, max_s=4.0, jitter=0.0)
    cap, m = make_capture(cfg("rtsp://x", backoff=backoff), sink, clock=clock, opener=opener)
    with caplog.at_level(logging.DEBUG, logger="edgefilter"):
        cap.start()
        assert cap.join(5)
    # Waits 1, 2, 4, 4, 4 seconds (fake time), then frames flow.
    assert clock.monotonic() == pytest.approx(15.0, abs=0.01)
    assert m.value("edgefilter_source_reconnects_total", source=NAME) == 5
    assert m.value("edgefilter_source_errors_total", source=NAME) == 5
    assert sink.indices() == list(range(20))
    assert not cap.finished
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("opened" in s and "after 5 attempts" in s for s in msgs)  # never up before: not "reconnected"
    assert not any("hunter2" in r.getMessage() for r in caplog.records)  # URLs are redacted everywhere
    assert len(msgs) <= 6  # one line per event, not per retry or frame


def test_backoff_jitter_stays_within_bounds():
    opener = Opener(*[FakeSource(NAME, fail_open=True) for _ in range(3)], FakeSource(NAME))
    sink, clock = Collector(stop_after=1), FakeClock()
    cap, _ = make_capture(cfg("rtsp://x", backoff=BackoffConfig(initial_s=1.0, max_s=10.0, jitter=0.5)), sink,
                          clock=clock, opener=opener, seed=3)
    cap.start()
    assert cap.join(5)
    assert 7.0 < clock.monotonic() <= 7.0 * 1.5 + 0.01  # 1 + 2 + 4, each up to 50 % longer
    assert clock.monotonic() != pytest.approx(7.0, abs=0.01)


def test_loss_mid_stream_reconnects_and_indices_keep_increasing(caplog):
    first = FakeSource(NAME, raise_after=5)
    second = FakeSource(NAME)
    sink, clock = Collector(stop_after=12), FakeClock()
    ups = []
    cap, m = make_capture(cfg("rtsp://x", backoff=BackoffConfig(initial_s=0.5, max_s=1, jitter=0)), sink,
                          clock=clock, opener=Opener(first, second))
    orig = sink.__call__

    def recording_sink(frame, live):
        ups.append(m.value("edgefilter_source_up", source=NAME))
        return orig(frame, live)

    cap._sink = recording_sink
    with caplog.at_level(logging.INFO, logger="edgefilter"):
        cap.start()
        assert cap.join(5)
    assert any("reconnected after 1 attempt (down 0.5 s)" in r.getMessage() for r in caplog.records)
    assert sink.indices() == list(range(12))  # 0-4 from the first connection, 5.. from the second
    assert [frame_number(f.image) for f in sink.frames] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]
    assert set(ups) == {1.0}  # up while frames arrive
    assert m.value("edgefilter_source_errors_total", source=NAME) == 1
    assert m.value("edgefilter_source_reconnects_total", source=NAME) == 1
    assert first.closed.is_set() and second.closed.is_set()
    assert m.value("edgefilter_source_up", source=NAME) == 0  # stopped


def test_stall_watchdog_abandons_a_read_that_blocks_forever(caplog):
    release = threading.Event()
    stuck = FakeSource(NAME, block_after=3, release=release)
    healthy = FakeSource(NAME)
    sink, clock = Collector(), FakeClock()
    c = cfg("rtsp://user:hunter2@cam/x", stall_s=0.3, backoff=BackoffConfig(initial_s=0.05, max_s=0.1, jitter=0))
    cap, m = make_capture(c, sink, clock=clock, opener=Opener(stuck, healthy))
    with caplog.at_level(logging.INFO, logger="edgefilter"):
        cap.start()
        try:
            # The watchdog reads the fake clock, which moves only here: a loaded machine that starves the healthy
            # reader for a while cannot look like a second stall.
            assert wait_for(lambda: sink.count() >= 3, 10)
            assert not wait_for(lambda: cap.stalls > 0, 0.2), "stalled while the clock stood still"
            assert wait_for(lambda: cap.stalls > 0 or clock.advance(0.05), 10), "stall not detected"
            detected = clock.monotonic()
            # (down only for the fake backoff, which takes no real time: too brief to poll for)
            assert wait_for(lambda: sink.count() >= 10, 10), "no frames after the reconnect"
            assert cap.up
        finally:
            cap.stop()
            assert cap.join(2)
    assert detected >= 0.3  # not before stall_s without a frame
    assert cap.stalls == 1
    assert m.value("edgefilter_source_reconnects_total", source=NAME) == 1
    assert m.value("edgefilter_source_errors_total", source=NAME) == 1
    assert sink.indices() == list(range(sink.count()))  # in order, nothing from the stuck reader
    assert not stuck.closed.is_set()  # still inside read()
    release.set()  # read() finally returns: the abandoned reader releases its capture, delivers nothing
    assert stuck.closed.wait(2) and stuck.read_after_release
    assert sink.indices() == list(range(sink.count()))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "no frame for 0.3 s" in text and "hunter2" not in text


def test_open_that_hangs_is_abandoned_too():
    release = threading.Event()
    hanging = FakeSource(NAME, block_open=True, release=release)
    sink = Collector(stop_after=3)
    c = cfg("rtsp://cam/x", stall_s=0.1, open_timeout_s=0.1,
            backoff=BackoffConfig(initial_s=0.01, max_s=0.01, jitter=0))
    cap, m = make_capture(c, sink, opener=Opener(hanging, FakeSource(NAME)))
    cap.start()
    try:
        assert cap.join(3)
    finally:
        release.set()
    assert sink.count() == 3 and cap.stalls == 1
    assert m.value("edgefilter_source_reconnects_total", source=NAME) == 1


def test_stop_interrupts_a_long_backoff():
    opener = Opener(FakeSource(NAME, fail_open=True))
    cap, m = make_capture(cfg("rtsp://x", backoff=BackoffConfig(initial_s=30, max_s=30, jitter=0)), Collector(),
                          opener=opener)
    cap.start()
    assert wait_for(lambda: m.value("edgefilter_source_errors_total", source=NAME) == 1, 3)
    t0 = time.monotonic()
    cap.stop()
    assert cap.join(10) and time.monotonic() - t0 < 10.0  # not the 30 s backoff
    assert not cap.finished  # stopped, not exhausted


def test_live_source_retries_forever_while_a_file_gives_up():
    opener = Opener(FakeSource(NAME, fail_open=True))
    sink, clock = Collector(), FakeClock()
    cap, m = make_capture(cfg("rtsp://x", backoff=BackoffConfig(initial_s=1, max_s=1, jitter=0)), sink,
                          clock=clock, opener=opener)
    cap.start()
    assert wait_for(lambda: opener.calls >= 50, 5)
    cap.stop()
    assert cap.join(2)
    assert not cap.finished and m.value("edgefilter_source_reconnects_total", source=NAME) >= 49
    file_like = Opener(FakeSource(NAME, live=False, fail_open=True))
    cap2, m2 = make_capture(cfg("x.mp4"), Collector(), clock=FakeClock(), opener=file_like)
    run_to_end(cap2)
    assert cap2.finished and file_like.calls == 1


def test_no_per_frame_log_lines(tmp_path, caplog):
    path = make_video(tmp_path / "v.avi", numbered_frames(50), fps=25)
    with caplog.at_level(logging.DEBUG, logger="edgefilter"):
        cap, _ = make_capture(cfg(path), Collector())
        run_to_end(cap)
    lines = [r.getMessage() for r in caplog.records
             if r.name.startswith("edgefilter") and r.name != "edgefilter.native"]
    assert len(lines) == 2  # opened, end
    native = [r for r in caplog.records if r.name == "edgefilter.native"]  # the decoder's stream description
    assert len(native) < 50 and all(r.levelno == logging.DEBUG for r in native)  # a per-frame warning is said once
    assert "opened" in lines[0] and "160x120" in lines[0] and "25 fps" in lines[0]
    assert "after 50 frame(s)" in lines[1]


def test_capture_threads_run_below_the_model_threads():
    import os
    import threading

    from edgefilter import capture

    seen = {}
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def probe():
        capture.lower_priority()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen["nice"] >= max(capture.CAPTURE_NICE, before) and capture.CAPTURE_NICE > 0
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # only that thread
