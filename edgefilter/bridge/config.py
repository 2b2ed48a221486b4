"""The bridge's configuration (``bridge.yaml``): the same strict, line-numbered checks as the daemon's.

Secrets never appear in the file itself: a :class:`SecretConfig` names an environment variable or a
file, and :func:`read_secret` reads it at start-up into a :class:`Secret` whose repr hides the value.
The reference table in docs/fleet.md is generated (``python -m edgefilter.bridge.config``).
"""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import _Checker, _child, _NAME_CHARS, check_host_port, opt, parse_checked, read_config_text
from ..config import reference_markdown as _reference_markdown
from ..errors import ConfigError, ConfigProblem

DEFAULT_OUTBOX = "outbox.sqlite"


@dataclass(frozen=True)
class SecretConfig:
    env: str | None = opt(None, "environment variable holding the value")
    file: str | None = opt(None, "file holding the value (trailing newline ignored); wins over `env` when both "
                                 "are set")


@dataclass(frozen=True)
class DaemonConfig:
    name: str = opt("", "unique name of this daemon in logs and metrics ([A-Za-z0-9_.-], max 64)")
    connect: str = opt("", "the daemon's ZeroMQ publish endpoint, e.g. tcp://10.0.0.5:5556")
    server_key: str | None = opt(None, "CURVE: the daemon's public key (certificate file or 40-character Z85 key)")
    client_cert: str | None = opt(None, "CURVE: this bridge's secret certificate, listed by the daemon's "
                                        "publish.curve.authorized_keys_dir")


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = opt(False, "connect with TLS")
    ca_file: str | None = opt(None, "CA certificate(s) that signed the broker's certificate (null: system CAs)")
    cert_file: str | None = opt(None, "client certificate, for brokers that require one")
    key_file: str | None = opt(None, "client certificate's key")


@dataclass(frozen=True)
class MqttConfig:
    host: str = opt("127.0.0.1", "MQTT broker host")
    port: int = opt(1883, "MQTT broker port (8883 is the usual TLS port)", min=1, max=65535)
    prefix: str = opt("edgefilter", "first topic level: frames go to `<prefix>/<site>/<source>/frame`, drift to "
                                    "`.../drift`, the bridge's retained status to `<prefix>/<site>/<name>/status`")
    client_id: str | None = opt(None, "MQTT client id, stable across restarts so the persistent session resumes "
                                      "(null: `edgefilter-bridge-<site>-<name>`)")
    username: str | None = opt(None, "MQTT user name (null: anonymous)")
    password: SecretConfig = opt(None, "MQTT password, from the environment or a file", factory=SecretConfig)
    tls: TlsConfig = opt(None, "TLS to the broker", factory=TlsConfig)
    keepalive_s: int = opt(30, "MQTT keepalive; the broker publishes the last will after 1.5 times this",
                           min=5, max=65535)
    ack_timeout_s: float = opt(10.0, "longest wait for the broker's PUBACK before the link counts as down",
                               min=0.0, min_exclusive=True)
    embeddings: bool = opt(False, "add the embedding (base64 of little-endian float32) to frame messages when "
                                  "the daemon sends one")


@dataclass(frozen=True)
class S3Config:
    endpoint: str | None = opt(None, "S3 endpoint URL, e.g. http://127.0.0.1:8333 (null: AWS by region)")
    region: str = opt("us-east-1", "S3 region")
    bucket: str = opt("edgefilter", "bucket of the kept frames")
    create_bucket: bool = opt(False, "create the bucket at start when it does not exist")
    access_key: SecretConfig = opt(None, "access key id (null env and file: boto3's own lookup, e.g. "
                                         "AWS_ACCESS_KEY_ID)", factory=SecretConfig)
    secret_key: SecretConfig = opt(None, "secret access key, from the environment or a file",
                                   factory=SecretConfig)
    ca_file: str | None = opt(None, "CA bundle for an https endpoint with a private CA")
    sidecar: bool = opt(False, "also write `<key>.json` with the header beside each JPEG")
    timeout_s: float = opt(10.0, "connect and read timeout of one request", min=0.0, min_exclusive=True)
    uploads: int = opt(4, "frames uploaded in parallel", min=1, max=64)


