"""Runs the UI under gunicorn: one gevent worker, a greenlet per connection, so slow clients and
open WebSockets cost no thread; the app and its event relay are built after fork."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from typing import TYPE_CHECKING, Any

import gevent  # type: ignore[import-untyped]  # ships no type information
from flask import Flask

from libs.common.config import Settings
from libs.common.service_process import (
    BODY_TIMEOUT_S,
    WORKER_CONNECTIONS,
    GunicornServer,
    gunicorn_defaults,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# gunicorn's gevent worker bounds the wait for each request's headers (the first one included)
# by its keep-alive setting, then closes the connection: the UI's header deadline.
HEADER_TIMEOUT_S = 5


def _build(settings: Settings) -> Flask:
    # Runs in the worker after gevent's monkey patch, so sockets and locks made from here on are
    # gevent's. `python -m services.ui` imports SQLAlchemy, psycopg, redis-py and Socket.IO here
    # for the first time; `justtrades ui` has imported some of them in the CLI already, which
    # matters only for psycopg (below).
    from services.ui.app import MAX_BODY, create_app
    from services.ui.live import start_relay

    _cooperative_database_waits()
    app = create_app(settings, async_mode="gevent")
    # Outermost, so no part of the app waits on a body. (Flask types wsgi_app as a method, yet
    # documents replacing it with middleware.)
    app.wsgi_app = BodyDeadline(app.wsgi_app, MAX_BODY)  # type: ignore[method-assign]
    start_relay(app, settings)  # a greenlet: `threading` is gevent's here
    return app


class BodyDeadline:
    """Reads a request's body (at most `max_body` + 1 bytes) within BODY_TIMEOUT_S before the
    app sees it: a client still trickling it then gets 408 and its connection is closed, instead
    of holding a connection for as long as it likes. A longer body reaches the app cut short with
    its declared length, so the app's own size check answers."""

    def __init__(self, app: WSGIApplication, max_body: int):
        self.app = app
        self.max_body = max_body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if environ.get("CONTENT_LENGTH", "") in ("", "0") and not chunked:
            return self.app(environ, start_response)
        body: bytes | None = None
        with gevent.Timeout(BODY_TIMEOUT_S, False):
            body = environ["wsgi.input"].read(self.max_body + 1)
        if body is None:
            # The rest of the body will not be read: no later request on this connection either.
            client = environ.get("gunicorn.socket")
            if client is not None:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RD)
            answer = json.dumps(
                {"ok": False, "error": "The request body did not arrive in time."}
            ).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
            start_response("408 Request Timeout", headers)
            return [answer]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def _cooperative_database_waits() -> None:
    """`justtrades ui` imports psycopg in the CLI, before the worker's patch, and psycopg then
    chose a C wait that would stall every greenlet during each query: make the choice it makes
    when imported into a patched process."""
    from psycopg import waiting

    if waiting.wait is getattr(waiting, "wait_c", None):
        waiting.wait = waiting.wait_poll


def gunicorn_options(settings: Settings, workers: int = 1) -> dict[str, Any]:
    options = gunicorn_defaults(settings.ui_port, "ui", settings.log_level, workers, threads=1)
    options.update(
        {
            "worker_class": "gevent",
            "worker_connections": WORKER_CONNECTIONS,
            "keepalive": HEADER_TIMEOUT_S,
            "timeout": 60,
            "accesslog": "-",
            # An open WebSocket never finishes on its own, so a stop would always wait out the
            # whole grace period; 3 s still lets API requests finish, and the browsers reconnect.
            "graceful_timeout": 3,
        }
    )
    return options


# One worker: a Socket.IO client on long-polling sends several requests that must reach the
# process holding its session, and gunicorn's balancer has no sticky sessions (Flask-SocketIO's
# deployment docs allow one gunicorn worker for that reason). More capacity means more
# `justtrades ui` processes behind a sticky proxy (nginx ip_hash): the Redis message queue and the
# relay's consumer group already make several processes deliver each event once.
# gevent, not gunicorn's gthread worker: gthread gives a connection a thread as soon as one byte
# arrives, so seventy clients trickling their headers held all 64 threads, and every open page's
# WebSocket held one for good. The gateway's asyncio worker cannot carry WebSockets.
def serve(settings: Settings, workers: int = 1) -> None:
    """Serve the UI on 0.0.0.0:settings.ui_port until SIGTERM/SIGINT."""
    GunicornServer(lambda: _build(settings), gunicorn_options(settings, workers)).run()
