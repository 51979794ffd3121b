"""The UI's live updates under test: the app in a real HTTP server, its relay, and logged-in
python-socketio clients that keep every `jt_event` they receive."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests
import socketio
import websocket
from flask import Flask
from werkzeug.serving import make_server

from libs.common import streams
from libs.common.config import Settings
from services.ui import live

WAIT_S = 10.0


def eventually(probe: Callable[[], object], what: str, timeout: float = WAIT_S) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.02)


def quick_websocket_close(monkeypatch: pytest.MonkeyPatch) -> None:
    # python-engineio's reader thread swallows the server's close frame, so websocket-client's
    # close() would wait out its 3 s timeout for a frame that never reaches it.
    monkeypatch.setattr(
        websocket.WebSocket,
        "close",
        functools.partialmethod(websocket.WebSocket.close, timeout=0.1),
    )


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app in a threaded werkzeug server; yields its base URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()


@contextmanager
def relaying(app: Flask, settings: Settings) -> Iterator[live.EventRelay]:
    started = live.start_relay(app, settings)
    try:
        yield started
    finally:
        started.stop()


class Browser:
    """A logged-in session and its socket, keeping every `jt_event` it receives."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()
        self.sio = socketio.Client(reconnection=False)
        self.events: list[dict] = []
        self.refusals: list[object] = []
        self.sio.on(live.SOCKET_EVENT, self.events.append)
        self.sio.on("connect_error", self.refusals.append)

    def login(self, email: str, password: str) -> Browser:
        answer = self.http.post(
            f"{self.base_url}/login", json={"email": email, "password": password}
        )
        assert answer.status_code == 200, answer.text
        return self

    def connect(self, transport: str = "websocket", origin: str | None = None) -> Browser:
        headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)}
        if origin:
            headers["Origin"] = origin
        self.sio.connect(
            self.base_url, transports=[transport], headers=headers, wait_timeout=WAIT_S
        )
        return self

    def types(self) -> list[tuple[str, object]]:
        return [(e["type"], e["data"].get("id")) for e in self.events]

    def of_type(self, event_type: str) -> list[dict]:
        return [e["data"] for e in self.events if e["type"] == event_type]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@contextmanager
def browser_factory(base_url: str) -> Iterator[Callable[[], Browser]]:
    """Makes Browsers on `base_url`; closes them all at the end."""
    made: list[Browser] = []

    def make() -> Browser:
        made.append(Browser(base_url))
        return made[-1]

    try:
        yield make
    finally:
        for browser in made:
            browser.close()


def publish(redis_client, event_type: str, data: dict) -> None:
    streams.publish_event(redis_client, f"jt:{streams.EVENTS}", event_type, data)


def wait_subscribed(redis_client, settings: Settings) -> None:
    """The message queue's listener subscribes when the first socket connects."""
    channel = settings.stream(live.CHANNEL)
    eventually(
        lambda: dict(redis_client.pubsub_numsub(channel)).get(channel), "the pub/sub listener"
    )
