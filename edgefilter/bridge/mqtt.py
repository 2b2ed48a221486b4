"""The bridge's MQTT connection: QoS 1, a persistent session, a retained status with a last will.

paho-mqtt runs the network loop in its own thread and reconnects by itself (with backoff); this class
tracks whether the broker is reachable and which published messages it has acknowledged (PUBACK), so
the forwarder deletes a message from the outbox only once the broker holds it. A message published
before a disconnect stays with paho, which sends it again (DUP) after the reconnect: the forwarder
never publishes an outbox row twice in one process. Across a bridge restart a message whose PUBACK
was lost is sent again: QoS 1 is at least once, and consumers drop repeats by the object key.
"""
from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ..errors import ConfigError, ConfigProblem
from .config import BridgeConfig, Secret

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


class MqttLink:
    def __init__(self, cfg: BridgeConfig, password: Secret | None, on_state: Callable[[bool], None] | None = None):
        m = cfg.mqtt
        self.cfg = cfg
        self.status_topic = f"{m.prefix}/{cfg.site}/{cfg.bridge_name}/status"
        self._on_state = on_state or (lambda up: None)
        self._cond = threading.Condition()
        self._acked: set[int] = set()
        self._ignored: set[int] = set()  # status messages and forgotten ones: nobody waits for their PUBACK
        self._up = False
        self._stopping = False  # our own disconnect is not an outage worth a warning
        self._last_error: str | None = None
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, clean_session=False,
                                   protocol=paho.MQTTv311)
        # The outbox is the queue; paho may hold one batch in flight at a time.
        self._client.max_inflight_messages_set(max(20, cfg.outbox.batch))
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(min_delay=max(1, int(cfg.retry.initial_s) or 1),
                                         max_delay=max(1, int(cfg.retry.max_s)))
        self._client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        if m.username is not None:
            self._client.username_pw_set(m.username, password.reveal() if password is not None else None)
        if m.tls.enabled:
            files = {k: str(cfg.resolve(v)) if v else None
                     for k, v in (("ca_file", m.tls.ca_file), ("cert_file", m.tls.cert_file),
                                  ("key_file", m.tls.key_file))}
            try:
                self._client.tls_set(ca_certs=files["ca_file"], certfile=files["cert_file"],
                                     keyfile=files["key_file"], cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as e:
                raise ConfigError(ConfigProblem(path="mqtt.tls", message=f"cannot load the TLS files: {e}")) \
                    from None
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_publish = self._handle_publish

    @property
    def where(self) -> str:
        scheme = "mqtts" if self.cfg.mqtt.tls.enabled else "mqtt"
        return f"{scheme}://{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"

    # ------------------------------------------------------------------ paho callbacks (its network thread)

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._note_down(f"broker refused the connection: {reason_code}")
            return
        log.info("MQTT connected to %s (session %s)", self.where,
                 "resumed" if flags.session_present else "new")
        # This callback runs in paho's network thread, which also reads the PUBACK: no race with the ack.
        mid = self._client.publish(self.status_topic, ONLINE, qos=1, retain=True).mid
        with self._cond:
            self._ignored.add(mid)
            self._up = True
            self._last_error = None
            self._cond.notify_all()
        self._on_state(True)

    def _handle_connect_fail(self, client, userdata) -> None:
        # paho calls this from inside its `except OSError`, so the reason (refused, TLS, DNS) is at hand.
        error = sys.exc_info()[1]
        self._note_down(f"cannot connect: {error or 'connection failed'}")

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._stopping:
            with self._cond:
                self._up = False
            return
        self._note_down(f"disconnected: {reason_code}")

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            if mid in self._ignored:
                self._ignored.discard(mid)
                return
            self._acked.add(mid)
            self._cond.notify_all()

    def _note_down(self, why: str) -> None:
        with self._cond:
            was_up, repeated = self._up, why == self._last_error
            self._up = False
            self._last_error = why
        if was_up or not repeated:  # one line per outage, not one per reconnect attempt
            log.warning("MQTT %s: %s; messages wait in the outbox", self.where, why)
        self._on_state(False)

    # ------------------------------------------------------------------ used by the bridge

    def start(self) -> None:
        try:
            self._client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=self.cfg.mqtt.keepalive_s)
        except (OSError, ValueError) as e:
            raise ConfigError(ConfigProblem(path="mqtt.host", message=f"cannot connect to {self.where}: {e}")) \
                from None
        self._client.loop_start()

    @property
    def up(self) -> bool:
        with self._cond:
            return self._up

    def wait_up(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._up, timeout)

    def publish(self, topic: str, payload: bytes) -> int:
        """Queue a QoS 1 message; returns its message id for :meth:`wait_acked`."""
        return self._client.publish(topic, payload, qos=1).mid

    def wait_acked(self, mids: list[int], timeout: float) -> set[int]:
        """The subset of ``mids`` the broker acknowledged within ``timeout``; they are forgotten here."""
        want = set(mids)
        with self._cond:
            self._cond.wait_for(lambda: want <= self._acked or not self._up, timeout)
            done = want & self._acked
            self._acked -= done
        return done

    def stop(self, timeout: float = 2.0) -> None:
        """Say `offline` (retained) when the broker is reachable, then disconnect: a clean stop does not rely
        on the last will, which the broker sends only for connections that were lost."""
        if self.up:
            mid = self._client.publish(self.status_topic, OFFLINE, qos=1, retain=True).mid
            self.wait_acked([mid], timeout)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
