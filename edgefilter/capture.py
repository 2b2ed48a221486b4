"""One capture thread per source: read frames, sample, pace, hand them on, and keep the source alive.

The capture thread never calls into OpenCV itself. Each connection gets a *reader* thread that opens the
source and reads frames into a small queue; the capture thread takes them from there. That is what makes
the stall watchdog independent of OpenCV: ``VideoCapture.read()`` can block forever on a dead stream
despite its timeouts, so when a live source delivers nothing for ``stall_s`` the capture abandons that
reader (a daemon thread that releases its capture if read ever returns) and reconnects with a new one.

Healing: a live source (camera, stream, real-time demo) that fails to open, fails to read or stalls is
reconnected forever with capped exponential backoff and jitter. A file or directory that is missing or
undecodable is an error that retrying cannot fix: it is logged once and the capture finishes. A file whose
decoder process crashed, hung or sent bad frames (:mod:`edgefilter.decoder`) gets a new decoder, after the
backoff, up to ``file_retries`` times; it continues after the last frame handed on, so no frame is passed
twice. Either way one source never affects another.

Metrics (per source): ``source_up`` is 1 only while frames arrive; ``source_errors`` counts open and
read failures and stalls; ``decoder_failures`` counts failed decoder connections by reason;
``source_reconnects`` counts reconnect attempts; frames a file could not decode are dropped with reason
``corrupt``. ``frames_captured`` is the sink's to count.
"""
from __future__ import annotations

import logging
import math
import os
import queue
import random
import threading
from typing import Callable

import numpy as np

from .clock import SYSTEM_CLOCK, Clock
from .config import SourceConfig
from .decoder import DecoderError
from .errors import SourceError
from .frame import Frame
from .metrics import Metrics
from .source import Source, open_source as default_open_source, redact

log = logging.getLogger("edgefilter.capture")

Sink = Callable[[Frame, bool], "bool | None"]

_POLL_S = 0.05     # how often waits look at the stop flag and the (possibly fake) clock
_READ_AHEAD = 2    # frames a reader may decode ahead of the capture thread
_CLOSE_WAIT_S = 1.0  # how long a stop waits for a reader to leave read() and release its source
_RESYNC_S = 1.0    # a paced source this far behind schedule restarts its schedule instead of bursting
# Readers and capture threads run a little below the model's threads: when the model saturates the
# cores (CPU inference), every slice of a core that decoding takes from one of onnxruntime's threads
# stalls the others at the end of each parallel step. Nice 5 still leaves these threads about a
# quarter of a contended core (CFS weights 335 vs 1024), far more than they need.
CAPTURE_NICE = 5


def lower_priority(nice: int | None = None) -> None:
    """Raise the calling thread's nice value (default CAPTURE_NICE; Linux: per thread, no privilege
    needed). Best effort."""
    nice = CAPTURE_NICE if nice is None else nice
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
    except OSError:  # a sandbox without setpriority: run at the normal priority
        pass


class _Reader:
    """Opens one connection of a source and reads it into a queue, in its own daemon thread."""

    def __init__(self, source: Source, name: str, clock: Clock):
        self.source = source
        self.clock = clock
        self.items: queue.Queue = queue.Queue(maxsize=_READ_AHEAD)
        self.abandoned = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"read-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def abandon(self) -> None:
        """Stop reading; the source is closed as soon as the reader is out of OpenCV."""
        self.abandoned.set()

    def _run(self) -> None:
        lower_priority()
        try:
            try:
                self.source.open()
            except Exception as exc:  # noqa: BLE001 - every failure becomes a reported source error
                self._put(("open_error", _as_source_error(self.source, exc, "open")))
                return
            if not self._put(("opened", None)):
                return
            while not self.abandoned.is_set():
                try:
                    got = self.source.read()
                except Exception as exc:  # noqa: BLE001
                    self._put(("error", _as_source_error(self.source, exc, "read")))
                    return
                if got is None:
                    self._put(("end", self.source.corrupt))
                    return
                # stamped on arrival (wall, monotonic): a frame may wait in the queue, and a camera's frames are
                # sampled (max_fps) and timed by when they came
                arrived = (self.clock.time(), self.clock.monotonic())
                if not self._put(("frame", got[0], got[1], self.source.corrupt, arrived)):
                    return
        finally:
            try:
                self.source.close()
            except Exception:  # noqa: BLE001 - closing a broken capture must not kill the thread noisily
                log.debug("source %r: error while closing", self.source.name, exc_info=True)

    def _put(self, item: tuple) -> bool:
        while not self.abandoned.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _as_source_error(source: Source, exc: Exception, what: str) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    # A bug or an OpenCV surprise in one source must read as that source failing, not crash the capture.
    return SourceError(f"source {source.name!r}: {what} failed: {type(exc).__name__}: {exc}")


