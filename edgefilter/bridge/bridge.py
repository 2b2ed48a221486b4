"""The fleet bridge: kept frames and drift from edgefilter daemons into MQTT and S3-compatible storage.

::

    daemon(s) --ZeroMQ--> receiver thread per daemon --> outbox (SQLite, on disk)
                                                            |
                            forwarder thread: oldest first  v
                 JPEG -> object store (deterministic key, parallel uploads)
                 header + key -> MQTT <prefix>/<site>/<source>/frame (QoS 1, in order); drift -> .../drift

A message leaves the outbox only after the store has the JPEG and the broker acknowledged the MQTT
message. While either link is down the forwarder retries with exponential backoff and the outbox
grows, up to its size and age limits (oldest dropped first, counted). MQTT messages keep their
order: a frame whose upload failed holds back the ones behind it.
"""
from __future__ import annotations

import base64
import json
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import zmq
from prometheus_client import start_http_server

from ..client import Subscriber
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import EXIT_OK, PublishError
from ..message import DriftMessage, FrameMessage
from ..notify import Notifier
from .config import BridgeConfig, read_secret
from .metrics import BridgeMetrics
from .mqtt import MqttLink
from .outbox import Entry, Outbox
from .store import ObjectStore, StoreError, object_key

log = logging.getLogger(__name__)

_RECV_SLICE_S = 0.2
_EXPIRE_EVERY_S = 1.0


