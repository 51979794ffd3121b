"""Runs the gateway under gunicorn: gthread workers, each building its own app and clients."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.glogging import Logger
from sqlalchemy import create_engine

from libs.common import metrics
from libs.common.config import Settings, normalize_database_url
from libs.common.service_process import GunicornServer, gunicorn_defaults
from libs.common.storage import db
from services.gateway.app import create_app
from services.gateway.redaction import RedactTokens


class RedactingLogger(Logger):
    """gunicorn's logger with webhook tokens cut out of its error and access lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactTokens) for f in log.filters):
                log.addFilter(RedactTokens())


def worker_app(settings: Settings) -> Flask:
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
    return create_app(settings, sessions=sessions)


def gunicorn_options(settings: Settings, workers: int = 2, threads: int = 8) -> dict[str, Any]:
    options = gunicorn_defaults(
        settings.gateway_port, "gateway", settings.log_level, workers, threads
    )
    options.update(
        {
            "timeout": 30,
            "keepalive": 5,
            "accesslog": None,  # the app logs each request (token redacted, with its signal_id)
            "logger_class": RedactingLogger,
            "child_exit": lambda _server, worker: metrics.mark_worker_dead(worker.pid),
        }
    )
    return options


def serve(settings: Settings, workers: int = 2, threads: int = 8) -> None:
    """Serve `POST /webhook/<token>` on 0.0.0.0:`settings.gateway_port` until SIGTERM/SIGINT."""
    for handler in logging.getLogger().handlers:  # defence in depth for any library's log lines
        handler.addFilter(RedactTokens())
    # Each worker counts its own answers; the files under var/ let any worker's /metrics add
    # them up. Emptied at start so counters begin at zero, as Prometheus expects after a restart.
    metrics.use_multiprocess_dir(settings.var_dir / "metrics" / "gateway")
    GunicornServer(lambda: worker_app(settings), gunicorn_options(settings, workers, threads)).run()
