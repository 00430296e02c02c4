"""Health of a long-running process (the worker, the notifier): ``/healthz`` (alive),
``/readyz`` (doing its work: 503 while its database or broker is away, with the reason) and
``/metrics`` (Prometheus, from prometheus-client's registry), on a small threaded HTTP
server of the standard library beside the process's own loop.

Why not prometheus-client's ``start_http_server``: it serves only the metrics, and a
readiness probe must be answered by the same port an orchestrator already knows.

>>> state = Readiness()
>>> state.ready
True
>>> state.unready("the database is unavailable"); (state.ready, state.reason)
(False, 'the database is unavailable')
>>> state.recovered(); state.ready
True
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger("watchkeeper.health")


class Backoff:
    """Seconds to wait between retries while a dependency is away: ``first``, doubling up
    to ``most``; :meth:`reset` once it answers.

    >>> b = Backoff(0.5, 4.0)
    >>> [b.next() for _ in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> b.reset(); b.next()
    0.5
    """

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first, self.most = first, most
        self._delay = first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self._delay = self.first


class Readiness:
    """Whether the process is doing its work; set by its loop, read by ``/readyz``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None

    @property
    def ready(self) -> bool:
        return self._reason is None

    @property
    def reason(self) -> str:
        return self._reason or ""

    def unready(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                log.warning("not ready: %s", reason)
            self._reason = reason

    def recovered(self) -> None:
        with self._lock:
            if self._reason is not None:
                log.warning("ready again (was: %s)", self._reason)
            self._reason = None


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` (port 0: a free one, see
    :attr:`port`), served from a daemon thread until :meth:`stop`."""

    def __init__(self, readiness: Readiness, *, host: str = "127.0.0.1", port: int = 0,
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.readiness = readiness
        self.registry = registry
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "watchkeeper"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._json(200, {"ok": True})
                elif path == "/readyz":
                    state = server.readiness
                    self._json(200 if state.ready else 503,
                               {"ready": state.ready, "reason": state.reason})
                elif path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                else:
                    self._json(404, {"error": "not found"})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health",
                                        daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health on http://127.0.0.1:%d (/healthz /readyz /metrics)", self.port)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