class Bridge:
    """``start()`` connects everything and returns; ``stop()`` drains for up to ``drain_s`` and closes."""

    def __init__(self, cfg: BridgeConfig, *, registry=None, clock: Clock = SYSTEM_CLOCK):
        self.cfg = cfg
        self.metrics = BridgeMetrics(registry)
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()  # a message arrived
        self._link_up = threading.Event()  # the broker is back, or stop: end a retry wait early
        self._threads: list[threading.Thread] = []
        self._subscribers: list[Subscriber] = []
        self._inflight: dict[int, int] = {}  # outbox id -> MQTT message id, published and not yet acknowledged
        self._store_error: str | None = None
        self._drain_deadline = 0.0
        self._metrics_server = None
        self._context: zmq.Context | None = None
        self.outbox: Outbox | None = None
        self.mqtt: MqttLink | None = None
        self.store: ObjectStore | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        cfg = self.cfg
        # Secrets first: a missing variable or file is a config error before anything connects.
        password = read_secret(cfg.mqtt.password, "mqtt.password", cfg)
        access_key = read_secret(cfg.s3.access_key, "s3.access_key", cfg)
        secret_key = read_secret(cfg.s3.secret_key, "s3.secret_key", cfg)
        self.outbox = Outbox(cfg.outbox_path(), max_bytes=cfg.outbox.max_bytes, max_age_s=cfg.outbox.max_age_s,
                             clock=self._clock, on_drop=self._count_drop)
        waiting, size = self.outbox.depth()
        if waiting:
            log.info("outbox %s: %d messages (%.1f MB) waiting from before", self.outbox.path, waiting, size / 1e6)
        for d in cfg.daemons:
            self.metrics.init_daemon(d.name)
        if cfg.metrics.bind:
            host, _, port = cfg.metrics.bind.rpartition(":")
            try:
                self._metrics_server = start_http_server(int(port), addr=host.strip("[]"),
                                                         registry=self.metrics.registry)
            except OSError as e:
                raise PublishError(f"metrics.bind {cfg.metrics.bind}: cannot listen: {e}") from None
            log.info("metrics on http://%s/metrics", cfg.metrics.bind)
        self.store = ObjectStore(cfg, access_key, secret_key)
        self._pool = ThreadPoolExecutor(max_workers=cfg.s3.uploads, thread_name_prefix="bridge-upload")
        self.mqtt = MqttLink(cfg, password, on_state=self._mqtt_state)
        self.mqtt.start()
        self._context = zmq.Context()
        for d in cfg.daemons:
            sub = Subscriber(d.connect, server_public_key=d.server_key, client_cert=d.client_cert,
                             context=self._context, clock=self._clock,
                             on_gap=lambda source, expected, got, name=d.name: self._gap(name, source, expected, got))
            self._subscribers.append(sub)
            self._spawn(f"bridge-recv-{d.name}", self._receive, d.name, sub)
            log.info("subscribed to %s (%s)", d.name, d.connect)
        self._spawn("bridge-forward", self._forward_loop)

    def healthy(self) -> bool:
        """Every receiver and the forwarder still run (a link outage is not unhealthy: the outbox takes it)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def _spawn(self, name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop receiving, forward what the links take within ``drain_s``; the rest stays in the outbox."""
        self._drain_deadline = self._clock.monotonic() + drain_s
        self._stop.set()
        self._wake.set()
        self._link_up.set()
        for t in self._threads:
            t.join(timeout=drain_s + self.cfg.mqtt.ack_timeout_s + self.cfg.s3.timeout_s)
        for sub in self._subscribers:
            sub.close()
        if self._context is not None:
            self._context.term()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._metrics_server is not None:
            server = self._metrics_server[0] if isinstance(self._metrics_server, tuple) else self._metrics_server
            server.shutdown()
            server.server_close()
        if self.outbox is not None:
            waiting, _ = self.outbox.depth()
            if waiting:
                log.info("stopped with %d messages in the outbox; they go out at the next start", waiting)
            self.outbox.close()

    # ------------------------------------------------------------------ receiving

    def _receive(self, daemon: str, sub: Subscriber) -> None:
        malformed = 0
        while not self._stop.is_set():
            msg = sub.recv(_RECV_SLICE_S)
            if sub.malformed != malformed:
                self.metrics.malformed.labels(daemon=daemon).inc(sub.malformed - malformed)
                malformed = sub.malformed
            if msg is None:
                continue
            try:
                self._accept(daemon, msg)
            except Exception:  # an outbox failure (disk full) must be seen, and must not end the thread
                log.exception("%s: cannot queue a message from %s in the outbox", daemon, msg.source)

    def _accept(self, daemon: str, msg: FrameMessage | DriftMessage) -> None:
        header = json.dumps(msg.header, separators=(",", ":"))
        if isinstance(msg, FrameMessage):
            embedding = None
            if self.cfg.mqtt.embeddings and msg.embedding is not None:
                embedding = msg.embedding.astype("<f4").tobytes()
            self.outbox.append("frame", msg.source, header, key=object_key(self.cfg.site, msg.header),
                               jpeg=msg.jpeg, embedding=embedding)
            kind = "frame"
        else:
            self.outbox.append("drift", msg.source, header)
            kind = "drift"
        self.metrics.received.labels(daemon=daemon, kind=kind).inc()
        self._wake.set()

    def _gap(self, daemon: str, source: str, expected: int, received: int) -> None:
        self.metrics.seq_gaps.labels(daemon=daemon).inc(received - expected)
        log.warning("%s/%s: %d kept frame(s) never reached the bridge: expected seq %d, received %d (the daemon "
                    "dropped them for a slow subscriber)", daemon, source, received - expected, expected, received)

    def _count_drop(self, reason: str, n: int) -> None:
        self.metrics.dropped.labels(reason=reason).inc(n)
        log.warning("outbox: dropped %d oldest message(s) (%s; limits: %d bytes, %.0f s)", n, reason,
                    self.cfg.outbox.max_bytes, self.cfg.outbox.max_age_s)

    # ------------------------------------------------------------------ forwarding

    def _forward_loop(self) -> None:
        retry = self.cfg.retry
        backoff = retry.initial_s
        next_expire = 0.0
        try:
            while True:
                now = self._clock.monotonic()
                if now >= next_expire:
                    self.outbox.expire()
                    next_expire = now + _EXPIRE_EVERY_S
                self._update_gauges()
                batch = self.outbox.head(self.cfg.outbox.batch)
                if self._stop.is_set() and (not batch or now >= self._drain_deadline):
                    return
                if not batch:
                    self._wake.wait(_EXPIRE_EVERY_S)
                    self._wake.clear()
                    continue
                done, progressed = self._forward(batch)
                if done:
                    backoff = retry.initial_s
                    continue
                if progressed:
                    continue  # e.g. uploads go on while the broker is away: no reason to wait
                if not self._stop.is_set():
                    self._link_up.wait(backoff)  # the broker coming back (or a stop) cuts the wait short
                    self._link_up.clear()
                else:
                    self._clock.sleep(min(backoff, max(0.0, self._drain_deadline - self._clock.monotonic())))
                backoff = min(retry.max_s, max(backoff * 2, 0.05))
        except Exception:  # a bug here must not silently stop forwarding
            log.exception("bridge forwarder failed")

    def _forward(self, batch: list[Entry]) -> tuple[bool, bool]:
        """One round over the oldest messages: (all of them went out, something moved)."""
        # Uploads run ahead of the head: while the broker is away the store still gets every JPEG, so the
        # flush after the outage is MQTT alone.
        pending = self.outbox.unstored(self.cfg.outbox.batch)
        uploaded, store_ok = self._upload(pending) if pending else (set(), True)
        ready: list[Entry] = []
        for e in batch:  # MQTT keeps the outbox order: stop at the first frame the store does not have yet
            if e.kind == "frame" and not (e.stored or e.id in uploaded):
                break
            ready.append(e)
        if not ready:
            return False, bool(uploaded)
        if not self.mqtt.up:
            self.metrics.retries.labels(link="mqtt").inc()
            return False, bool(uploaded)
        # the batch was read before the upload: the limits may have dropped some of it since
        claimed = self.outbox.claim([e.id for e in ready])
        ready = [e for e in ready if e.id in claimed]
        mids: dict[int, Entry] = {}
        for e in ready:
            mid = self._inflight.get(e.id)
            if mid is None:  # not yet with paho; one that is will be resent by paho after a reconnect
                mid = self.mqtt.publish(f"{self.cfg.mqtt.prefix}/{self.cfg.site}/{e.source}/{e.kind}",
                                        self._payload(e))
                self._inflight[e.id] = mid
            mids[mid] = e
        acked = self.mqtt.wait_acked(list(mids), self.cfg.mqtt.ack_timeout_s)
        done = [mids[m] for m in acked]
        for e in done:
            del self._inflight[e.id]
            self.metrics.forwarded.labels(kind=e.kind).inc()
        self.outbox.remove([e.id for e in done])
        if len(acked) < len(mids):
            self.metrics.retries.labels(link="mqtt").inc()
            return False, bool(uploaded or done)
        return store_ok and len(ready) == len(batch), True

    def _upload(self, frames: list[Entry]) -> tuple[set[int], bool]:
        try:
            self.store.ensure_bucket()
            results = list(self._pool.map(self._put, frames))
        except StoreError as e:
            results = [str(e)] * len(frames)
        ok = [f for f, err in zip(frames, results) if err is None]
        self.outbox.mark_stored([f.id for f in ok])
        for f in ok:
            self.metrics.stored.inc()
            self.metrics.stored_bytes.inc(len(f.jpeg or b""))
        errors = [err for err in results if err is not None]
        if errors:
            self.metrics.retries.labels(link="s3").inc()
            self._store_state(False, errors[0])
        else:
            self._store_state(True)
        return {f.id for f in ok}, not errors

    def _put(self, e: Entry) -> str | None:
        try:
            self.store.put_frame(e.key, e.jpeg or b"", json.loads(e.header))
            return None
        except StoreError as err:
            return str(err)

    def _store_state(self, up: bool, error: str | None = None) -> None:
        self.metrics.link_up.labels(link="s3").set(int(up))
        if up:
            if self._store_error is not None:
                log.info("object store %s reachable again", self.store.where)
            self._store_error = None
        elif error != self._store_error:  # one line per outage (or per new reason), not per retry
            log.warning("object store: %s; frames wait in the outbox", error)
            self._store_error = error

    def _mqtt_state(self, up: bool) -> None:
        self.metrics.link_up.labels(link="mqtt").set(int(up))
        if up:
            self._wake.set()
            self._link_up.set()

    def _payload(self, e: Entry) -> bytes:
        body = json.loads(e.header)
        body["site"] = self.cfg.site
        if e.kind == "frame":
            body["key"] = e.key
            body["bucket"] = self.cfg.s3.bucket
            if e.embedding is not None:
                body["embedding"] = base64.b64encode(e.embedding).decode("ascii")
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def _update_gauges(self) -> None:
        messages, size = self.outbox.depth()
        self.metrics.outbox_messages.set(messages)
        self.metrics.outbox_bytes.set(size)
        self.metrics.outbox_age.set(self.outbox.oldest_age())


def cli_bridge(config_path: str, log_level: str | None, setup_logging) -> int:
    """``edgefilter bridge -c FILE``: run until SIGTERM or Ctrl-C."""
    from .config import load_bridge_config
    cfg = load_bridge_config(config_path)
    setup_logging(log_level or cfg.log_level)
    from ..logs import enable_stack_dumps
    enable_stack_dumps()  # the watchdog's SIGABRT then shows every thread's Python stack in the journal
    # Even at debug, not boto's request dumps: signed headers and key ids have no place in a journal.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger(noisy).getEffectiveLevel()))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    bridge = Bridge(cfg)
    notifier = Notifier()
    try:
        bridge.start()
        notifier.ready(f"forwarding {len(cfg.daemons)} daemon(s) to {bridge.mqtt.where} and {bridge.store.where}")
        interval = notifier.watchdog_interval()
        while not stop.wait(interval or 1.0):
            if interval and bridge.healthy():
                notifier.watchdog()
        notifier.stopping()
    finally:
        bridge.stop()
        notifier.close()
    return EXIT_OK
