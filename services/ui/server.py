"""Runs the UI under gunicorn (threaded workers), the app built in each worker after fork."""

from __future__ import annotations

from libs.common.config import Settings
from libs.common.service_process import GunicornServer, gunicorn_defaults


def _build(settings: Settings):
    from services.ui.app import create_app

    return create_app(settings)


def serve(settings: Settings, workers: int = 2, threads: int = 8) -> None:
    """Serve the UI on 0.0.0.0:settings.ui_port until SIGTERM/SIGINT."""
    options = gunicorn_defaults(settings.ui_port, "ui", settings.log_level, workers, threads)
    options.update({"timeout": 60, "accesslog": "-"})
    GunicornServer(lambda: _build(settings), options).run()
