"""Publishing kept frames and drift statistics over ZeroMQ, without ever blocking the pipeline.

The pipeline calls :meth:`Publisher.publish_frame` and :meth:`Publisher.publish_drift`,
which only append to a bounded in-memory queue (a full queue drops its oldest item and
counts it). One publisher thread owns the ZeroMQ socket (sockets are not thread-safe):
it JPEG-encodes frames off the hot path and sends with ``NOBLOCK`` on an XPUB socket in
no-drop mode (``XPUB_NODROP``), so a subscriber at its high-water mark (``publish.hwm``)
makes the send fail with ``zmq.Again`` instead of a silent drop. Such a message is
counted in ``edgefilter_publish_dropped_total{kind}``. ``seq`` is taken per source when
a frame is queued, in call order, so every dropped frame leaves a gap subscribers see.
Trade-off of no-drop mode: libzmq refuses the whole message when *any* matching
subscriber is full, so a stuck subscriber also costs the others those messages; keep
``hwm`` generous.

The same thread reads subscription messages (``XPUB_VERBOSER``: every subscribe and
unsubscribe, including the ones libzmq generates when a subscriber disconnects) and
keeps ``edgefilter_subscribers`` at the number of live topic subscriptions (a client
subscribed to ``frame/`` and ``drift/`` counts 2).

Slow joiners: a subscriber started before the daemon connects only at its next reconnect
attempt (ZeroMQ retries every 100 to 200 ms) plus a handshake, and PUB/SUB drops what is
sent before its subscription arrives. So after the bind the thread holds what is queued
until someone has subscribed and no new subscription has come for ``SUBSCRIBERS_SETTLE_S``
(every subscriber that was waiting, a bridge and a recorder say, gets the first keep, not
only the quickest), or until ``startup_grace_s`` has passed. After that nothing is ever held.

Security: a bind that is not local (``tcp://127.x``, ``tcp://localhost``,
``tcp://[::1]``, ``ipc://``, ``inproc://`` are local) needs CURVE - a server
certificate with its secret key (``publish.curve.secret_key_file``, as written by
``zmq.auth.create_certificates``) and a directory of allowed client public
certificates (``publish.curve.authorized_keys_dir``) - unless
``publish.allow_plaintext`` is set, which is logged as a warning. CURVE also works
on a local bind when the keys are configured.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from .clock import SYSTEM_CLOCK, Clock
from .config import PublishConfig
from .errors import MessageError, PublishError
from .frame import Frame
from .message import encode_drift, encode_frame

if TYPE_CHECKING:  # pragma: no cover - subscribers (edgefilter.client) import this module without prometheus_client
    from .metrics import Metrics

log = logging.getLogger(__name__)

# Room for ~10 s of kept frames at a high keep rate: the queue only fills when the
# publisher thread falls behind (JPEG encoding), not when subscribers are slow.
DEFAULT_QUEUE_SIZE = 1024
_POLL_S = 0.05  # longest idle wait before the thread looks at subscriptions again
DEFAULT_STARTUP_GRACE_S = 2.0  # a waiting subscriber reconnects every 0.1-0.2 s: ten tries, under load too
# Subscribers waiting at the bind arrive within one reconnect interval (at most 0.2 s) of each other; the rest
# is room for a handshake on a loaded machine.
SUBSCRIBERS_SETTLE_S = 0.5


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints only this machine can reach: loopback TCP, ipc://, inproc://."""
    ep = endpoint.strip().lower()
    if ep.startswith(("ipc://", "inproc://")):
        return True
    if not ep.startswith("tcp://"):
        return False
    host = ep[len("tcp://"):]
    if ";" in host:  # "source;dest" form names a local interface to connect from: not a bind host
        return False
    if host.startswith("["):
        return host.startswith("[::1]:")
    host = host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    octets = host.split(".")
    return len(octets) == 4 and octets[0] == "127" and all(o.isdigit() and int(o) < 256 for o in octets)


@dataclass
class _FrameItem:
    frame: Frame
    distance: float | None
    reason: str
    threshold: float | None
    seq: int = -1
    region: int | None = None
    region_score: float | None = None
    extra: dict | None = None  # more header keys (labels, rule, outlier)


