"""Live updates: a `jt:events` entry reaches its owner's Socket.IO connection and nobody else's.

The app runs in a real HTTP server with real WebSockets (werkzeug, threaded) and the Redis
message queue; the sockets are python-socketio clients logged in with a session cookie.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest
import socketio

from libs.common import streams
from services.ui import live
from tests.integration.live_support import (
    Browser,
    browser_factory,
    eventually,
    publish,
    quick_websocket_close,
    relaying,
    serving,
    wait_subscribed,
)


@pytest.fixture(scope="module", autouse=True)
def quiet_queue_listeners() -> Iterator[None]:
    yield
    # Each test app's message-queue listener thread lives until the process ends (python-socketio
    # has no way to stop it); once the embedded Redis stops, it would log reconnect errors.
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)


@pytest.fixture(autouse=True)
def quick_close(monkeypatch) -> None:
    quick_websocket_close(monkeypatch)


@pytest.fixture
def server(app) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def relay(app, settings, redis_client) -> Iterator[live.EventRelay]:
    with relaying(app, settings) as started:
        yield started


@pytest.fixture
def browsers(server) -> Iterator[Callable[[], Browser]]:
    with browser_factory(server) as make:
        yield make


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
