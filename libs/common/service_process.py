"""What every service process shares: its `python -m` entry and running a Flask app in gunicorn."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi
from gunicorn.workers.gasgi import ASGIWorker

from libs.common.config import Settings, load_settings
from libs.common.logs import setup_logging

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def service_main(run: Callable[[Settings], None]) -> None:
    """Entry of `python -m services.<name>`: settings from the environment, then `run`."""
    try:
        settings = load_settings()
    except ValueError as exc:  # a setting that cannot work: its sentence, not a traceback
        sys.exit(f"not started: {exc}")
    if not settings.database_url or not settings.redis_url:
        sys.exit("DATABASE_URL and REDIS_URL must be set (or use `justtrades run`)")
    setup_logging(settings.log_level)
    run(settings)


class GunicornServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn embedded in our process; `build_app` runs in each worker after fork, so no Redis
    or PostgreSQL socket crosses processes."""

    def __init__(self, build_app: Callable[[], Flask | WsgiOnAsgi], options: dict[str, Any]):
        self.build_app = build_app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask | WsgiOnAsgi:
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


# --- Serving a WSGI app from an event loop ---------------------------------------------------
# gunicorn's gthread worker hands a connection to a thread as soon as one byte is readable, and
# the thread then waits for the rest: twenty clients sending their headers a byte at a time hold
# every thread. gunicorn's asyncio ("asgi") worker reads headers and bodies in its event loop,
# where an open connection costs a few kilobytes, and `WsgiOnAsgi` hands the Flask app a request
# only once it has arrived whole. Deadlines drop a client that takes too long.

HEADER_TIMEOUT_S = 10.0  # from connecting to the end of the first request's headers
BODY_TIMEOUT_S = 10.0  # from the end of the headers to the end of the body
WORKER_CONNECTIONS = 2_000  # open connections per worker process before it stops accepting

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _HeaderDeadlineProtocol(ASGIProtocol):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn's HTTP protocol with a deadline on the first request's headers; later requests on
    the connection are bounded by its keep-alive timer, which runs until their headers are in."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._keepalive_handle = self.worker.loop.call_later(
            HEADER_TIMEOUT_S, self._keepalive_timeout
        )


class BoundedAsgiWorker(ASGIWorker):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn's asyncio worker, its connections given a deadline for their headers."""

    def init_process(self) -> None:
        # The worker builds its protocol by this module-level name; this process only.
        gasgi.ASGIProtocol = _HeaderDeadlineProtocol
        super().init_process()


class WsgiOnAsgi:
    """An ASGI app that reads the whole request (at most `max_body` bytes of body, within
    BODY_TIMEOUT_S), then runs the WSGI app on one of `threads` threads and sends its answer.

    A body longer than `max_body` reaches the app cut at `max_body` bytes with its declared
    length, so the app's own size check answers; the rest is never read.
    """

    def __init__(self, app: WSGIApplication, threads: int, max_body: int):
        self.app = app
        self.max_body = max_body
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:  # made in the worker, after fork
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="wsgi")
        return self._pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here: gunicorn refuses the upgrade
        try:
            body = await asyncio.wait_for(self._read_body(receive), BODY_TIMEOUT_S)
        except TimeoutError:
            await _refuse(send, 408, "The request body did not arrive in time.")
            return
        if body is None:
            return  # the client went away
        loop = asyncio.get_running_loop()
        environ = _environ(scope, body)
        status, headers, chunks = await loop.run_in_executor(self.pool, self._run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    async def _read_body(self, receive: Receive) -> bytes | None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) >= self.max_body or not message.get("more_body", False):
                return bytes(body[: self.max_body])

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        answer: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            answer["status"] = int(status.split(" ", 1)[0])
            answer["headers"] = [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
            ]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return answer["status"], answer["headers"], chunks

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.shutdown(wait=True)  # requests under way finish first
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _refuse(send: Send, status: int, sentence: str) -> None:
    """An error in the services' JSON shape, closing the connection."""
    body = json.dumps({"ok": False, "error": sentence}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope whose body has been read."""
    server = scope.get("server") or ("127.0.0.1", 0)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if "CONTENT_LENGTH" not in environ:  # chunked: what was read is the whole (or cut) body
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ
