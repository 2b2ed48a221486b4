"""Wires the stages together and runs them: the daemon behind ``edgefilter run``.

Threads and queues (one way, every queue bounded)::

    Capture (one thread per source: read, gates, pre-gate, preprocess)
        -> embed queue -> batch thread (micro-batches across sources, stacked one batch ahead)
        -> ready queue -> embed thread (one ONNX session)
        -> filter queue -> filter thread (novelty decisions in order, drift observations, state saves)
        -> Publisher thread (JPEG encoding, ZeroMQ)            drift thread -> Publisher

Live sources drop frames when the embed queue is full (counted as ``backpressure``);
files and image directories wait, so a file is read as fast as the pipeline takes it.
An end marker flows through the queues when every finite source is exhausted or on
shutdown, so each stage finishes what it holds before the next one stops.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
from prometheus_client import CollectorRegistry

from . import __version__
from .capture import Capture
from .clock import SYSTEM_CLOCK, Clock
from .config import Config, SourceFilterConfig, load_config, resolve_path
from .drift import DriftMonitor
from .endpoint import Endpoint
from .errors import EXIT_NOINPUT, ConfigError, EdgefilterError, PublishError
from .frame import Frame
from .gates import ChangeGate, QualityGate, corrupt, grey_image, grey_thumbnail
from .health import SourceWatch, StatusLine
from .metrics import Metrics
from .model import Embedder
from .notify import Notifier
from .novelty import NoveltyFilter
from .novelty.view import view_thumbnail
from .preprocess import preprocess, stack, working_copy
from .publisher import Publisher
from .clip import ClipPair, PromptMatcher
from .labels import vocabulary_for
from .outlier import OutlierScorer
from .reference import load_reference
from .rules import KeepRules

log = logging.getLogger("edgefilter.daemon")

_END = object()  # flows through the queues after the last frame


@dataclasses.dataclass
class _SourceGates:
    quality: QualityGate
    change: ChangeGate


class Daemon:
    """One running edgefilter. ``run()`` blocks until the sources end or ``stop()`` is called."""

    def __init__(self, cfg: Config, *, config_path: str | None = None, registry: CollectorRegistry | None = None,
                 clock: Clock = SYSTEM_CLOCK, notifier: Notifier | None = None,
                 embedder_factory: Callable[..., Embedder] | None = None,
                 capture_factory: Callable[..., Capture] = Capture):
        self.cfg = cfg
        self.config_path = config_path
        self.clock = clock
        self.metrics = Metrics(registry)
        self.notifier = notifier if notifier is not None else Notifier()
        self._embedder_factory = embedder_factory or Embedder.from_config
        self._capture_factory = capture_factory
        self.names = [s.name for s in cfg.sources]
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._embed_q: queue.Queue = queue.Queue(maxsize=cfg.embed.queue_size)
        # One batch gathered and stacked while the model runs the previous one: the embed thread then goes
        # from one model call to the next without waiting on the capture threads for the GIL.
        self._ready_q: queue.Queue = queue.Queue(maxsize=1)
        self._filter_q: queue.Queue = queue.Queue(maxsize=4)  # batches; the filter is far faster than the model
        self._gates = {s.name: _SourceGates(QualityGate(cfg.gates), ChangeGate(cfg.gates))
                       for s in cfg.sources}
        self._last_embedding: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._frame_errors: dict[str, tuple[float | None, int]] = {}  # per source: last report, errors since
        self._threads: list[threading.Thread] = []
        self._captures: list[Capture] = []
        self._processed = 0
        self._kept = 0
        self._last_progress = clock.monotonic()
        self._last_save = clock.monotonic()
        self._endpoint: Endpoint | None = None
        self._sources_watch = SourceWatch(self.metrics, clock)
        self._status_line = StatusLine(self.metrics, self.names, clock)
        self.publisher: Publisher | None = None
        self.embedder: Embedder | None = None
        self.novelty: NoveltyFilter | None = None
        self.drift: DriftMonitor | None = None
        self.rules: KeepRules | None = None
        self.outlier: OutlierScorer | None = None
        self.prompts: PromptMatcher | None = None
        self._last_tags: dict[str, dict] = {}  # per source: the last embedded frame's probabilities, prompt scores
        self.state_dir = self._state_dir(cfg)
        self.exit_code = 0
        for name in self.names:
            self.metrics.init_source(name)

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Start everything, block until done, shut down cleanly. Returns the exit status."""
        self._install_signals()
        try:
            self._start()
            self._main_loop()
        finally:
            self._shutdown()
        return self.exit_code

    def stop(self) -> None:
        """Ask the daemon to finish (what SIGTERM does)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the daemon to re-read its config (what SIGHUP does)."""
        self._reload.set()

    def _start(self) -> None:
        cfg = self.cfg
        self.metrics.build_info.info({"version": __version__})
        # Bind first, so subscribers already waiting connect while the model loads; the publisher holds the
        # first messages until one has subscribed (at most its startup grace), so it receives the first keep.
        self.publisher = Publisher(cfg.publish, self.metrics, model_id="", clock=self.clock, base_dir=cfg.base_dir)
        self.publisher.start()
        log.info("publishing on %s", self.publisher.bound_endpoint)
        if cfg.metrics.bind:
            self.metrics.add_runtime_collectors()
            self._endpoint = Endpoint(cfg.metrics.bind, self.metrics.registry, self.health_problems,
                                      lambda: self.metrics.value("edgefilter_ready") == 1)
            self._endpoint.start()
            log.info("metrics on http://%s/metrics (and /healthz, /readyz)", cfg.metrics.bind)
        self.embedder = self._embedder_factory(cfg, cache_dir=str(self._engine_cache_dir()))
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()  # GPU only: no first-batch latency spike per batch size
        self.publisher.model_id = self.embedder.model_id
        self.metrics.build_info.info({"version": __version__, "model": self.embedder.model_id,
                                      "provider": self.embedder.provider})
        regional = [s.name for s in cfg.sources if cfg.filter_for(s.name).regional]
        if regional and not self.embedder.has_regions:
            log.warning("filter.regional is on (for %s) but the model %s has no region output: the whole image "
                        "alone decides (a small thing in a wide view may be missed). Use a model whose card has "
                        "one (models/efficientnet_lite0_regions.onnx), or set filter.regional: false to say so",
                        ", ".join(regional), self.embedder.model_id)
            regional = []
        self.novelty = NoveltyFilter(cfg.filter, self.embedder.dim, self.names, clock=self.clock,
                                     region_count=self.embedder.region_count if regional else 0,
                                     region_dim=self.embedder.region_dim if regional else None,
                                     source_filters=cfg.source_filters())
        if self.state_dir is not None:
            self._restore_state()
        if cfg.drift.enabled:
            reference = None
            if cfg.drift.reference:
                reference = load_reference(resolve_path(cfg, cfg.drift.reference), self.embedder.model_id)
                self.outlier = OutlierScorer(reference.vectors)
            self.drift = DriftMonitor(cfg.drift, self.names, self.embedder.model_id, self.embedder.dim,
                                      reference, clock=self.clock)
        class_names = getattr(self.embedder, "class_names", ())
        self.rules = KeepRules(cfg.rules, vocabulary_for(class_names) if class_names else None,
                               self.embedder.model_id)
        if cfg.rules.keep_prompts:
            assert cfg.rules.clip_card is not None  # the config check requires it
            pair = ClipPair(resolve_path(cfg, cfg.rules.clip_card), providers=cfg.model.providers,
                            threads=cfg.model.threads)
            self.prompts = PromptMatcher(pair)
            self.prompts.set_prompts(cfg.rules.keep_prompts)  # once here, again on reload; never per frame
        for target, name in ((self._batch_loop, "batch"), (self._embed_loop, "embed"), (self._filter_loop, "filter"),
                             (self._drift_loop, "drift")):
            t = threading.Thread(target=self._guard(target), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        for src in cfg.sources:
            cap = self._capture_factory(src, self._sink, self.metrics, clock=self.clock, base_dir=cfg.base_dir)
            cap.start()
            self._captures.append(cap)
        self.metrics.ready.set(1)
        self.notifier.ready(status=f"{len(self._captures)} sources, model on {self.embedder.provider}")
        log.info("ready: %d source(s), model %s on %s", len(self._captures), self.embedder.model_id,
                 self.embedder.provider)

    def _main_loop(self) -> None:
        interval = self.notifier.watchdog_interval() or 1.0
        progress = _Progress(self) if _show_progress(self.cfg) else None
        next_pet = 0.0
        while not self._stop.wait(0.2):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            if self._captures and all(c.finished for c in self._captures):
                failed = [c.name for c in self._captures if c.error]
                if failed:  # a file that is missing or that no decoder could read is not a clean finish
                    log.error("all sources finished; %d failed (%s); exiting with status %d after draining",
                              len(failed), ", ".join(failed), EXIT_NOINPUT)
                    self.exit_code = EXIT_NOINPUT
                else:
                    log.info("all sources finished; draining")
                break
            # The drift thread ends as soon as a stop is asked for, which can fall between the wait above
            # and this look: a thread that ended after the stop is the shutdown, not a death.
            if any(not t.is_alive() for t in self._threads) and not self._stop.is_set():
                log.error("a pipeline thread died; shutting down")
                self.exit_code = 1
                break
            now = self.clock.monotonic()
            if now >= next_pet:
                next_pet = now + interval
                if self._healthy(now, interval):
                    self.notifier.watchdog()
            self._sources_watch.update(self._captures)
            if self.cfg.log.status_interval_s is not None:
                self._status_line.maybe_log(self.cfg.log.status_interval_s, self._captures)
            if progress:
                progress.update()
        if progress:
            progress.close()

    def _healthy(self, now: float, interval: float) -> bool:
        """Progress, for the service watchdog: no stage holds work it has not touched for too long."""
        return not self._stage_problems(now, interval)

    def _stage_problems(self, now: float, interval: float) -> list[str]:
        problems = [f"pipeline thread {t.name} has died" for t in self._threads if not t.is_alive()]
        waiting = self._embed_q.qsize() + self._ready_q.qsize() + self._filter_q.qsize()
        idle = now - self._last_progress
        if waiting > 0 and idle > max(2 * interval, 5.0):
            problems.append(f"{waiting} frame(s) waiting but no frame finished for {idle:.0f} s")
        return problems

    def health_problems(self) -> list[str]:
        """Why the daemon is unhealthy (/healthz): stages stuck or dead, live sources down beyond their
        reconnect budget. Empty when healthy."""
        if self.metrics.value("edgefilter_ready") != 1:
            return ["not ready: starting or stopping"]
        interval = self.notifier.watchdog_interval() or 1.0
        return self._stage_problems(self.clock.monotonic(), interval) + self._sources_watch.problems(self._captures)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        self._stop.set()  # capture sinks stop waiting; the drift thread ends
        deadline = self.clock.monotonic() + self.cfg.shutdown_timeout_s
        for cap in self._captures:
            cap.stop()
        for cap in self._captures:
            cap.join(timeout=max(0.1, deadline - self.clock.monotonic()))
        if self._threads:
            self._put_end(deadline)
            for t in self._threads:
                t.join(timeout=max(0.1, deadline - self.clock.monotonic()))
            leftover = self._discard_queued()
            if leftover:
                log.warning("shutdown deadline reached: %d frames dropped unprocessed", leftover)
        if self.novelty is not None and self.state_dir is not None:
            self._save_state()
        if self.publisher is not None:
            self.publisher.stop(max(0.5, deadline - self.clock.monotonic()))
        if self._endpoint is not None:
            self._endpoint.stop()
        self.metrics.ready.set(0)
        log.info("stopped: %d frames processed, %d kept", self._processed, self._kept)

    def _put_end(self, deadline: float) -> None:
        while True:
            try:
                self._embed_q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.clock.monotonic() > deadline:
                    self._discard_queued()

    def _discard_queued(self) -> int:
        n = 0
        for q in (self._embed_q, self._ready_q, self._filter_q):
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple):  # (batch, todo, stacked input) from the ready queue
                    item = item[0]
                frames = item if isinstance(item, list) else [item]
                for f in frames:
                    if isinstance(f, Frame):
                        self.metrics.drop(f.source, "shutdown")
                        n += 1
        return n

    # ------------------------------------------------------------------ capture side

    def _sink(self, frame: Frame, live: bool) -> bool:
        """Called by a capture thread for every frame: gates, preprocessing, hand-off to the model."""
        name = frame.source
        self.metrics.frames_captured.labels(source=name).inc()
        gates = self._gates[name]
        if corrupt(frame.image):  # before any pixel is read: a camera's odd frame ends nothing
            self.metrics.drop(name, "corrupt")
            return not self._stop.is_set()
        try:
            reason = self._prepare(frame, gates)
        except Exception:  # noqa: BLE001 - one frame that breaks a stage must not end its camera
            self.metrics.drop(name, "error")
            self._frame_error(name)
            return not self._stop.is_set()
        if reason is not None:
            self.metrics.drop(name, reason)
            return not self._stop.is_set()
        if live:
            try:
                self._embed_q.put_nowait(frame)
            except queue.Full:
                self.metrics.drop(name, "backpressure")
            return not self._stop.is_set()
        while not self._stop.is_set():
            try:
                self._embed_q.put(frame, timeout=0.1)
                return True
            except queue.Full:
                continue
        self.metrics.drop(name, "shutdown")
        return False

    def _prepare(self, frame: Frame, gates: _SourceGates) -> str | None:
        """Thumbnails, quality gates, pre-gate and model input of one frame; the drop reason, if any."""
        work = working_copy(frame.image)  # a 1080p frame halved: a third of the per-frame work
        grey = grey_image(work)
        thumb = grey_thumbnail(grey)
        frame.view = view_thumbnail(work, grey)  # for best views and the pre-gate
        reason = gates.quality.check(frame.image, thumb, work)
        if reason is not None:
            return reason
        if gates.change.should_skip(thumb, frame.view):
            frame.gated = True
            self.metrics.frames_gated.labels(source=frame.source).inc()
        else:
            assert self.embedder is not None
            frame.tensor = preprocess(work, self.embedder.input_size, self.embedder.colour)
        return None

    def _frame_error(self, source: str) -> None:
        """Log a frame that broke a stage: with its traceback once a minute per source, the rest counted."""
        now = self.clock.monotonic()
        last, skipped = self._frame_errors.get(source, (None, 0))
        if last is not None and now - last < 60.0:
            self._frame_errors[source] = (last, skipped + 1)
            return
        self._frame_errors[source] = (now, 0)
        more = f" ({skipped} more since the last report)" if skipped else ""
        log.exception("source %r: a frame broke the capture stage and was dropped%s; the source goes on "
                      "(edgefilter_frames_dropped_total{reason=\"error\"})", source, more)

    # ------------------------------------------------------------------ embed stage

    def _gather(self) -> tuple[list[Frame], bool]:
        """A micro-batch: the first waiting frame, then more until max_batch or max_wait_ms."""
        first = self._embed_q.get()
        if first is _END:
            return [], True
        batch = [first]
        max_batch = self.cfg.embed.max_batch
        deadline = self.clock.monotonic() + self.cfg.embed.max_wait_ms / 1000.0
        while len(batch) < max_batch:
            remaining = deadline - self.clock.monotonic()
            try:
                item = self._embed_q.get(timeout=remaining) if remaining > 0 else self._embed_q.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                return batch, True
            batch.append(item)
        return batch, False

    def _batch_loop(self) -> None:
        """Gather micro-batches and stack the model input, one batch ahead of the model."""
        while True:
            batch, ended = self._gather()
            if batch:
                todo = [f for f in batch if not f.gated]
                self._ready_q.put((batch, todo, stack([f.tensor for f in todo]) if todo else None))
            self.metrics.queue_depth.labels(stage="embed").set(self._embed_q.qsize())
            if ended:
                self._ready_q.put(_END)
                return

    def _embed_loop(self) -> None:
        assert self.embedder is not None
        while True:
            item = self._ready_q.get()
            if item is _END:
                self._filter_q.put(_END)
                return
            self._embed_batch(*item)
            self._filter_q.put(item[0])

    def _embed_batch(self, batch: list[Frame], todo: list[Frame], stacked: np.ndarray | None) -> None:
        """``todo``: the frames of ``batch`` the pre-gate let through; ``stacked``: their model input."""
        assert self.embedder is not None
        if stacked is not None:
            t0 = self.clock.monotonic()
            result = self.embedder.embed(stacked)
            self.metrics.embed_seconds.observe(self.clock.monotonic() - t0)
            self.metrics.embed_batch_size.observe(len(todo))
            prompt_scores = self.prompts.scores(stacked) if self.prompts is not None else None
            probabilities = getattr(result, "probabilities", None)  # embedders without a classes output lack it
            for i, f in enumerate(todo):
                f.embedding = result.vectors[i]
                f.regions = result.regions[i] if result.regions is not None else None
                f.meta["probabilities"] = probabilities[i] if probabilities is not None else None
                f.meta["prompt_scores"] = prompt_scores[i] if prompt_scores is not None else None
                f.tensor = None
                self.metrics.frames_embedded.labels(source=f.source).inc()
        # Frames the pre-gate skipped reuse their source's last embedding, in stream order.
        for f in batch:
            if f.gated:
                f.embedding, f.regions = self._last_embedding[f.source]
                f.meta.update(self._last_tags.get(f.source, {}))
            else:
                self._last_embedding[f.source] = (f.embedding, f.regions)
                self._last_tags[f.source] = {k: f.meta.get(k) for k in ("probabilities", "prompt_scores")}

    # ------------------------------------------------------------------ filter stage

    def _filter_loop(self) -> None:
        assert self.novelty is not None and self.publisher is not None
        while True:
            batch = self._filter_q.get()
            if batch is _END:
                self._flush_held()
                return
            self._filter_batch(batch)

    def _filter_batch(self, batch: list[Frame]) -> None:
        assert self.novelty is not None
        decisions = self.novelty.decide([(f.source, f.scene_ts, f.embedding, f.regions, f, f.view) for f in batch])
        for f, d in zip(batch, decisions):
            if d.distance is not None:
                self.metrics.nn_distance.labels(source=f.source).observe(d.distance)
            if self.drift is not None:
                self.drift.observe(f.source, f.embedding, d.keep)
            if not d.held:
                d = self._apply_rules(f, d)
            if d.keep:
                self._publish_kept(f, d)
            elif not d.held:
                f.image = None  # free the pixels now; only kept frames are encoded
        # Event mode: frames held as candidates are decided later, possibly in this very call.
        self._settle_held(self.novelty.released())
        self._processed += len(batch)
        for name in {f.source for f in batch}:
            self.metrics.index_size.labels(source=name).set(self.novelty.index_size(name))
            self.metrics.threshold.labels(source=name).set(self.novelty.threshold(name))
        now = self.clock.monotonic()
        self._last_progress = now
        self.metrics.last_progress.set(self.clock.time())
        if self.state_dir is not None and now - self._last_save >= self.cfg.state.save_interval_s:
            self._save_state()

    def _apply_rules(self, frame: Frame, d: Any) -> Any:
        """The keep/drop rules on a novelty decision (edgefilter/rules.py); the rule that changed it, if any,
        goes into the frame's header and the rule metrics."""
        if self.rules is None:
            return d
        verdict = self.rules.decide(frame.source, frame.ts, d.keep, d.reason, frame.meta.get("probabilities"),
                                    frame.meta.get("prompt_scores"))
        if verdict.rule is None:
            return d
        frame.meta["rule"] = verdict.rule
        self.metrics.rule_frames.labels(source=frame.source, rule=verdict.rule,
                                        action="kept" if verdict.keep else "dropped").inc()
        return dataclasses.replace(d, keep=verdict.keep, reason=verdict.reason)

    def _publish_kept(self, frame: Frame, d: Any) -> None:
        assert self.publisher is not None
        self._kept += 1
        self.metrics.frames_kept.labels(source=frame.source).inc()
        self.metrics.frames_kept_by_reason.labels(source=frame.source, reason=d.reason).inc()
        if d.region is not None:
            self.metrics.frames_kept_regional.labels(source=frame.source).inc()
        self.publisher.publish_frame(frame, d.distance, d.reason, d.threshold, region=d.region,
                                     region_score=d.region_score, extra=self._header_tags(frame))

    def _header_tags(self, frame: Frame) -> dict:
        """Header keys beyond the novelty filter's: labels, the rule that kept it, the outlier score."""
        tags: dict = {}
        probabilities = frame.meta.get("probabilities")
        if probabilities is not None and self.rules is not None and self.rules.vocabulary is not None:
            tags["labels"] = self.rules.vocabulary.top(probabilities)
        prompts = self.rules.matched_prompts(frame.meta.get("prompt_scores")) if self.rules is not None else []
        if prompts:
            tags["prompts"] = prompts
        if "rule" in frame.meta:
            tags["rule"] = frame.meta["rule"]
        if self.outlier is not None and frame.embedding is not None:
            tags["outlier"] = self.outlier.score(frame.embedding)
        return tags

    def _settle_held(self, keeps: list) -> None:
        assert self.novelty is not None
        for frame, d in keeps:
            d = self._apply_rules(frame, d)
            if d.keep:
                self._publish_kept(frame, d)
            else:
                frame.image = None
        for frame in self.novelty.discarded():
            frame.image = None

    def _flush_held(self) -> None:
        """Decide every open event candidate: at the end of the input nothing kept may be lost."""
        if self.novelty is not None:
            self._settle_held(self.novelty.flush())

    # ------------------------------------------------------------------ drift stage

    def _drift_loop(self) -> None:
        if self.drift is None:
            self._stop.wait()
            return
        assert self.publisher is not None
        while not self._stop.wait(min(1.0, self.cfg.drift.interval_s / 4)):
            for report in self.drift.poll():
                header = report.header()
                self.publisher.publish_drift(header)
                self._drift_gauges(header)

    def _drift_gauges(self, h: dict) -> None:
        m, s = self.metrics, h["source"]
        for gauge, key in ((m.drift_p_value, "p_value"), (m.drift_mmd2, "mmd2"), (m.drift_ks_min_p, "ks_min_p"),
                           (m.drift_centroid_shift, "centroid_shift"), (m.drift_nn_distance, "nn_distance"),
                           (m.drift_keep_ratio, "keep_rate")):
            if h.get(key) is not None:
                gauge.labels(source=s).set(float(h[key]))
        m.drift_flag.labels(source=s).set(1.0 if h.get("drift") else 0.0)
        m.drift_updates.labels(source=s).inc()

    # ------------------------------------------------------------------ state and reload

    @staticmethod
    def _state_dir(cfg: Config) -> Path | None:
        if cfg.state.dir:
            return resolve_path(cfg, cfg.state.dir)
        env = os.environ.get("STATE_DIRECTORY")
        return Path(env.split(":")[0]) if env else None

    def _engine_cache_dir(self) -> Path:
        """Where TensorRT keeps built engines (minutes to build): systemd's CacheDirectory, else the
        state directory, else the user's cache. Created only when TensorRT is used."""
        env = os.environ.get("CACHE_DIRECTORY")
        if env:
            return Path(env.split(":")[0]) / "trt"
        if self.state_dir is not None:
            return self.state_dir / "trt-cache"
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgefilter" / "trt"

    def _restore_state(self) -> None:
        assert self.novelty is not None and self.embedder is not None and self.state_dir is not None
        try:
            if self.novelty.load(self.state_dir, self.embedder.model_id):
                sizes = ", ".join(f"{n}={self.novelty.index_size(n)}" for n in self.names)
                log.info("restored rolling index from %s (%s)", self.state_dir, sizes)
        except EdgefilterError as exc:
            log.error("cannot restore state, starting empty: %s", exc)

    def _save_state(self) -> None:
        assert self.novelty is not None and self.embedder is not None and self.state_dir is not None
        self._last_save = self.clock.monotonic()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.novelty.save(self.state_dir, self.embedder.model_id)
            self.metrics.state_saves.inc()
        except (OSError, EdgefilterError) as exc:
            log.error("cannot save state to %s: %s", self.state_dir, exc)

    def reload(self) -> bool:
        """Re-read the config file; apply filter, gates, drift, embed and publish settings. Keep on error."""
        if not self.config_path:
            log.warning("reload requested but the daemon was not started from a file")
            return False
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
            same_names = [s.name for s in new.sources] == self.names
            if not same_names or _without_filters(new.sources) != _without_filters(self.cfg.sources):
                log.warning("reload: source changes need a restart; they are not applied (per-source filter "
                            "settings are)")
            if new.model != self.cfg.model:
                log.warning("reload: model changes need a restart; they are not applied")
            if (new.embed.max_batch, new.embed.queue_size) != (self.cfg.embed.max_batch, self.cfg.embed.queue_size):
                # The session (a TensorRT profile) and the queue were sized for the old values.
                log.warning("reload: embed.max_batch and embed.queue_size changes need a restart; not applied")
            if new.publish.bind != self.cfg.publish.bind or new.publish.curve != self.cfg.publish.curve:
                log.warning("reload: publish.bind and publish.curve changes need a restart; not applied")
            assert self.novelty is not None and self.publisher is not None
            if new.rules.clip_card != self.cfg.rules.clip_card:
                log.warning("reload: rules.clip_card changes need a restart; not applied")
            if new.rules.keep_prompts and self.prompts is None:
                raise ConfigError("rules.keep_prompts: prompts added to a daemon started without them need a "
                                  "restart (the CLIP pair is loaded at start)")
            if self.prompts is not None and new.rules.keep_prompts != self.cfg.rules.keep_prompts:
                self.prompts.set_prompts(new.rules.keep_prompts)  # embedded once per reload
            if self.rules is not None:
                self.rules.reconfigure(new.rules)  # before the filter: it may refuse the new rules
            sources = ([dataclasses.replace(old, filter=mine.filter) for old, mine in zip(self.cfg.sources, new.sources)]
                       if same_names else self.cfg.sources)
            self.novelty.reconfigure(new.filter, dataclasses.replace(self.cfg, filter=new.filter,
                                                                     sources=sources).source_filters())
            self.publisher.reconfigure(dataclasses.replace(new.publish, bind=self.cfg.publish.bind,
                                                           curve=self.cfg.publish.curve))
            for name, g in self._gates.items():
                g.quality.reconfigure(new.gates)
                g.change.reconfigure(new.gates)
            if self.drift is not None:
                self.drift.reconfigure(new.drift)
            self.cfg = dataclasses.replace(self.cfg, sources=sources, filter=new.filter, gates=new.gates, drift=new.drift,
                                           rules=new.rules,
                                           embed=dataclasses.replace(new.embed, queue_size=self.cfg.embed.queue_size,
                                                                     max_batch=self.cfg.embed.max_batch),
                                           publish=dataclasses.replace(new.publish, bind=self.cfg.publish.bind,
                                                                       curve=self.cfg.publish.curve),
                                           log=new.log, shutdown_timeout_s=new.shutdown_timeout_s)
            logging.getLogger("edgefilter").setLevel(new.log.level.upper())
        except (EdgefilterError, ValueError) as exc:
            self.metrics.reloads.labels(result="error").inc()
            log.error("reload failed, keeping the running config:\n%s", exc)
            self.notifier.ready(status="reload failed; running config kept")
            return False
        self.metrics.reloads.labels(result="ok").inc()
        log.info("reloaded config from %s", self.config_path)
        self.notifier.ready(status="reloaded")
        return True

    # ------------------------------------------------------------------ plumbing

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("pipeline stage %s failed", threading.current_thread().name)
                self.exit_code = 1
                self._stop.set()
        return run


def _without_filters(sources: list) -> list:
    """Sources as far as a restart is concerned (their filter settings reload)."""
    return [dataclasses.replace(s, filter=SourceFilterConfig()) for s in sources]


def _show_progress(cfg: Config) -> bool:
    """A progress line only for a person at a terminal, never under a service manager."""
    under_service = "INVOCATION_ID" in os.environ or "NOTIFY_SOCKET" in os.environ
    return sys.stderr.isatty() and not under_service and not any(s.realtime for s in cfg.sources)


class _Progress:
    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.t0 = daemon.clock.monotonic()
        self.last = 0.0

    def update(self) -> None:
        now = self.daemon.clock.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        d = self.daemon
        rate = d._processed / max(1e-9, now - self.t0)
        sys.stderr.write(f"\r{d._processed} frames processed, {d._kept} kept, {rate:.0f} frames/s ")
        sys.stderr.flush()

    def close(self) -> None:
        self.update()
        sys.stderr.write("\n")
