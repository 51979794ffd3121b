"""What every service process shares: its `python -m` entry and running a Flask app in gunicorn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from libs.common.config import Settings, load_settings
from libs.common.logs import setup_logging


def service_main(run: Callable[[Settings], None]) -> None:
    """Entry of `python -m services.<name>`: settings from the environment, then `run`."""
    settings = load_settings()
    if not settings.database_url or not settings.redis_url:
        sys.exit("DATABASE_URL and REDIS_URL must be set (or use `justtrades run`)")
    setup_logging(settings.log_level)
    run(settings)


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn embedded in our process; `build_app` runs in each worker after fork, so no Redis
    or PostgreSQL socket crosses processes."""

    def __init__(self, build_app: Callable[[], Flask], options: dict[str, Any]):
        self.build_app = build_app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.build_app()


def gunicorn_defaults(
    port: int, name: str, log_level: str, workers: int, threads: int
) -> dict[str, Any]:
    return {
        "bind": f"0.0.0.0:{port}",
        "worker_class": "gthread",
        "workers": workers,
        "threads": threads,
        "graceful_timeout": 10,
        "errorlog": "-",
        "loglevel": log_level.lower(),
        "proc_name": f"justtrades-{name}",
        # gunicorn ≥ 25 opens a control socket at one shared path under $HOME by default; two
        # services would fight over it, and nothing of ours uses it.
        "control_socket_disable": True,
    }