@dataclass(frozen=True)
class OutboxConfig:
    path: str | None = opt(None, "SQLite file of messages waiting for the broker or store (null: "
                                 "`$STATE_DIRECTORY/outbox.sqlite`, else `outbox.sqlite` beside the config)")
    max_bytes: int = opt(1 << 30, "largest outbox size (JPEGs and headers); the oldest messages are dropped "
                                  "first beyond it, counted as `full`", min=1)
    max_age_s: float = opt(7 * 86400.0, "messages older than this are dropped, counted as `expired`",
                           min=0.0, min_exclusive=True)
    batch: int = opt(64, "messages forwarded per round", min=1, max=10000)


@dataclass(frozen=True)
class RetryConfig:
    initial_s: float = opt(0.5, "first wait before retrying a link that failed", min=0.0)
    max_s: float = opt(30.0, "cap of the exponential backoff between retries", min=0.0)


@dataclass(frozen=True)
class BridgeMetricsConfig:
    bind: str | None = opt("127.0.0.1:9109", "HOST:PORT of the bridge's Prometheus endpoint (null: off)")


@dataclass(frozen=True)
class BridgeConfig:
    site: str = opt("", "site name, the second topic level and the first key level ([A-Za-z0-9_.-])")
    name: str | None = opt(None, "this bridge's name in its status topic and client id (null: the host name)")
    daemons: list[DaemonConfig] = opt(None, "the daemons to subscribe to (at least one)", factory=list)
    mqtt: MqttConfig = opt(None, "the MQTT broker", factory=MqttConfig)
    s3: S3Config = opt(None, "S3-compatible object storage for the JPEGs", factory=S3Config)
    outbox: OutboxConfig = opt(None, "store and forward", factory=OutboxConfig)
    retry: RetryConfig = opt(None, "reconnect backoff of the broker and store", factory=RetryConfig)
    metrics: BridgeMetricsConfig = opt(None, "Prometheus endpoint", factory=BridgeMetricsConfig)
    log_level: str = opt("info", "log level: debug, info, warning or error")
    base_dir: str = field(default=".", metadata={"internal": True})

    @property
    def bridge_name(self) -> str:
        return self.name or _host_name()

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edgefilter-bridge-{self.site}-{self.bridge_name}"

    def resolve(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else Path(self.base_dir) / p

    def outbox_path(self) -> Path:
        if self.outbox.path:
            return self.resolve(self.outbox.path)
        state = os.environ.get("STATE_DIRECTORY")
        return Path(state.split(":")[0]) / DEFAULT_OUTBOX if state else self.resolve(DEFAULT_OUTBOX)


def _host_name() -> str:
    name = "".join(c if c in _NAME_CHARS else "-" for c in socket.gethostname())[:64].lstrip(".")
    return name or "bridge"


def _name_problem(value: str) -> str | None:
    if not value:
        return "is required"
    if len(value) > 64 or not set(value) <= _NAME_CHARS or value.startswith("."):
        return f"must be 1-64 characters of A-Z a-z 0-9 _ . - not starting with '.', got {value!r}"
    return None


def _cross_checks(cfg: BridgeConfig, root: yaml.Node, chk: _Checker) -> None:
    for key in ("site", "name"):
        value = getattr(cfg, key)
        problem = _name_problem(value) if (value is not None or key == "site") else None
        if problem:
            chk.problem(key, _child(root, key) or root, problem)
    seq = _child(root, "daemons")
    if not cfg.daemons:
        chk.problem("daemons", seq or root, "at least one daemon is required")
    seen: dict[str, int] = {}
    for i, d in enumerate(cfg.daemons):
        item = seq.value[i] if isinstance(seq, yaml.SequenceNode) and i < len(seq.value) else root
        problem = _name_problem(d.name)
        if problem:
            chk.problem(f"daemons[{i}].name", _child(item, "name") or item, problem)
        elif d.name in seen:
            chk.problem(f"daemons[{i}].name", _child(item, "name"),
                        f"duplicate daemon name {d.name!r} (also daemons[{seen[d.name]}])")
        else:
            seen[d.name] = i
        if "://" not in d.connect:
            chk.problem(f"daemons[{i}].connect", _child(item, "connect") or item,
                        f"must be a ZeroMQ endpoint such as tcp://127.0.0.1:5556, got {d.connect!r}")
        if d.client_cert is not None and d.server_key is None:
            chk.problem(f"daemons[{i}].client_cert", _child(item, "client_cert"),
                        "needs server_key (the daemon's public key)")
    mqtt = _child(root, "mqtt")
    if not cfg.mqtt.prefix or any(c in cfg.mqtt.prefix for c in "+#") or cfg.mqtt.prefix.startswith("/"):
        chk.problem("mqtt.prefix", _child(mqtt, "prefix") or root,
                    f"must be a topic level without + or # and not starting with '/', got {cfg.mqtt.prefix!r}")
    if cfg.mqtt.password != SecretConfig() and cfg.mqtt.username is None:
        chk.problem("mqtt.password", _child(mqtt, "password"), "needs mqtt.username")
    if (cfg.mqtt.tls.cert_file is None) != (cfg.mqtt.tls.key_file is None):
        chk.problem("mqtt.tls.cert_file", _child(_child(mqtt, "tls"), "cert_file") or _child(mqtt, "tls"),
                    "cert_file and key_file go together")
    s3 = _child(root, "s3")
    if cfg.s3.endpoint is not None and not cfg.s3.endpoint.startswith(("http://", "https://")):
        chk.problem("s3.endpoint", _child(s3, "endpoint"), f"must be an http:// or https:// URL, got "
                                                            f"{cfg.s3.endpoint!r}")
    if not 3 <= len(cfg.s3.bucket) <= 63:
        chk.problem("s3.bucket", _child(s3, "bucket") or root, f"must be 3-63 characters, got {cfg.s3.bucket!r}")
    if cfg.retry.max_s < cfg.retry.initial_s:
        chk.problem("retry.max_s", _child(_child(root, "retry"), "max_s") or root, "must be at least retry.initial_s")
    if cfg.log_level not in ("debug", "info", "warning", "error"):
        chk.problem("log_level", _child(root, "log_level"), f"must be debug, info, warning or error, got "
                                                            f"{cfg.log_level!r}")
    check_host_port(chk, "metrics.bind", cfg.metrics.bind, _child(_child(root, "metrics"), "bind") or root)


def parse_bridge_config(text: str, file: str | None = None, base_dir: str | None = None) -> BridgeConfig:
    """Parse and check bridge config text; ConfigError lists every problem with its line."""
    return parse_checked(BridgeConfig, _cross_checks, text, file, base_dir, "`site` and `daemons`")


def load_bridge_config(path: str | os.PathLike) -> BridgeConfig:
    p = Path(path)
    return parse_bridge_config(read_config_text(p), file=str(p), base_dir=str(p.resolve().parent))


class Secret:
    """A credential read at start-up; its repr and str never show the value, so it cannot leak into logs."""

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def read_secret(spec: SecretConfig, key: str, cfg: BridgeConfig) -> Secret | None:
    """The value a SecretConfig names (None when it names nothing); ConfigError names the key, variable or
    file that is missing, never a value."""
    if spec.file is not None:
        path = cfg.resolve(spec.file)
        try:
            return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(ConfigProblem(path=f"{key}.file", message=f"cannot read {path}: "
                                                                        f"{getattr(e, 'strerror', None) or e}"))
    if spec.env is not None:
        value = os.environ.get(spec.env)
        if value is None:
            raise ConfigError(ConfigProblem(path=f"{key}.env", message=f"environment variable {spec.env} is not set"))
        return Secret(value)
    return None


def reference_markdown() -> str:
    return _reference_markdown(BridgeConfig)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(reference_markdown() + "\n")