class _Lost(Exception):
    """The current connection is gone (the reason is the message); reconnect if the source is live."""

    def __init__(self, message: str, cause: Exception | None = None):
        super().__init__(message)
        self.cause = cause  # the source's error, when it raised one (a DecoderError carries a reason)


class Capture:
    """Keeps one source delivering frames to ``sink(frame, live)`` in its own thread.

    ``sink`` blocks for sources that are not live (the pipeline waits) and drops and counts for live ones;
    when it returns ``False`` the capture stops.
    """

    def __init__(self, cfg: SourceConfig, sink: Sink, metrics: Metrics, clock: Clock = SYSTEM_CLOCK,
                 base_dir: str = ".", open_source: Callable[..., Source] = default_open_source,
                 rng: random.Random | None = None):
        self.cfg = cfg
        self.name = cfg.name
        self._sink = sink
        self._metrics = metrics
        self._clock = clock
        self._base_dir = base_dir
        self._open_source = open_source
        self._rng = rng if rng is not None else random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{cfg.name}", daemon=True)
        self._finished = False
        self._up = False
        self.error: str | None = None   # why the capture gave up, when it did
        self.frames = 0                 # frames handed to the sink
        self.stalls = 0                 # connections abandoned by the watchdog (their reader may still be stuck)
        self._failures = 0              # failed connections in a row, for the backoff
        self._attempts = 0              # reconnect attempts since the source was lost
        self._down_since: float | None = None
        self._ever_up = False           # "reconnected" only after a first success
        self._next_index = 0            # indices stay increasing across reconnects
        self._corrupt_seen = 0
        self._sample_next: float | None = None
        self._up_since: float | None = None  # when the current connection's first frame arrived
        self._loss_logged = False       # the current outage was logged at WARNING
        self._file_retries = 0          # decoder restarts of a file source so far
        self._connection_offset = 0     # index offset of the current connection
        self._resume_offset: int | None = None  # a restarted file continues this connection's numbering

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does within a poll interval unless the sink is blocking it."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """The source is exhausted (end of a finite source) or can never work; the thread has ended or is ending."""
        return self._finished

    @property
    def up(self) -> bool:
        """Frames are arriving on the current connection."""
        return self._up

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        lower_priority()
        self._metrics.source_up.labels(source=self.name).set(0)
        try:
            while not self._stop.is_set():
                try:
                    source = self._open_source(self.cfg, base_dir=self._base_dir, clock=self._clock)
                except SourceError as exc:  # a URL that can never work
                    self._give_up(str(exc))
                    return
                except Exception as exc:  # noqa: BLE001
                    self._give_up(f"source {self.name!r}: {type(exc).__name__}: {exc}")
                    return
                try:
                    self._connection(source)
                    return  # the end of a finite source, or a stop
                except _Lost as lost:
                    self._set_up(False)
                    if isinstance(lost.cause, DecoderError):
                        self._metrics.decoder_failure(self.name, lost.cause.reason)
                    if not source.live and not self._retry_file(lost):
                        self._give_up(str(lost))
                        return
                    self._metrics.source_errors.labels(source=self.name).inc()
                    if self._stop.is_set():
                        return
                    self._end_outage_if_it_was_steady()
                    self._failures += 1
                    if not source.live:  # _retry_file said why
                        pass
                    elif self._attempts == 0:
                        self._down_since = self._clock.monotonic()
                        self._loss_logged = True
                        log.warning("%s; %s", lost, "reconnecting" if self._ever_up else "retrying")
                    elif self._attempts >= 4 and _is_power_of_two(self._attempts):  # a line per event, not per retry
                        self._loss_logged = True
                        log.warning("%s (still failing after %d reconnect attempts, %.0f s)", lost, self._attempts,
                                    self._clock.monotonic() - (self._down_since or 0.0))
                    else:
                        log.debug("%s", lost)
                    if not self._wait(self._backoff(self._failures)):
                        return
                    self._attempts += 1
                    self._metrics.source_reconnects.labels(source=self.name).inc()
        except Exception:  # noqa: BLE001 - a bug here must end this source only, loudly
            log.exception("source %r: capture failed", self.name)
            self.error = "internal error in capture (see log)"
            self._finished = True
        finally:
            self._set_up(False)

    def _connection(self, source: Source) -> None:
        """Run one connection until the source ends or the capture stops; raise _Lost when it fails."""
        reader = _Reader(source, self.name, self._clock)
        reader.start()
        live = source.live
        stalled = False
        try:
            # Opening may hang too (a camera that never answers): give it the open timeout plus the stall time.
            open_limit = self.cfg.open_timeout_s + self.cfg.stall_s
            opened = self._take(reader, open_limit if live else None)
            if opened is None:
                return
            if opened == "stall":
                stalled = True
                self.stalls += 1
                raise _Lost(f"source {self.name!r}: {source.describe()} did not open within {open_limit:g} s")
            if opened[0] == "open_error":
                raise _Lost(str(opened[1]), opened[1])
            first = True
            if self._resume_offset is None:
                offset = self._next_index
            else:  # a file's decoder restarted: same numbering, skip what was already handed on
                offset, self._resume_offset = self._resume_offset, None
            self._connection_offset = offset
            pace_t0 = pace_i0 = None
            media_t0 = media_i0 = None  # a file's own clock: capture time of its first frame + frames / fps
            self._sample_next = None
            while True:
                item = self._take(reader, self.cfg.stall_s if live else None)
                if item is None:
                    return
                if item == "stall":
                    stalled = True
                    self.stalls += 1
                    raise _Lost(f"source {self.name!r}: {source.describe()} lost "
                                f"(no frame for {self.cfg.stall_s:g} s)")
                kind = item[0]
                if kind == "error":
                    raise _Lost(str(item[1]), item[1])
                if kind == "end":
                    self._count_corrupt(item[1])
                    if not source.finite:  # a camera or stream does not end, nor does a looping file
                        raise _Lost(f"source {self.name!r}: {source.describe()} ended unexpectedly")
                    self._finish(source)
                    return
                _, src_index, image, corrupt, arrived = item
                self._count_corrupt(corrupt)
                if offset + src_index < self._next_index:
                    continue
                if first:
                    first = False
                    self._on_first_frame(source, image)
                if not self._sampled(source, src_index, arrived[1]):
                    continue
                if self.cfg.realtime and source.fps and not source.clocked:
                    if pace_t0 is None:
                        pace_t0, pace_i0 = self._clock.monotonic(), src_index
                    due = pace_t0 + (src_index - pace_i0) / source.fps
                    now = self._clock.monotonic()
                    if now - due > _RESYNC_S:  # fell far behind (a blocked pipeline): do not burst to catch up
                        pace_t0, pace_i0 = now, src_index
                    elif not self._wait(due - now):
                        return
                index = offset + src_index
                # a camera's frame was captured when it came; a file's when its pace let it go
                now_ts, t_capture = arrived if source.clocked else (self._clock.time(), self._clock.monotonic())
                media_ts = None
                if source.fps and not source.clocked:
                    if media_t0 is None:
                        media_t0, media_i0 = now_ts, src_index
                    media_ts = media_t0 + (src_index - media_i0) / source.fps
                frame = Frame(source=self.name, index=index, ts=now_ts, image=image,
                              t_capture=t_capture, media_ts=media_ts)
                self._next_index = index + 1
                self.frames += 1
                if self._sink(frame, live) is False:
                    self._stop.set()
                    return
        finally:
            reader.abandon()
            if not stalled:  # release the device now, unless the reader is stuck inside OpenCV
                reader.thread.join(_CLOSE_WAIT_S)

    # ------------------------------------------------------------------ helpers

    def _take(self, reader: _Reader, timeout: float | None):
        """The reader's next item; "stall" after ``timeout`` s (by the injected clock) without one; None on stop."""
        start = self._clock.monotonic()
        while not self._stop.is_set():
            try:
                return reader.items.get(timeout=_POLL_S)
            except queue.Empty:
                pass
            if timeout is not None and self._clock.monotonic() - start >= timeout:
                return "stall"
        return None

    def _on_first_frame(self, source: Source, image: np.ndarray) -> None:
        self._set_up(True)
        h, w = image.shape[:2]
        fps = f"{source.fps:g} fps" if source.fps else "fps unknown"
        mode = "live" if source.live else ("looping" if not source.finite else "finite")
        attempts, down_since = self._attempts, self._down_since
        # Frames flow again; whether a later failure is a new loss (fresh backoff) depends on how long they
        # flow (_on_loss): a decoder that crashes every few frames stays one outage with a growing backoff.
        self._up_since = self._clock.monotonic()
        ever_up, self._ever_up = self._ever_up, True
        if attempts and ever_up:
            down = self._clock.monotonic() - down_since if down_since is not None else 0.0
            said, self._loss_logged = self._loss_logged, False  # "reconnected" answers a logged loss only
            log.log(logging.INFO if said else logging.DEBUG,
                    "source %r: reconnected after %d attempt%s (down %.1f s): %s, %dx%d, %s",
                    self.name, attempts, "" if attempts == 1 else "s", down, source.describe(), w, h, fps)
        else:
            after = f" after {attempts} attempt{'' if attempts == 1 else 's'}" if attempts else ""
            log.info("source %r: opened %s%s: %dx%d, %s, %s", self.name, source.describe(), after, w, h, fps, mode)

    def _sampled(self, source: Source, src_index: int, arrived: float) -> bool:
        """max_fps: whether this frame is one of the samples (skipped frames are not drops); ``arrived``: the
        clock's monotonic time when it was read."""
        max_fps = self.cfg.max_fps
        if not max_fps:
            return True
        if source.fps and not source.clocked:
            # Media time: deterministic, evenly spaced (every 3rd frame of 30 fps at max_fps 10).
            if source.fps <= max_fps:
                return True
            t = src_index / source.fps
            slot = math.floor(t * max_fps + 1e-9)
            if self._sample_next is None or slot >= self._sample_next:
                self._sample_next = slot + 1
                return True
            return False
        # Arrival time: cameras and streams, whose reported fps is often wrong.
        now = arrived
        period = 1.0 / max_fps
        if self._sample_next is None or now >= self._sample_next - 0.25 * period:
            nxt = (self._sample_next if self._sample_next is not None else now) + period
            self._sample_next = nxt if nxt > now else now + period  # after a gap, do not burst
            return True
        return False

    def _count_corrupt(self, total: int) -> None:
        if total > self._corrupt_seen:
            self._metrics.drop(self.name, "corrupt", total - self._corrupt_seen)
            self._corrupt_seen = total

    def _finish(self, source: Source) -> None:
        corrupt = f", {self._corrupt_seen} corrupt frame(s) skipped" if self._corrupt_seen else ""
        log.info("source %r: end of %s after %d frame(s)%s", self.name, source.describe(), self.frames, corrupt)
        self._finished = True

    def _end_outage_if_it_was_steady(self) -> None:
        """After frames flowed for ``stall_s`` a failure is a new loss: fresh backoff, logged again. A
        connection that fails sooner (a decoder crashing every few frames) continues the outage."""
        up_since, self._up_since = self._up_since, None
        if up_since is not None and self._clock.monotonic() - up_since >= self.cfg.stall_s:
            self._failures, self._attempts, self._down_since = 0, 0, None

    def _retry_file(self, lost: _Lost) -> bool:
        """Whether a file source whose decoder failed gets another decoder (from its next frame)."""
        cause = lost.cause
        if not isinstance(cause, DecoderError) or cause.permanent or self._file_retries >= self.cfg.file_retries:
            return False
        self._file_retries += 1
        self._resume_offset = self._connection_offset
        log.warning("%s; restarting the decoder after frame %d (retry %d of %d)", lost, self._next_index,
                    self._file_retries, self.cfg.file_retries)
        return True

    def _give_up(self, message: str) -> None:
        log.error("%s; not retrying", message)
        self.error = message
        self._metrics.source_errors.labels(source=self.name).inc()
        self._finished = True

    def _set_up(self, up: bool) -> None:
        self._up = up
        self._metrics.source_up.labels(source=self.name).set(1 if up else 0)

    def _backoff(self, failures: int) -> float:
        b = self.cfg.backoff
        base = min(b.max_s, b.initial_s * (2.0 ** max(0, failures - 1)))
        return base * (1.0 + b.jitter * self._rng.random())

    def _wait(self, seconds: float) -> bool:
        """Sleep on the injected clock in short steps; False when stopped meanwhile."""
        end = self._clock.monotonic() + seconds
        while not self._stop.is_set():
            left = end - self._clock.monotonic()
            if left <= 0:
                return True
            self._clock.sleep(min(left, _POLL_S))
        return False


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


__all__ = ["Capture", "Sink", "redact"]
