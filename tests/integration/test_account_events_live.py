"""Account events the executor produces reach their owner's pages: an `account.alert` from a
Tradovate lockout, and the account sync's `account.risk_status` and `account.mismatch`, go
through the real relay to the owner's Socket.IO client and to nobody else's."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from libs.common.storage import db
from libs.common.storage.models import Account, OrderIntent, Trader
from services.executor.account_sync import SyncTimings, start_account_sync
from services.executor.jobs import ExecutorContext
from services.ui import live
from simulators.tradovate.account_socket import AccountSocketServer
from tests.integration.live_support import (
    Browser,
    browser_factory,
    eventually,
    quick_websocket_close,
    relaying,
    serving,
    wait_subscribed,
)
from tests.integration.tradovate_support import FRONT, USER, connect_demo_account

FAST = SyncTimings(
    heartbeat_s=0.3,
    silence_s=3.0,
    backoff_base_s=0.2,
    backoff_max_s=1.0,
    refresh_s=0.3,
    grace_s=0.5,
    debounce_s=0.2,
    check_every_s=0.5,
    settle_s=0.1,
    settle_window_s=5.0,
)
ACCOUNT_EVENTS = ("account.alert", "account.risk_status", "account.mismatch")


@pytest.fixture(scope="module", autouse=True)
def quiet_queue_listeners() -> Iterator[None]:
    yield
    logging.getLogger("socketio.server").setLevel(logging.CRITICAL)  # see test_live_events


@pytest.fixture(autouse=True)
def quick_close(monkeypatch) -> None:
    quick_websocket_close(monkeypatch)


@pytest.fixture
def ctx(tv_settings, redis_client):
    return ExecutorContext(tv_settings)


@pytest.fixture
def browsers(app, tv_settings, redis_client) -> Iterator[Callable[[], Browser]]:
    with serving(app) as url, relaying(app, tv_settings), browser_factory(url) as make:
        yield make


def account_events(browser: Browser) -> list[tuple[str, dict]]:
    return [(e["type"], e["data"]) for e in browser.events if e["type"] in ACCOUNT_EVENTS]


def queue_entry(sessions, user_id: int, subaccount_id: int) -> uuid.UUID:
    intent_id = uuid.uuid4()
    with db.transaction(sessions) as s:
        s.add(
            OrderIntent(
                id=intent_id,
                user_id=user_id,
                subaccount_id=subaccount_id,
                source="manual",
                status="queued",
                cl_ord_id=f"jt-{intent_id.hex[:24]}",
                kind="entry",
                symbol="MNQ",
                ticker=FRONT,
                side="buy",
                quantity=Decimal(1),
                priority="entry",
            )
        )
    return intent_id


def test_a_lockout_alert_reaches_every_user_of_the_login_and_no_one_else(
    browsers, ctx, broker, tv_settings, redis_client, sessions, make_user, alice, bob
):
    carol = make_user(email="carol@example.com", password="carol pass")
    mine = connect_demo_account(tv_settings, sessions, alice[0].id)
    connect_demo_account(tv_settings, sessions, carol.id)  # the same Tradovate login
    sockets = {
        "alice": browsers().login("alice@example.com", "alice pass").connect(),
        "carol": browsers().login("carol@example.com", "carol pass").connect(),
        "bob": browsers().login("bob@example.com", "correct horse").connect(),
    }
    wait_subscribed(redis_client, tv_settings)

    broker.lock_out(60, USER)
    queue_entry(sessions, alice[0].id, mine.subaccount_id)
    ctx.sender.drain(mine.subaccount_id)

    for name in ("alice", "carol"):
        [alert] = eventually(lambda n=name: sockets[n].of_type("account.alert"), f"{name}'s alert")
        assert alert["broker_user"] == f"tradovate:demo:{broker.user_ids[USER]}"
        assert "locked" in alert["message"]
    assert sockets["alice"].of_type("account.alert")[0]["user_id"] == alice[0].id
    eventually(lambda: sockets["alice"].of_type("order.paused"), "alice's paused order")
    time.sleep(0.3)  # room for a stray event to reach bob
    assert sockets["bob"].events == [] and sockets["carol"].of_type("order.paused") == []


def test_the_account_syncs_risk_status_and_mismatch_reach_the_owner_only(
    browsers, ctx, broker, tv_settings, redis_client, sessions, make_recorder, alice, bob
):
    mine = connect_demo_account(tv_settings, sessions, alice[0].id)
    recorder = make_recorder(user=alice[0])
    with db.transaction(sessions) as s:  # a trader: the sync compares only where one trades
        s.add(
            Trader(
                user_id=alice[0].id,
                recorder_id=recorder.id,
                subaccount_id=mine.subaccount_id,
                multiplier=Decimal(1),
            )
        )
    owner = browsers().login("alice@example.com", "alice pass").connect()
    other = browsers().login("bob@example.com", "correct horse").connect("polling")
    wait_subscribed(redis_client, tv_settings)
    with AccountSocketServer(broker, heartbeat_interval_s=0.3, idle_timeout_s=1.5) as sock:
        stop = threading.Event()
        syncer = start_account_sync(ctx, stop, socket_urls={"demo": sock.url}, timings=FAST)
        try:
            eventually(lambda: (s := syncer.stream(mine.account_id)) and s.syncs, "the sync")
            with sessions() as s:
                client = ctx.keeper.client_for(s, s.get_one(Account, mine.account_id))
            client.place_order(mine.broker_account_id, mine.account_spec, "Buy", FRONT, 1)
            raised = eventually(
                lambda: [d for d in owner.of_type("account.mismatch") if d["mismatches"]],
                "the mismatch",
            )
            broker.set_risk_status(mine.account_spec, liquidate_only=True)
            [risk] = eventually(lambda: owner.of_type("account.risk_status"), "the risk status")
            assert (risk["user_id"], risk["subaccount_id"]) == (alice[0].id, mine.subaccount_id)
            assert risk["risk_status"] == "liquidate_only"
        finally:
            stop.set()
            syncer.thread.join(15)
    [gap] = raised[0]["mismatches"]
    assert raised[0]["user_id"] == alice[0].id and raised[0]["account_id"] == mine.account_id
    assert (gap["subaccount_id"], gap["symbol"], gap["expected"], gap["actual"]) == (
        mine.subaccount_id,
        "MNQ",
        0,
        1,
    )
    assert account_events(other) == [] and other.sio.connected
    assert live.route("account.mismatch", raised[0]) == live.Delivery(f"user:{alice[0].id}")
