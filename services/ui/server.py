"""Runs the UI under gunicorn (threaded workers); the app is built in each worker after fork,
so no database or Redis connection is shared across processes."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from libs.common.config import Settings


class UIServer(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from services.ui.app import create_app

        return create_app(self.settings)


def serve(settings: Settings, workers: int = 2, threads: int = 8) -> None:
    """Serve the UI on 0.0.0.0:settings.ui_port until SIGTERM/SIGINT."""
    options = {
        "bind": f"0.0.0.0:{settings.ui_port}",
        "worker_class": "gthread",
        "workers": workers,
        "threads": threads,
        "preload_app": False,  # build the app (engine, Redis pool) after fork, in each worker
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "justtrades-ui",
        # gunicorn ≥ 25 opens a control socket at one shared path under $HOME by default, which
        # clashes with the gateway's; we don't use it.
        "control_socket_disable": True,
    }
    UIServer(settings, options).run()
