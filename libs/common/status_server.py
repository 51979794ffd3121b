"""The small HTTP server each service runs beside its work: health and status as JSON, and
Prometheus `/metrics`, each route a callable; every other path is a 404."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from libs.common.metrics import write_metrics

Route = Callable[[BaseHTTPRequestHandler], None]
Body = dict[str, Any]


def always(body: Body) -> bool:
    return True


def json_route(body_of: Callable[[], Body], healthy: Callable[[Body], bool] = always) -> Route:
    """Answer `body_of()` as JSON: 200 when `healthy` says so of it, else 503 (for probes)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        body = body_of()
        data = json.dumps(body).encode()
        handler.send_response(200 if healthy(body) else 503)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def metrics_route(registry: CollectorRegistry) -> Route:
    """Answer the registry's metrics in Prometheus' text format."""
    return lambda handler: write_metrics(handler, registry)


def start_status_server(
    port: int, routes: Mapping[str, Route], name: str, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """Serve `routes` (path → route) on `host:port` from a daemon thread called `name`. These
    are internal ports (health, status, metrics): loopback unless the deployment says otherwise
    (INTERNAL_HOST, e.g. 0.0.0.0 between Docker containers)."""
    known = dict(routes)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            route = known.get(self.path)
            if route is None:
                self.send_error(404)
                return
            route(self)

        def log_message(self, *args: Any) -> None:
            pass  # probes every few seconds would drown the service's own log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return server
