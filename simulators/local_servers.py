"""The plumbing every simulator shares: a server on 127.0.0.1 in a daemon thread, started and
stopped by tests (or used as a context manager), on a given port or a free one."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from typing import Any, Self
from wsgiref.types import StartResponse, WSGIEnvironment

from websockets.sync.server import Server, ServerConnection, serve
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # tests run many requests; the access log would only be noise


class LocalHttpServer:
    """A WSGI app (`_wsgi`) served by werkzeug, one thread per request."""

    thread_name = "simulator-http"
    ssl_context: ssl.SSLContext | None = None  # set before `start` to serve https

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def server_port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.server_port

    def start(self) -> Self:
        self._server = make_server(
            "127.0.0.1",
            self.port,
            self._wsgi,
            threaded=True,
            request_handler=_QuietHandler,
            ssl_context=self.ssl_context,
        )
        # A short poll interval so `stop` (and each test using the server) ends at once.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True, name=self.thread_name
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise NotImplementedError


class LocalWebSocketServer:
    """A WebSocket server (`websockets`' sync API) calling `_handle` per connection."""

    thread_name = "simulator-ws"
    path = "/v1/websocket"
    ssl_context: ssl.SSLContext | None = None  # set before `start` to serve wss

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self._port}{self.path}"

    def start(self) -> Self:
        self._server = serve(
            self._handle,
            "127.0.0.1",
            self._port,
            compression=None,
            process_request=self._process_request,
            ping_interval=None,
            close_timeout=1,
            server_header=None,
            ssl=self.ssl_context,
        )
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name=self.thread_name
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        return None  # accept every upgrade; a simulator that refuses some overrides this