class Publisher:
    """Owns the ZeroMQ socket and its thread. ``start()`` binds; ``stop()`` drains and closes."""

    def __init__(self, cfg: PublishConfig, metrics: Metrics, model_id: str, context: zmq.Context | None = None,
                 clock: Clock = SYSTEM_CLOCK, queue_size: int = DEFAULT_QUEUE_SIZE,
                 base_dir: str | os.PathLike = ".", startup_grace_s: float = DEFAULT_STARTUP_GRACE_S):
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self._cfg = cfg
        self._metrics = metrics
        # Public: the daemon binds before the model is loaded and sets the id once it knows it.
        self.model_id = model_id
        self._own_context = context is None
        self._context = context
        self._clock = clock
        self._base_dir = Path(base_dir)  # relative key paths resolve against the config's folder
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._queue_size = queue_size
        self._startup_grace_s = max(0.0, startup_grace_s)
        self._released = threading.Event()  # set when the startup hold has ended (or the thread has)
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline: float | None = None
        self._busy = 0  # items taken off the queue but not yet sent or dropped
        self._new_hwm: int | None = None
        self._seq: dict[str, int] = {}
        self._subscriptions = 0
        self._socket: zmq.Socket | None = None
        self._auth: ThreadAuthenticator | None = None
        self._thread: threading.Thread | None = None
        self.bound_endpoint: str | None = None
        self.curve = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Bind (PublishError on bad keys, insecure bind or bind failure) and start the thread."""
        if self._thread is not None:
            raise RuntimeError("Publisher already started")
        cfg = self._cfg
        keys = self._load_keys(cfg)
        if self._context is None:
            self._context = zmq.Context()
        sock = self._context.socket(zmq.XPUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, cfg.hwm)
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            sock.setsockopt(zmq.XPUB_VERBOSER, 1)  # every (un)subscribe reaches us: the gauge stays exact
            if "[" in cfg.bind:
                sock.setsockopt(zmq.IPV6, 1)
            if keys is not None:
                public, secret, authorized_dir = keys
                self._auth = ThreadAuthenticator(self._context, log=logging.getLogger("edgefilter.publisher.auth"))
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(authorized_dir))
                sock.curve_server = True
                sock.curve_publickey = public
                sock.curve_secretkey = secret
            try:
                sock.bind(cfg.bind)
            except zmq.ZMQError as e:
                raise PublishError(f"publish.bind: cannot bind {cfg.bind!r}: {e.strerror}") from None
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            sock.close(0)
            self._close_auth_and_context()
            raise
        self.curve = keys is not None
        self._socket = sock
        self._metrics.subscribers.set(0)
        self._thread = threading.Thread(target=self._run, name="edgefilter-publisher", daemon=True)
        self._thread.start()
        log.info("publishing on %s (%s)", self.bound_endpoint,
                 "CURVE encrypted and authenticated" if self.curve else "plaintext")

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Send what is queued within ``drain_timeout`` seconds, then close (linger bounded by the rest)."""
        if self._thread is None:
            self._close_auth_and_context()
            return
        with self._cond:
            self._stopping = True
            self._deadline = self._clock.monotonic() + max(0.0, drain_timeout)
            self._cond.notify_all()
        # The thread itself honours the deadline; the join bound only guards against a hang.
        self._thread.join(timeout=max(0.0, drain_timeout) + 5.0)
        if self._thread.is_alive():
            log.error("publisher thread did not stop within %.1f s", drain_timeout + 5.0)
            return  # never close a socket another thread may still use
        self._thread = None
        self._close_auth_and_context()

    def wait_released(self, timeout: float | None = None) -> bool:
        """Wait until the startup hold for waiting subscribers has ended (True; False: ``timeout`` passed first):
        from then on what is queued leaves at once. A latency measurement starts its frames after this."""
        return self._released.wait(timeout)

    def pending(self) -> int:
        """Items queued or being sent."""
        with self._cond:
            return len(self._queue) + self._busy

    # ------------------------------------------------------------------ the pipeline's side (never blocks)

    def publish_frame(self, frame: Frame, distance: float | None, reason: str, threshold: float | None,
                      region: int | None = None, region_score: float | None = None,
                      extra: dict | None = None) -> None:
        """Queue a kept frame; JPEG encoding and sending happen on the publisher thread. ``extra``: more
        header keys, never replacing the ones above."""
        self._enqueue("frame", _FrameItem(frame, distance, reason, threshold, region=region,
                                          region_score=region_score, extra=extra))

    def publish_drift(self, header: dict) -> bool:
        """Queue drift statistics; False when the header is not valid v1 (logged as an error and
        counted as a dropped drift message: one bad statistic must not stop the drift thread)."""
        try:
            encode_drift(header)  # cheap, and names the bad key where the header was made
        except MessageError as e:
            log.error("drift message not published: %s", e)
            self._metrics.publish_dropped.labels(kind="drift").inc()
            return False
        self._enqueue("drift", dict(header))
        return True

    def _enqueue(self, kind: str, item: Any) -> None:
        with self._cond:
            if kind == "frame":
                # seq is taken in call order, so every later drop (full queue, slow subscriber,
                # encoding failure) leaves a gap exactly where the frame would have been.
                item.seq = self._next_seq(item.frame.source)
            if self._stopping:
                self._metrics.publish_dropped.labels(kind=kind).inc()
                return
            if len(self._queue) >= self._queue_size:
                old_kind, old_item = self._queue.popleft()
                self._drop_item(old_kind, old_item)
            self._queue.append((kind, item))
            self._cond.notify()

    def _drop_item(self, kind: str, item: Any) -> None:
        """Count a message that will never be sent (its seq is already taken, so the gap shows)."""
        self._metrics.publish_dropped.labels(kind=kind).inc()

    def _next_seq(self, source: str) -> int:  # caller holds self._cond
        seq = self._seq.get(source, 0)
        self._seq[source] = seq + 1
        return seq

    # ------------------------------------------------------------------ reload

    def reconfigure(self, cfg: PublishConfig) -> list[str]:
        """Apply a reloaded config: jpeg_quality, embeddings and hwm live; authorized keys are re-read.

        A changed ``bind``, ``allow_plaintext`` or server key is not applied (it needs a new socket,
        which would drop every subscriber); the returned notes say what needs a restart.
        """
        notes = []
        old = self._cfg
        if cfg.bind != old.bind:
            notes.append(f"publish.bind changed from {old.bind!r} to {cfg.bind!r}: restart to apply")
        if cfg.allow_plaintext != old.allow_plaintext:
            notes.append("publish.allow_plaintext changed: restart to apply")
        if cfg.curve.secret_key_file != old.curve.secret_key_file:
            notes.append("publish.curve.secret_key_file changed: restart to apply")
        if (cfg.curve.authorized_keys_dir != old.curve.authorized_keys_dir) and self._auth is None:
            notes.append("publish.curve.authorized_keys_dir changed: restart to apply")
        live = replace(cfg, bind=old.bind, allow_plaintext=old.allow_plaintext,
                       curve=replace(cfg.curve, secret_key_file=old.curve.secret_key_file))
        if self._auth is not None:
            keys_dir = live.curve.authorized_keys_dir
            if keys_dir is None:
                notes.append("publish.curve.authorized_keys_dir removed: restart to apply")
                live = replace(live, curve=old.curve)
            else:
                path = self._check_authorized_dir(keys_dir)  # PublishError: keep the running config
                self._auth.configure_curve(domain="*", location=str(path))
        with self._cond:
            if live.hwm != old.hwm:
                self._new_hwm = live.hwm  # setsockopt must happen on the socket's own thread
            self._cfg = live
            self._cond.notify()
        for note in notes:
            log.warning(note)
        return notes

    # ------------------------------------------------------------------ keys

    def _resolve(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self._base_dir / p

    def _check_authorized_dir(self, value: str) -> Path:
        path = self._resolve(value)
        if not path.is_dir():
            raise PublishError(f"publish.curve.authorized_keys_dir: {path} is not a directory")
        count = 0
        for cert in sorted(path.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(cert)
                _check_z85(public)
            except (OSError, ValueError) as e:
                raise PublishError(f"publish.curve.authorized_keys_dir: bad public key certificate {cert}: {e}") \
                    from None
            count += 1
        if count == 0:
            log.warning("publish.curve.authorized_keys_dir %s holds no *.key certificate: no client can connect",
                        path)
        return path

    def _load_keys(self, cfg: PublishConfig) -> tuple[bytes, bytes, Path] | None:
        """Server keys and the authorized directory, or None for plaintext; PublishError when unsafe or bad."""
        secret_file, keys_dir = cfg.curve.secret_key_file, cfg.curve.authorized_keys_dir
        if secret_file is None and keys_dir is None:
            if is_local_endpoint(cfg.bind):
                return None
            if not cfg.allow_plaintext:
                raise PublishError(
                    f"publish.bind {cfg.bind!r} is not a loopback address: set publish.curve.secret_key_file and "
                    f"publish.curve.authorized_keys_dir for CURVE encryption and authentication, or set "
                    f"publish.allow_plaintext: true to accept an unencrypted, unauthenticated stream")
            log.warning("publish.bind %s is not loopback and publish.allow_plaintext is set: the frame stream is "
                        "UNENCRYPTED and UNAUTHENTICATED; anyone who can reach it can read it", cfg.bind)
            return None
        if secret_file is None or keys_dir is None:
            missing = "secret_key_file" if secret_file is None else "authorized_keys_dir"
            raise PublishError(f"publish.curve.{missing} is not set: CURVE needs both "
                               f"publish.curve.secret_key_file and publish.curve.authorized_keys_dir")
        if not zmq.has("curve"):
            raise PublishError("publish.curve is configured but this libzmq was built without CURVE")
        public, secret = load_secret_certificate(self._resolve(secret_file), "publish.curve.secret_key_file")
        return public, secret, self._check_authorized_dir(keys_dir)

    def _close_auth_and_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    # ------------------------------------------------------------------ the publisher thread

    def _run(self) -> None:
        sock = self._socket
        assert sock is not None
        try:
            self._await_waiting_subscribers(sock)
            self._released.set()
            while True:
                with self._cond:
                    if not self._queue and not self._stopping:
                        self._cond.wait(_POLL_S)
                    if self._new_hwm is not None:
                        sock.setsockopt(zmq.SNDHWM, self._new_hwm)
                        self._new_hwm = None
                    batch = list(self._queue)
                    self._queue.clear()
                    self._busy = len(batch)
                    stopping, deadline = self._stopping, self._deadline
                self._read_subscriptions(sock)
                for i, (kind, item) in enumerate(batch):
                    if stopping and self._clock.monotonic() >= deadline:
                        self._drop_item(kind, item)
                    else:
                        self._send(sock, kind, item, deadline if stopping else None)
                    with self._cond:
                        self._busy = len(batch) - i - 1
                if stopping:
                    with self._cond:
                        if not self._queue:
                            break
                    if self._clock.monotonic() >= deadline:
                        with self._cond:
                            rest = list(self._queue)
                            self._queue.clear()
                        for kind, item in rest:
                            self._drop_item(kind, item)
                        break
        except Exception:  # a bug here must not silently stop publishing without a trace
            log.exception("publisher thread failed")
        finally:
            linger_s = 0.0
            if self._deadline is not None:
                linger_s = max(0.0, self._deadline - self._clock.monotonic())
            sock.setsockopt(zmq.LINGER, int(linger_s * 1000))
            sock.close()
            self._socket = None
            self._metrics.subscribers.set(0)
            self._released.set()  # nobody waits on a thread that has ended

    def _await_waiting_subscribers(self, sock: zmq.Socket) -> None:
        """Hold the queue (bounded by the grace, the queue size and ``stop``) until someone has subscribed and no
        one new has for ``SUBSCRIBERS_SETTLE_S``."""
        until = self._clock.monotonic() + self._startup_grace_s
        last_new: float | None = None
        while (now := self._clock.monotonic()) < until:
            with self._cond:
                if self._stopping:
                    return
            if self._read_subscriptions(sock):
                last_new = now
            if last_new is not None and self._subscriptions > 0 and now - last_new >= SUBSCRIBERS_SETTLE_S:
                return
            self._clock.sleep(0.005)

    def _read_subscriptions(self, sock: zmq.Socket) -> int:
        """Read the subscription messages waiting; return how many were new subscriptions."""
        new = 0
        changed = False
        while True:
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg[:1] == b"\x01":
                self._subscriptions += 1
                new += 1
                changed = True
            elif msg[:1] == b"\x00":
                self._subscriptions = max(0, self._subscriptions - 1)
                changed = True
        if changed:
            self._metrics.subscribers.set(self._subscriptions)
        return new

    def _send(self, sock: zmq.Socket, kind: str, item: Any, deadline: float | None) -> None:
        if kind == "frame":
            try:
                parts = self._encode_frame(item)
            except Exception as e:  # cv2.error, a frame without pixels...: never lose the thread to one frame
                log.error("frame from %s not published: %s: %s", item.frame.source, type(e).__name__, e)
                self._metrics.publish_dropped.labels(kind="frame").inc()
                return
        else:
            try:
                parts = encode_drift(item)
            except MessageError as e:  # checked at enqueue; only a header mutated since then lands here
                log.error("drift message from %s not published: %s", item.get("source"), e)
                self._metrics.publish_dropped.labels(kind="drift").inc()
                return
        while True:
            try:
                sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                break
            except zmq.Again:
                # A subscriber is at its high-water mark. Live: drop now (never wait).
                # Draining at shutdown: retry until the deadline.
                if deadline is None or self._clock.monotonic() >= deadline:
                    self._metrics.publish_dropped.labels(kind=kind).inc()
                    return
                self._read_subscriptions(sock)
                self._clock.sleep(0.002)
        if kind == "frame":
            source = item.frame.source
            self._metrics.frames_published.labels(source=source).inc()
            self._metrics.frame_latency.labels(source=source).observe(
                max(0.0, self._clock.monotonic() - item.frame.t_capture))

    def _encode_frame(self, item: _FrameItem) -> list[bytes]:
        import cv2

        cfg = self._cfg
        frame = item.frame
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)])
        if not ok:
            raise ValueError(f"cv2.imencode failed on a {frame.image.shape} image")
        embedding = frame.embedding if cfg.embeddings else None
        distance = item.distance
        if distance is not None and not math.isfinite(distance):
            distance = None
        threshold = item.threshold
        if threshold is not None and not math.isfinite(threshold):
            threshold = None
        header = {
            "v": 1, "source": frame.source, "seq": item.seq, "frame_index": int(frame.index), "ts": float(frame.ts),
            "distance": None if distance is None else float(distance), "reason": item.reason,
            "width": int(frame.image.shape[1]), "height": int(frame.image.shape[0]), "encoding": "jpeg",
            "model": self.model_id, "embedding_dim": None if embedding is None else int(embedding.size),
            "threshold": None if threshold is None else float(threshold),
            "region": None if item.region is None else int(item.region),
            "region_score": (None if item.region_score is None or not math.isfinite(item.region_score)
                             else round(float(item.region_score), 3)),
        }
        for key, value in (item.extra or {}).items():
            header.setdefault(key, value)
        return encode_frame(header, jpeg.tobytes(), embedding)


def load_secret_certificate(path: str | os.PathLike, what: str) -> tuple[bytes, bytes]:
    """(public, secret) keys from a zmq.auth certificate that must hold the secret key; PublishError
    naming ``what`` and the file otherwise. Shared by the publisher and the client."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise PublishError(f"{what}: cannot read certificate {path}: {e}") from None
    if secret is None:
        raise PublishError(f"{what}: {path} holds no secret-key "
                           f"(use the .key_secret file from zmq.auth.create_certificates)")
    try:
        _check_z85(public)
        _check_z85(secret)
    except ValueError as e:
        raise PublishError(f"{what}: {path}: {e}") from None
    return public, secret


def _check_z85(key: bytes) -> None:
    if len(key) != 40:
        raise ValueError(f"a CURVE key is 40 Z85 characters, found {len(key)}")
    try:
        z85.decode(key)
    except (ValueError, KeyError, TypeError):
        raise ValueError("the CURVE key is not valid Z85") from None
