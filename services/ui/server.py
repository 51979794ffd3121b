"""Runs the UI under gunicorn (one threaded worker); the app and its event relay are built after
fork."""

from __future__ import annotations

from flask import Flask

from libs.common.config import Settings
from libs.common.service_process import GunicornServer, gunicorn_defaults


def _build(settings: Settings) -> Flask:
    from services.ui.app import create_app
    from services.ui.live import start_relay

    app = create_app(settings)
    start_relay(app, settings)
    return app


# One worker: a Socket.IO client on long-polling sends several requests that must reach the
# process holding its session, and gunicorn's balancer has no sticky sessions (Flask-SocketIO's
# deployment docs allow one gunicorn worker for that reason). More capacity means more
# `justtrades ui` processes behind a sticky proxy (nginx ip_hash): the Redis message queue and the
# relay's consumer group already make several processes deliver each event once.
# Threads: an open WebSocket holds one thread for as long as the page is open, so there are
# plenty; the database pool (app.POOL_SIZE, plus overflow) only serves the API requests.
def serve(settings: Settings, workers: int = 1, threads: int = 64) -> None:
    """Serve the UI on 0.0.0.0:settings.ui_port until SIGTERM/SIGINT."""
    options = gunicorn_defaults(settings.ui_port, "ui", settings.log_level, workers, threads)
    # An open WebSocket never finishes on its own, so a stop would always wait out the whole
    # grace period; 3 s still lets API requests finish, and the browsers reconnect and reload.
    options.update({"timeout": 60, "accesslog": "-", "graceful_timeout": 3})
    GunicornServer(lambda: _build(settings), options).run()
