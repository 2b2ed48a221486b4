"""The bridge's Prometheus metrics, on their own registry and endpoint (``metrics.bind``, default :9109).

Label values come from configured daemon names and fixed sets only. The table in docs/fleet.md is
generated (``python -m edgefilter.bridge.metrics``).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..metrics import reference_markdown as _reference_markdown
from ..metrics import sample_value

KINDS = ("frame", "drift")
LINKS = ("mqtt", "s3")
# Why a message never reached the broker: the outbox's size or age limit. Nothing else drops a message:
# every failure of the broker or the store is retried.
DROP_REASONS = ("full", "expired")


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter("edgefilter_bridge_received", "Messages received from daemons",
                                ["daemon", "kind"], registry=r)
        self.seq_gaps = Counter("edgefilter_bridge_seq_gaps", "Kept frames missing from a daemon's stream (seq gaps)",
                                ["daemon"], registry=r)
        self.malformed = Counter("edgefilter_bridge_malformed", "Messages from daemons that were not valid v1",
                                 ["daemon"], registry=r)
        self.forwarded = Counter("edgefilter_bridge_forwarded", "Messages the broker acknowledged (QoS 1)",
                                 ["kind"], registry=r)
        self.stored = Counter("edgefilter_bridge_objects_stored", "JPEGs written to object storage", registry=r)
        self.stored_bytes = Counter("edgefilter_bridge_stored_bytes", "Bytes of JPEG written to object storage",
                                    registry=r)
        self.retries = Counter("edgefilter_bridge_retries", "Forwarding rounds that failed or found a link down, to be retried, by link",
                               ["link"], registry=r)
        self.dropped = Counter("edgefilter_bridge_dropped", "Messages dropped without being forwarded, by reason",
                               ["reason"], registry=r)
        self.outbox_messages = Gauge("edgefilter_bridge_outbox_messages", "Messages waiting in the outbox",
                                     registry=r)
        self.outbox_bytes = Gauge("edgefilter_bridge_outbox_bytes", "Bytes waiting in the outbox", registry=r)
        self.outbox_age = Gauge("edgefilter_bridge_outbox_oldest_age_seconds",
                                "How long the oldest message in the outbox has waited", registry=r)
        self.link_up = Gauge("edgefilter_bridge_link_up", "1 while the broker or store answers, else 0", ["link"],
                             registry=r)
        for kind in KINDS:
            self.forwarded.labels(kind=kind)
        for link in LINKS:
            self.retries.labels(link=link)
            self.link_up.labels(link=link).set(0)
        for reason in DROP_REASONS:
            self.dropped.labels(reason=reason)

    def init_daemon(self, daemon: str) -> None:
        for kind in KINDS:
            self.received.labels(daemon=daemon, kind=kind)
        self.seq_gaps.labels(daemon=daemon)
        self.malformed.labels(daemon=daemon)

    def value(self, name: str, **labels: str) -> float:
        return sample_value(self.registry, name, labels)


def reference_markdown() -> str:
    return _reference_markdown(BridgeMetrics())


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown())
