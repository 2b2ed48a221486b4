"""The daemon's HTTP endpoint: Prometheus metrics, liveness and readiness.

    GET /metrics   Prometheus text (or OpenMetrics when the scraper asks for it)
    GET /healthz   200 {"status": "ok"} while the daemon is healthy, else 503 {"status": "unhealthy", "reasons": [...]}
    GET /readyz    200 once publishing and the model are up, else 503
    anything else  404

The verdicts come from callables the daemon passes in, so this module knows nothing about the pipeline.
A probe must never be able to hurt the daemon: handler errors become a 500 and a log line.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .errors import PublishError

log = logging.getLogger("edgefilter.endpoint")

# () -> list of reasons the daemon is unhealthy (empty: healthy)
HealthCheck = Callable[[], "list[str]"]


class Endpoint:
    """Serves /metrics, /healthz and /readyz on ``bind`` (HOST:PORT) in a background thread."""

    def __init__(self, bind: str, registry: CollectorRegistry, health: HealthCheck, ready: Callable[[], bool]):
        host, _, port = bind.rpartition(":")
        host = host.strip("[]")
        try:
            family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
        except (OSError, ValueError) as exc:
            raise PublishError(f"metrics.bind {bind}: cannot resolve {host!r}: {exc}") from None
        handler = type("Handler", (_Handler,), {"registry": registry, "health": staticmethod(health),
                                                "ready": staticmethod(ready)})
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        try:
            self.server = server_class((host, int(port)), handler)
        except OSError as exc:
            raise PublishError(f"metrics.bind {bind}: cannot listen: {exc}") from None
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="endpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran otherwise
            self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: HealthCheck
    ready: Callable[[], bool]
    server_version = "edgefilter"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(self.registry), content_type)
            elif path == "/healthz":
                reasons = self.health()
                body = {"status": "unhealthy", "reasons": reasons} if reasons else {"status": "ok"}
                self._send_json(503 if reasons else 200, body)
            elif path == "/readyz":
                ok = self.ready()
                self._send_json(200 if ok else 503, {"status": "ready" if ok else "not ready"})
            else:
                self._send_json(404, {"status": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})
        except Exception:  # noqa: BLE001 - a probe must not take down the endpoint thread
            log.exception("endpoint: error answering %s", path)
            self._send_json(500, {"status": "error"})

    def _send_json(self, status: int, body: dict) -> None:
        self._send(status, (json.dumps(body) + "\n").encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
        pass  # a request line per scrape would flood the journal
