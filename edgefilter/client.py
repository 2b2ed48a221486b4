"""Subscribing to an edgefilter stream: a typed client class and the ``subscribe`` command.

Subscribing from Python::

    from edgefilter.client import Subscriber
    from edgefilter.message import FrameMessage

    with Subscriber("tcp://127.0.0.1:5556") as sub:
        for msg in sub:                       # FrameMessage or DriftMessage, decoded and checked
            if isinstance(msg, FrameMessage):
                img = msg.image()             # BGR uint8 array (OpenCV)
                print(msg.source, msg.seq, msg.reason, msg.distance, img.shape)
            else:
                print(msg.source, "drift" if msg.drift else "ok", msg.p_value)
    # sub.gaps: {source: frames missing between the seq numbers received}

``recv(timeout)`` returns one message or None; ``record(out_dir)`` writes frames to disk
(``<out>/<source>/<seq:08d>_<frame_index>.jpg``, one JSON line per frame in
``<out>/manifest.jsonl`` and drift messages in ``<out>/drift.jsonl``). A CURVE-protected
stream needs the server's public key (a 40-character Z85 key or its certificate file)
and this client's secret certificate (``client_cert``) whose public part the server
lists in ``publish.curve.authorized_keys_dir``.

A server that refuses the key (or a CURVE/plaintext mismatch) fails the handshake:
ZeroMQ does not retry it, so the client logs an error once and counts it in
``handshake_failures``; create a new Subscriber after the key has been allowed.

Malformed messages are counted (``malformed``) and logged, never raised; every
received part is bounded by ``max_message_size`` and nothing is ever unpickled.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from .clock import SYSTEM_CLOCK, Clock
from .errors import EXIT_OK, EXIT_USAGE, EdgefilterError, MessageError, PublishError
from .publisher import load_secret_certificate
from .message import DriftMessage, FrameMessage, decode

log = logging.getLogger(__name__)

DEFAULT_TOPICS = ("frame/", "drift/")
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_RCVHWM = 1000
_WAIT_SLICE_S = 0.2  # longest blocking wait, so stop events and Ctrl-C are honoured promptly
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


@dataclass
class Summary:
    """What :meth:`Subscriber.record` received."""

    out_dir: str
    frames: int = 0
    drift: int = 0
    malformed: int = 0
    gaps: dict[str, int] = field(default_factory=dict)  # source -> seq numbers missing
    frames_by_source: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def missing(self) -> int:
        return sum(self.gaps.values())

    def text(self) -> str:
        per = ", ".join(f"{s}: {n}" for s, n in sorted(self.frames_by_source.items())) or "none"
        gaps = ", ".join(f"{s}: {n}" for s, n in sorted(self.gaps.items()) if n) or "none"
        return (f"{self.frames} frames ({per}), {self.drift} drift messages, {self.malformed} malformed, "
                f"missing seq: {gaps}, in {self.elapsed_s:.1f} s -> {self.out_dir}")


def _z85_key(value: str | bytes, what: str) -> bytes:
    """A 40-character Z85 key given directly or read from a certificate file."""
    if isinstance(value, str) and os.path.exists(value):
        try:
            public, _ = zmq.auth.load_certificate(value)
        except (OSError, ValueError) as e:
            raise PublishError(f"{what}: cannot read certificate {value}: {e}") from None
        return public
    key = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    if len(key) != 40:
        raise PublishError(f"{what}: {value!r} is neither a certificate file nor a 40-character Z85 key")
    return key


class Subscriber:
    """A SUB socket that yields decoded, checked v1 messages and tracks ``seq`` gaps per source."""

    def __init__(self, connect: str, topics: Sequence[str] = DEFAULT_TOPICS, *,
                 server_public_key: str | bytes | None = None, client_cert: str | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, rcvhwm: int = DEFAULT_RCVHWM,
                 context: zmq.Context | None = None, clock: Clock = SYSTEM_CLOCK,
                 on_gap: Callable[[str, int, int], None] | None = None):
        if client_cert is not None and server_public_key is None:
            raise PublishError("--client-cert needs the server's public key (--server-key)")
        self.connect = connect
        self.gaps: dict[str, int] = {}
        self.malformed = 0
        self.handshake_failures = 0
        self._monitor: zmq.Socket | None = None
        self._last_seq: dict[str, int] = {}
        self._clock = clock
        self._on_gap = on_gap or self._log_gap
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.MAXMSGSIZE, int(max_message_size))
            self._socket.setsockopt(zmq.RCVHWM, int(rcvhwm))
            if "[" in connect:
                self._socket.setsockopt(zmq.IPV6, 1)
            if server_public_key is not None:
                try:
                    self._socket.curve_serverkey = _z85_key(server_public_key, "server public key")
                except zmq.ZMQError:
                    raise PublishError(f"server public key {server_public_key!r} is not a valid Z85 key") from None
                if client_cert is None:
                    public, secret = zmq.curve_keypair()  # an unknown key: only for servers that allow any
                else:
                    public, secret = load_secret_certificate(client_cert, "client certificate")
                try:
                    self._socket.curve_publickey = public
                    self._socket.curve_secretkey = secret
                except zmq.ZMQError:
                    raise PublishError(f"client certificate {client_cert}: keys are not valid Z85") from None
            self._monitor = self._socket.get_monitor_socket(_HANDSHAKE_FAILED)
            for topic in topics:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
            try:
                self._socket.connect(connect)
            except zmq.ZMQError as e:
                raise PublishError(f"cannot connect to {connect!r}: {e.strerror}") from None
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ receiving

    def recv(self, timeout: float | None = None) -> FrameMessage | DriftMessage | None:
        """The next valid message, or None after ``timeout`` seconds (None: wait for ever).

        Malformed messages are skipped (counted in ``malformed`` and logged)."""
        deadline = None if timeout is None else self._clock.monotonic() + max(0.0, timeout)
        while True:
            wait = _WAIT_SLICE_S if deadline is None else min(_WAIT_SLICE_S, deadline - self._clock.monotonic())
            if wait < 0:
                return None
            self._check_handshakes()
            if self._socket.poll(int(wait * 1000), zmq.POLLIN):
                parts = self._socket.recv_multipart(zmq.NOBLOCK)
                try:
                    msg = decode(parts)
                except MessageError as e:
                    self.malformed += 1
                    log.warning("malformed message skipped (%d so far): %s", self.malformed, e)
                    continue
                if isinstance(msg, FrameMessage):
                    self._track(msg)
                return msg
            if deadline is not None and self._clock.monotonic() >= deadline:
                return None

    def _check_handshakes(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] & _HANDSHAKE_FAILED:
                self.handshake_failures += 1
                if self.handshake_failures == 1:
                    log.error("%s refused the connection (handshake failed: %s): check --server-key and that "
                              "the server lists this client's public key; nothing will be received",
                              self.connect, "authentication" if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                              else "protocol")

    def __iter__(self) -> Iterator[FrameMessage | DriftMessage]:
        while True:
            msg = self.recv(None)
            if msg is not None:
                yield msg

    def _track(self, msg: FrameMessage) -> None:
        last = self._last_seq.get(msg.source)
        self._last_seq[msg.source] = msg.seq
        self.gaps.setdefault(msg.source, 0)
        if last is None:
            # Joined mid-stream: frames before the first one seen are not a gap, but say so once per source.
            if msg.seq > 0:
                log.info("%s: connected after the first %d kept frame(s) (first seq received: %d); those are "
                         "not received", msg.source, msg.seq, msg.seq)
            return
        if msg.seq > last + 1:
            self.gaps[msg.source] += msg.seq - last - 1
            self._on_gap(msg.source, last + 1, msg.seq)
        elif msg.seq <= last:
            log.info("%s: seq went from %d back to %d (publisher restarted)", msg.source, last, msg.seq)

    @staticmethod
    def _log_gap(source: str, expected: int, received: int) -> None:
        log.warning("%s: %d frame(s) missing: expected seq %d, received %d (publisher dropped them for a "
                    "slow subscriber or its queue was full)", source, received - expected, expected, received)

    # ------------------------------------------------------------------ recording

    def record(self, out_dir: str | os.PathLike, *, count: int | None = None, duration: float | None = None,
               stop_event: threading.Event | None = None) -> Summary:
        """Write frames and drift messages under ``out_dir`` until ``count`` frames, ``duration``
        seconds or ``stop_event``; returns what was received. Files are appended to, line-flushed."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = Summary(out_dir=str(out))
        start = self._clock.monotonic()
        deadline = None if duration is None else start + duration
        gaps_before = dict(self.gaps)
        malformed_before = self.malformed
        with open(out / "manifest.jsonl", "a", encoding="utf-8") as manifest, \
                open(out / "drift.jsonl", "a", encoding="utf-8") as drift_log:
            while count is None or summary.frames < count:
                if stop_event is not None and stop_event.is_set():
                    break
                wait = _WAIT_SLICE_S
                if deadline is not None:
                    wait = min(wait, deadline - self._clock.monotonic())
                    if wait <= 0:
                        break
                msg = self.recv(wait)
                if msg is None:
                    continue
                received_ts = self._clock.time()
                if isinstance(msg, DriftMessage):
                    drift_log.write(json.dumps({**msg.header, "received_ts": received_ts}) + "\n")
                    drift_log.flush()
                    summary.drift += 1
                    continue
                rel = self._write_frame(out, msg)
                line = {**msg.header, "file": rel, "received_ts": received_ts}
                if msg.embedding is not None:  # sent with publish.embeddings: true; `edgefilter search` reads it
                    line["embedding_file"] = rel.rsplit(".", 1)[0] + ".npy"
                    np.save(out / line["embedding_file"], msg.embedding.astype(np.float32, copy=False))
                manifest.write(json.dumps(line) + "\n")
                manifest.flush()  # a killed subscriber keeps every line it wrote
                summary.frames += 1
                summary.frames_by_source[msg.source] = summary.frames_by_source.get(msg.source, 0) + 1
        summary.elapsed_s = self._clock.monotonic() - start
        summary.malformed = self.malformed - malformed_before
        summary.gaps = {s: n - gaps_before.get(s, 0) for s, n in self.gaps.items()}
        if summary.missing:
            log.warning("seq gaps: %s", ", ".join(f"{s}: {n} missing" for s, n in summary.gaps.items() if n))
        return summary

    @staticmethod
    def _write_frame(out: Path, msg: FrameMessage) -> str:
        # Source names are checked by decode ([A-Za-z0-9_.-]); "." and ".." must still not become paths.
        folder = msg.source if msg.source not in (".", "..") else "_" + msg.source
        (out / folder).mkdir(exist_ok=True)
        name = f"{msg.seq:08d}_{msg.frame_index}"
        path = out / folder / f"{name}.jpg"
        n = 1
        while path.exists():  # seq restarts with the publisher: never overwrite an earlier frame
            path = out / folder / f"{name}-{n}.jpg"
            n += 1
        path.write_bytes(msg.jpeg)
        return f"{folder}/{path.name}"

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        monitor = getattr(self, "_monitor", None)
        if monitor is not None:
            self._socket.disable_monitor()
            monitor.close(0)
            self._monitor = None
        sock = getattr(self, "_socket", None)
        if sock is not None:
            sock.close(0)
            self._socket = None
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cli_subscribe(connect: str, out: str, count: int | None, duration: float | None,
                  topics: Sequence[str] | None, server_key: str | None, client_cert: str | None) -> int:
    """``edgefilter subscribe``: record until count/duration/Ctrl-C/SIGTERM, print a summary, return the exit status."""
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        with Subscriber(connect, tuple(topics) if topics else DEFAULT_TOPICS, server_public_key=server_key,
                        client_cert=client_cert) as sub:
            print(f"subscribed to {connect}, writing to {out}", file=sys.stderr)
            summary = sub.record(out, count=count, duration=duration, stop_event=stop)
    except EdgefilterError as e:
        print(f"edgefilter subscribe: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"edgefilter subscribe: cannot write to {out}: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(summary.text())
    return EXIT_OK
