"""Runs the gateway under gunicorn: asyncio workers that read each request whole before a thread
runs the Flask app on it (so slow or idle clients cost no thread), each worker building its own
app and clients; the workers' metrics are served on an internal port of their own."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

from libs.common import metrics
from libs.common.config import Settings, normalize_database_url
from libs.common.service_process import (
    WORKER_CONNECTIONS,
    BoundedAsgiWorker,
    GunicornServer,
    WsgiOnAsgi,
    gunicorn_defaults,
)
from libs.common.status_server import metrics_route, start_status_server
from libs.common.storage import db
from services.gateway.app import MAX_BODY_BYTES, create_app
from services.gateway.redaction import RedactTokens

log = logging.getLogger(__name__)


class RedactingLogger(Logger):
    """gunicorn's logger with webhook tokens cut out of its error and access lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactTokens) for f in log.filters):
                log.addFilter(RedactTokens())


def worker_app(settings: Settings, threads: int = 8) -> WsgiOnAsgi:
    """Built in each worker after fork: a Redis or PostgreSQL socket must not cross processes."""
    sessions = None
    if settings.database_url:
        # Only the token-map sync uses PostgreSQL; a bounded connect keeps a slow database from
        # holding the worker's boot past gunicorn's timeout.
        engine = create_engine(
            normalize_database_url(settings.database_url),
            pool_size=1,
            max_overflow=1,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5},
        )
        sessions = db.make_sessionmaker(engine)
    # One byte over the limit reaches the app, which answers 413 for it.
    return WsgiOnAsgi(create_app(settings, sessions=sessions), threads, MAX_BODY_BYTES + 1)


def gunicorn_options(settings: Settings, workers: int = 2, threads: int = 8) -> dict[str, Any]:
    options = gunicorn_defaults(
        settings.gateway_port, "gateway", settings.log_level, workers, threads
    )
    options.update(
        {
            "worker_class": BoundedAsgiWorker,
            "threads": 1,  # the app's threads are WsgiOnAsgi's; gunicorn's asyncio uses none
            "worker_connections": WORKER_CONNECTIONS,
            "timeout": 30,
            "keepalive": 5,
            "accesslog": None,  # the app logs each request (token redacted, with its signal_id)
            "logger_class": RedactingLogger,
            "child_exit": lambda _server, worker: metrics.mark_worker_dead(worker.pid),
        }
    )
    return options


def serve_metrics(settings: Settings) -> None:
    """In the arbiter, before the fork: one port for every worker's metrics, away from the
    public one. Metrics never stop webhooks: with the port taken the gateway runs without."""
    routes = {"/metrics": metrics_route(metrics.scrape_registry(CollectorRegistry()))}
    try:
        start_status_server(
            settings.gateway_metrics_port, routes, "gateway-metrics", settings.internal_host
        )
    except OSError as exc:
        kv = {"port": settings.gateway_metrics_port, "error": type(exc).__name__}
        log.warning("gateway metrics port unavailable, serving without it", extra={"kv": kv})


def serve(settings: Settings, workers: int = 2, threads: int = 8) -> None:
    """Serve `POST /webhook/<token>` on 0.0.0.0:`settings.gateway_port` until SIGTERM/SIGINT, and
    the workers' metrics on `settings.internal_host`:`settings.gateway_metrics_port`."""
    for handler in logging.getLogger().handlers:  # defence in depth for any library's log lines
        handler.addFilter(RedactTokens())
    # Each worker counts its own answers in files under var/, which the metrics port adds up.
    # Emptied at start so counters begin at zero, as Prometheus expects after a restart.
    metrics.use_multiprocess_dir(settings.var_dir / "metrics" / "gateway")
    if settings.gateway_metrics_port:
        serve_metrics(settings)
    options = gunicorn_options(settings, workers, threads)
    server = GunicornServer(lambda: worker_app(settings, threads), options)
    server.run()
