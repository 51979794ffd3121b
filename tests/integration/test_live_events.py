"""Live updates: a `jt:events` entry reaches its owner's Socket.IO connection and nobody else's.

The app runs in a real HTTP server with real WebSockets (werkzeug, threaded) and the Redis
message queue; the sockets are python-socketio clients logged in with a session cookie.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import socketio
import websocket
from werkzeug.serving import make_server

from libs.common import streams
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


@pytest.fixture(scope="module", autouse=True)
def quiet_queue_listeners() -> Iterator[None]:
    yield
    # Each test app's message-queue listener thread lives until the process ends (python-socketio
    # has no way to stop it); once the embedded Redis stops, it would log reconnect errors.
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)


@pytest.fixture(autouse=True)
def quick_websocket_close(monkeypatch) -> None:
    # python-engineio's reader thread swallows the server's close frame, so websocket-client's
    # close() would wait out its 3 s timeout for a frame that never reaches it.
    monkeypatch.setattr(
        websocket.WebSocket,
        "close",
        functools.partialmethod(websocket.WebSocket.close, timeout=0.1),
    )


@pytest.fixture
def server(app) -> Iterator[str]:
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def relay(app, settings, redis_client) -> Iterator[live.EventRelay]:
    started = live.start_relay(app, settings)
    yield started
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

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture
def browsers(server) -> Iterator[Callable[[], Browser]]:
    made: list[Browser] = []

    def make() -> Browser:
        made.append(Browser(server))
        return made[-1]

    yield make
    for browser in made:
        browser.close()


def publish(redis_client, event_type: str, data: dict) -> None:
    streams.publish_event(redis_client, f"jt:{streams.EVENTS}", event_type, data)


def wait_subscribed(redis_client, settings) -> None:
    """The message queue's listener subscribes when the first socket connects."""
    channel = settings.stream(live.CHANNEL)
    eventually(
        lambda: dict(redis_client.pubsub_numsub(channel)).get(channel), "the pub/sub listener"
    )


def test_an_event_reaches_its_users_socket_and_no_one_elses(
    browsers, relay, redis_client, settings, alice, bob
):
    mine = browsers().login("alice@example.com", "alice pass").connect()
    theirs = browsers().login("bob@example.com", "correct horse").connect("polling")
    wait_subscribed(redis_client, settings)

    publish(redis_client, "position.opened", {"id": 7, "user_id": alice[0].id, "status": "open"})
    publish(redis_client, "position.opened", {"id": 8, "user_id": bob[0].id, "status": "open"})

    eventually(lambda: mine.events, "alice's event")
    eventually(lambda: theirs.events, "bob's event")  # sent after alice's, on the same path
    assert mine.types() == [("position.opened", 7)]
    assert theirs.types() == [("position.opened", 8)]
    assert mine.events[0]["data"] == {"id": 7, "user_id": alice[0].id, "status": "open"}


def test_feed_status_goes_to_everyone_and_ownerless_events_to_no_one(
    browsers, relay, redis_client, settings, alice, bob
):
    sockets = [
        browsers().login("alice@example.com", "alice pass").connect(),
        browsers().login("bob@example.com", "correct horse").connect(),
    ]
    wait_subscribed(redis_client, settings)

    publish(redis_client, "account.alert", {"broker_user": "someone", "message": "penalty"})
    publish(redis_client, "price.status", {"ok": True, "connected": True})

    for browser in sockets:
        eventually(lambda b=browser: b.events, "the price status")
        assert [e["type"] for e in browser.events] == ["price.status"]


def test_a_socket_without_a_login_is_refused(server, browsers, alice):
    anonymous = browsers()
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect()
    forged = browsers()
    forged.http.cookies.set("session", "not-a-signed-session")
    with pytest.raises(socketio.exceptions.ConnectionError):
        forged.connect("polling")
    assert anonymous.refusals == forged.refusals == [{"message": "Log in first."}]


def test_a_socket_opened_by_another_site_is_refused(server, browsers, alice):
    # A page on another site could open a socket that carries the user's cookie; the Origin
    # header gives it away.
    for transport in ("websocket", "polling"):
        hijack = browsers().login("alice@example.com", "alice pass")
        with pytest.raises(socketio.exceptions.ConnectionError):
            hijack.connect(transport, origin="http://evil.example")


def test_two_ui_processes_deliver_each_event_once(
    app, browsers, relay, redis_client, settings, alice
):
    second = live.EventRelay(
        app.extensions["socketio"], redis_client, f"jt:{streams.EVENTS}", "another-ui-process"
    )
    second.start()
    try:
        mine = browsers().login("alice@example.com", "alice pass").connect()
        wait_subscribed(redis_client, settings)
        for position_id in range(20):
            publish(redis_client, "position.marked", {"id": position_id, "user_id": alice[0].id})
        eventually(lambda: len(mine.events) >= 20, "twenty events")
        time.sleep(0.3)  # room for a duplicate to show up
        assert sorted(e["data"]["id"] for e in mine.events) == list(range(20))
        assert relay.sent + second.sent == 20
    finally:
        second.stop()


def test_events_a_dead_process_took_are_claimed_and_stale_ones_dropped(
    app, browsers, redis_client, settings, alice, monkeypatch
):
    stream = f"jt:{streams.EVENTS}"
    relay = live.EventRelay(app.extensions["socketio"], redis_client, stream, "survivor")
    relay.ensure_group()
    publish(redis_client, "position.closed", {"id": 1, "user_id": alice[0].id})
    # Another UI process read it, then died before acknowledging.
    assert redis_client.xreadgroup(live.GROUP, "dead", {stream: ">"}, count=10)
    mine = browsers().login("alice@example.com", "alice pass").connect()
    wait_subscribed(redis_client, settings)

    monkeypatch.setattr(live, "CLAIM_IDLE_MS", 0)
    relay.claim_abandoned()
    eventually(lambda: mine.events, "the claimed event")
    assert mine.types() == [("position.closed", 1)]

    monkeypatch.setattr(live, "MAX_AGE_MS", -1)  # everything is now too old to be worth sending
    publish(redis_client, "position.closed", {"id": 2, "user_id": alice[0].id})
    relay.step()
    assert redis_client.xpending(stream, live.GROUP)["pending"] == 0
    time.sleep(0.3)
    assert mine.types() == [("position.closed", 1)]


def test_unreadable_event_data_is_skipped_and_acknowledged(app, redis_client, alice):
    stream = f"jt:{streams.EVENTS}"
    relay = live.EventRelay(app.extensions["socketio"], redis_client, stream, "reader")
    relay.ensure_group()
    redis_client.xadd(stream, {"type": "position.opened", "data": "{not json"})
    redis_client.xadd(stream, {"type": "position.opened", "data": json.dumps([1, 2])})
    relay.step()
    assert relay.sent == 0
    assert redis_client.xpending(stream, live.GROUP)["pending"] == 0
