"""The UI on a Redis Cluster: live updates through a message queue on one node (PUBLISH reaches
every node), login throttling and login sockets whose keys sit in different slots."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from services.ui import live
from services.ui.app import create_app
from tests.e2e.conftest import run_cli_in
from tests.integration.live_support import (
    browser_factory,
    eventually,
    publish,
    quick_websocket_close,
    relaying,
    serving,
    wait_subscribed,
)

ALICE = {"email": "alice@example.com", "password": "alice pass"}


@pytest.fixture(scope="module", autouse=True)
def quiet_queue_listeners() -> Iterator[None]:
    yield
    # python-socketio's listener threads outlive the test apps; once the cluster stops, they
    # would log reconnect errors.
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)


@pytest.fixture(autouse=True)
def quick_close(monkeypatch) -> None:
    quick_websocket_close(monkeypatch)


@pytest.fixture
def alice(make_user):
    return make_user(**ALICE)


@pytest.fixture
def app(cluster_settings, sessions):
    return create_app(cluster_settings, sessions=sessions)


def subscribed(redis_cluster, settings) -> None:
    with redis_cluster.node(0) as node:  # the node REDIS_URL names: where the queue subscribes
        wait_subscribed(node, settings)


def test_events_and_messages_published_on_any_node_reach_the_users_socket(
    app, cluster_settings, cluster_client, redis_cluster, alice
):
    with serving(app) as url, relaying(app, cluster_settings), browser_factory(url) as browsers:
        mine = browsers().login(**ALICE).connect()
        subscribed(redis_cluster, cluster_settings)

        # When the engine writes an event to jt:events on the cluster
        publish(cluster_client, "position.opened", {"id": 7, "user_id": alice.id})
        # Then the relay's emit goes through the message queue to alice's socket
        eventually(lambda: mine.types() == [("position.opened", 7)], "the relayed event")

        # When another process emits through a different node of the cluster
        outside = live._QueueFromOutside(
            redis_cluster.node_url(2),
            channel=cluster_settings.stream(live.CHANNEL),
            write_only=True,
        )
        outside.emit(
            live.SOCKET_EVENT,
            {"type": "position.closed", "data": {"id": 7}},
            room=live.user_room(alice.id),
        )
        # Then the cluster carried the PUBLISH to the node the UI subscribed on
        eventually(lambda: ("position.closed", 7) in mine.types(), "the message from node 2")


def test_a_password_reset_closes_every_socket_of_the_users_logins(
    app, cluster_settings, redis_cluster, alice
):
    with serving(app) as url, browser_factory(url) as browsers:
        # Given alice logged in twice (two logins: their socket lists sit in different slots)
        sockets = [browsers().login(**ALICE).connect() for _ in range(2)]
        subscribed(redis_cluster, cluster_settings)

        # When the operator sets her password with the CLI, REDIS_URL naming the cluster
        done = run_cli_in(
            cli_env(cluster_settings),
            "user",
            "password",
            ALICE["email"],
            "--password",
            "a new long passphrase",
        )
        assert done.returncode == 0, done.stderr
        assert "ended 2 browser session(s)" in done.stdout

        # Then both sockets are closed by the UI process that holds them
        eventually(lambda: not any(s.sio.connected for s in sockets), "both sockets to close")


def cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_REDIS_URL": settings.queue_redis_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": settings.encryption_key,
        "JT_VAR_DIR": str(settings.var_dir),
        "JT_STREAM_PREFIX": settings.stream_prefix,
    }


def test_five_wrong_passwords_lock_the_login_on_a_cluster(app, alice):
    # The three failure counters (email+address, address, email) sit in different slots
    client = app.test_client()
    wrong = {**ALICE, "password": "guess"}
    assert [client.post("/login", json=wrong).status_code for _ in range(5)] == [401] * 5
    locked = client.post("/login", json=ALICE)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.get_json()["error"]
