"""Prometheus metrics of every stage, on an injected registry.

All label values come from configured source names or small fixed sets
(:data:`DROP_REASONS`, :data:`KEEP_REASONS`, :data:`DECODER_FAILURE_REASONS`), so label cardinality stays
bounded whatever the input. Tests create ``Metrics(CollectorRegistry())`` and read values
with :meth:`Metrics.value`.
"""
from __future__ import annotations

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Info, PlatformCollector, ProcessCollector,
                               disable_created_metrics)

# The *_created series double the output and no dashboard or alert reads them. Process-wide setting.
disable_created_metrics()

# Why a frame never reached the filter. Fixed set: label values never come from input.
DROP_REASONS = ("backpressure", "dark", "bright", "blurred", "frozen", "corrupt", "error", "shutdown")
KEEP_REASONS = ("first", "novel", "heartbeat")
# Why a source's decoder connection failed (edgefilter.decoder): a missing file, one no decoder can read,
# frames over max_pixels, a decoder killed by a signal, one that exited non-zero mid-stream, one silent
# for stall_s, one whose output did not match the frame size it announced.
DECODER_FAILURE_REASONS = ("missing", "unreadable", "too_large", "crash", "exit", "hang", "frame_size")

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DISTANCE_BUCKETS = (0.01, 0.02, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_EMBED_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric edgefilter exports. One instance per daemon, on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("edgefilter_build", "Version and model of the running daemon", registry=r)
        # capture
        self.frames_captured = Counter("edgefilter_frames_captured", "Frames read from a source",
                                       ["source"], registry=r)
        self.frames_dropped = Counter("edgefilter_frames_dropped", "Frames dropped before the filter, by reason",
                                      ["source", "reason"], registry=r)
        self.source_up = Gauge("edgefilter_source_up", "1 while a source delivers frames, else 0",
                               ["source"], registry=r)
        self.source_reconnects = Counter("edgefilter_source_reconnects", "Reconnect attempts after a source was lost",
                                         ["source"], registry=r)
        self.source_errors = Counter("edgefilter_source_errors", "Open or read failures of a source",
                                     ["source"], registry=r)
        self.decoder_failures = Counter("edgefilter_decoder_failures", "Decoder connections of a source that "
                                        "failed, by reason", ["source", "reason"], registry=r)
        # embed
        self.frames_gated = Counter("edgefilter_frames_gated", "Frames that skipped the model as certainly unchanged",
                                    ["source"], registry=r)
        self.frames_embedded = Counter("edgefilter_frames_embedded", "Frames run through the model",
                                       ["source"], registry=r)
        self.embed_batch_size = Histogram("edgefilter_embed_batch_size", "Frames per model call",
                                          buckets=_BATCH_BUCKETS, registry=r)
        self.embed_seconds = Histogram("edgefilter_embed_seconds", "Seconds per model call",
                                       buckets=_EMBED_BUCKETS, registry=r)
        self.queue_depth = Gauge("edgefilter_queue_depth", "Items waiting between stages", ["stage"], registry=r)
        # filter
        self.frames_kept = Counter("edgefilter_frames_kept", "Frames kept by the novelty filter",
                                   ["source"], registry=r)
        self.frames_kept_by_reason = Counter("edgefilter_frames_kept_by_reason", "Kept frames by reason",
                                             ["source", "reason"], registry=r)
        self.frames_kept_regional = Counter(
            "edgefilter_frames_kept_regional", "Kept frames that only a region made novel (filter.regional)",
            ["source"], registry=r)
        self.index_size = Gauge("edgefilter_index_size", "Kept frames in the rolling index", ["source"], registry=r)
        self.threshold = Gauge("edgefilter_filter_threshold", "Current novelty threshold (adapts under a budget)",
                               ["source"], registry=r)
        self.nn_distance = Histogram("edgefilter_nn_distance", "Cosine distance to the nearest kept frame",
                                     ["source"], buckets=_DISTANCE_BUCKETS, registry=r)
        # publish
        self.frames_published = Counter("edgefilter_frames_published", "Kept frames handed to ZeroMQ",
                                        ["source"], registry=r)
        self.publish_dropped = Counter("edgefilter_publish_dropped", "Messages dropped because subscribers were slow",
                                       ["kind"], registry=r)
        self.subscribers = Gauge("edgefilter_subscribers", "Connected subscriptions", registry=r)
        self.frame_latency = Histogram("edgefilter_frame_latency_seconds", "Capture to publish, kept frames",
                                       ["source"], buckets=_LATENCY_BUCKETS, registry=r)
        # drift
        self.drift_p_value = Gauge("edgefilter_drift_p_value", "MMD permutation p-value of the last window",
                                   ["source"], registry=r)
        self.drift_mmd2 = Gauge("edgefilter_drift_mmd2", "Squared MMD of the last window to the reference",
                                ["source"], registry=r)
        self.drift_ks_min_p = Gauge("edgefilter_drift_ks_min_p", "Smallest corrected KS p-value over components",
                                    ["source"], registry=r)
        self.drift_centroid_shift = Gauge("edgefilter_drift_centroid_shift", "Cosine distance between centroids",
                                          ["source"], registry=r)
        self.drift_nn_distance = Gauge("edgefilter_drift_nn_distance", "Mean NN distance from window to reference",
                                       ["source"], registry=r)
        self.drift_keep_ratio = Gauge("edgefilter_drift_keep_ratio", "Share of the window's frames kept (0-1)",
                                      ["source"], registry=r)
        self.drift_flag = Gauge("edgefilter_drift", "1 when the last window drifted at drift.alpha", ["source"],
                                registry=r)
        self.drift_updates = Counter("edgefilter_drift_updates", "Drift statistics computed", ["source"], registry=r)
        # keep rules (rules: section)
        self.rule_frames = Counter("edgefilter_rule_frames", "Frames a keep or drop rule decided, by rule and action "
                                   "(kept: kept though not novel; dropped: a novelty keep removed)",
                                   ["source", "rule", "action"], registry=r)
        # daemon
        self.state_saves = Counter("edgefilter_state_saves", "Index snapshots written", registry=r)
        self.reloads = Counter("edgefilter_config_reloads", "Config reloads by result", ["result"], registry=r)
        self.ready = Gauge("edgefilter_ready", "1 once publishing and metrics are up", registry=r)
        self.last_progress = Gauge("edgefilter_last_progress_timestamp_seconds",
                                   "Unix time the pipeline last finished a frame", registry=r)

    def add_runtime_collectors(self) -> None:
        """The standard process_* (memory, CPU, open files) and python_info series, for the daemon's endpoint."""
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def init_source(self, source: str) -> None:
        """Create every per-source series at 0 so dashboards see them before the first event."""
        for m in (self.frames_captured, self.frames_kept, self.frames_gated, self.frames_embedded,
                  self.source_reconnects, self.source_errors, self.frames_published):
            m.labels(source=source)
        for reason in DROP_REASONS:
            self.frames_dropped.labels(source=source, reason=reason)
        for reason in KEEP_REASONS:
            self.frames_kept_by_reason.labels(source=source, reason=reason)
        for reason in DECODER_FAILURE_REASONS:
            self.decoder_failures.labels(source=source, reason=reason)
        self.source_up.labels(source=source).set(0)
        self.index_size.labels(source=source).set(0)

    def drop(self, source: str, reason: str, n: int = 1) -> None:
        if reason not in DROP_REASONS:  # guard the label set; a typo must not create series
            raise ValueError(f"unknown drop reason {reason!r}")
        self.frames_dropped.labels(source=source, reason=reason).inc(n)

    def decoder_failure(self, source: str, reason: str) -> None:
        if reason not in DECODER_FAILURE_REASONS:
            raise ValueError(f"unknown decoder failure reason {reason!r}")
        self.decoder_failures.labels(source=source, reason=reason).inc()

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and the bench); 0.0 when it does not exist."""
        return sample_value(self.registry, name, labels)


def sample_value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    """A sample's current value in a registry; 0.0 when it does not exist."""
    v = registry.get_sample_value(name, labels or None)
    return 0.0 if v is None else v


def reference_markdown(metrics: object | None = None) -> str:
    """The metrics list as a Markdown table (kept in the README; a test checks it is current). ``metrics``:
    another set's instance (the bridge's, in docs/fleet.md)."""
    m = metrics if metrics is not None else Metrics()
    rows = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    collectors = [v for v in vars(m).values() if hasattr(v, "describe")]  # in definition order
    for collector in collectors:
        labelnames = getattr(collector, "_labelnames", ())
        for family in collector.describe():
            name = family.name + ("_total" if family.type == "counter" else "")
            name = name + "_info" if family.type == "info" else name
            labels = ", ".join(labelnames) or "-"
            rows.append(f"| `{name}` | {family.type} | {labels} | {family.documentation} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown())
