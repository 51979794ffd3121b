"""Account sync against the broker simulator's account socket: order outcomes, risk status,
reconnects and reconciliation, with real PostgreSQL and Redis."""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal

import pytest

from libs.common import streams
from libs.common.storage import db
from libs.common.storage.models import Account, OrderIntent, Subaccount, Trader
from libs.common.streams import SignalMessage
from libs.common.tradovate.accounts import (
    limiter_user,
    login,
    new_credentials,
)
from services.executor.account_sync import SyncTimings, start_account_sync
from services.executor.jobs import ExecutorContext
from services.position_engine.engine import PositionEngine
from simulators.tradovate.account_socket import AccountSocketServer
from tests.integration.tradovate_support import FRONT, PASSWORD, USER, connect_demo_account
from tests.polling import wait_for

GRACE_S = 1.0
FAST = SyncTimings(
    heartbeat_s=0.3,
    silence_s=3.0,
    backoff_base_s=0.2,
    backoff_max_s=1.0,
    refresh_s=0.3,
    grace_s=GRACE_S,
    debounce_s=0.2,
    check_every_s=0.5,
    settle_s=0.1,
    settle_window_s=5.0,
)


@pytest.fixture
def sock(broker):
    with AccountSocketServer(broker, heartbeat_interval_s=0.3, idle_timeout_s=1.5) as server:
        yield server


@pytest.fixture
def account(tv_settings, sessions, make_user):
    """A Tradovate demo account connected with API credentials, as POST /api/accounts does."""
    user = make_user()
    connected = connect_demo_account(tv_settings, sessions, user.id)
    return (
        user,
        connected.account_id,
        connected.subaccount_id,
        connected.broker_account_id,
        connected.account_spec,
    )


@pytest.fixture
def trader(make_recorder, account, sessions):
    user, _, subaccount_id, _, _ = account
    recorder = make_recorder(user=user, tp_ticks=20, sl_ticks=40)
    with db.transaction(sessions) as s:
        s.add(
            Trader(
                user_id=user.id,
                recorder_id=recorder.id,
                subaccount_id=subaccount_id,
                multiplier=Decimal(1),
            )
        )
    return recorder


@pytest.fixture
def ctx(tv_settings, redis_client):  # redis_client: the limiter's windows start empty
    return ExecutorContext(tv_settings)


@pytest.fixture
def sync(ctx, sock, account):
    """The sync running as the executor runs it, pointed at the simulator's account socket."""
    stop = threading.Event()
    syncer = start_account_sync(ctx, stop, socket_urls={"demo": sock.url}, timings=FAST, seed=7)
    stream = wait_for(lambda: (s := syncer.stream(account[1])) and s.syncs and s)
    yield stream
    stop.set()
    syncer.thread.join(15)


def events(redis_client, settings, event_type: str) -> list[dict]:
    return [
        json.loads(f["data"])
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == event_type
    ]


def intent_row(sessions, intent_id) -> OrderIntent:
    with sessions() as s:
        return s.get(OrderIntent, intent_id)


def risk_status(sessions, subaccount_id) -> str:
    with sessions() as s:
        return s.get(Subaccount, subaccount_id).risk_status


def manual_intent(sessions, account, **fields) -> uuid.UUID:
    user, _, subaccount_id, _, _ = account
    intent_id = uuid.uuid4()
    values = dict(
        kind="entry", symbol="MNQ", ticker=FRONT, side="buy", quantity=Decimal(1), priority="entry"
    )
    values.update(fields)
    with db.transaction(sessions) as s:
        s.add(
            OrderIntent(
                id=intent_id,
                user_id=user.id,
                subaccount_id=subaccount_id,
                source="manual",
                status="queued",
                cl_ord_id=f"jt-{intent_id.hex[:24]}",
                **values,
            )
        )
    return intent_id


def signal(settings, redis_client, sessions, recorder, action: str, price: str) -> None:
    engine = PositionEngine(settings, sessions, redis_client, consumer="engine-sync")
    engine.prepare()
    msg = SignalMessage(
        str(uuid.uuid4()),
        recorder.id,
        action,
        "MNQ1!",
        "MNQ",
        Decimal(price),
        None,
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), msg.to_fields())
    while engine.step(block_ms=None):
        pass


def test_the_sync_request_is_paid_from_the_background_share_and_heartbeats_keep_it_open(
    sync, ctx, account, broker, sock, sessions
):
    with sessions() as s:
        user = limiter_user(s.get(Account, account[1]))
    usage = ctx.limiter.usage(user)
    assert usage.background_used == 1 and usage.minute_used == 1
    assert [route for _, route in broker.requests_per_user[USER]].count("user/syncrequest") == 1
    time.sleep(2.0)  # longer than the server's idle timeout: only the client's `[]` keeps it open
    assert sock.idle_closes == 0 and sock.sync_requests == 1 and sock.heartbeats_received >= 4


def test_an_accepted_bracket_entry_becomes_filled_and_a_bracket_fill_is_recorded(
    sync, ctx, account, trader, tv_settings, redis_client, sessions, broker
):
    signal(tv_settings, redis_client, sessions, trader, "buy", "25640")
    ctx.sender.drain(account[2])
    with sessions() as s:
        [intent] = s.query(OrderIntent).all()
    wait_for(lambda: intent_row(sessions, intent.id).status == "filled")
    row = intent_row(sessions, intent.id)
    assert row.fill_price == Decimal("25640") and row.error is None
    [filled] = events(redis_client, tv_settings, "order.filled")
    assert filled["id"] == str(intent.id) and filled["fill_price"] == 25640
    # The snapshot had no contract for it: the name is looked up (background slot) at the check.
    wait_for(lambda: sync.positions() == {(account[2], FRONT): Decimal(1)})

    broker.set_price(FRONT, "25645.00")  # the take-profit child of the OSO fills at the broker
    [tp] = wait_for(lambda: events(redis_client, tv_settings, "order.bracket_filled"))
    assert tp["reason"] == "tp" and tp["fill_price"] == 25645 and tp["intent_id"] == str(intent.id)
    assert tp["subaccount_id"] == account[2] and tp["net_qty"] == 0
    assert tp["user_id"] == account[0].id  # the relay sends it to the owner's pages


def test_an_order_rejected_after_it_was_accepted_is_marked_rejected_with_the_reason(
    sync, ctx, account, tv_settings, redis_client, sessions, broker, sock
):
    # The simulator refuses orders only while answering the request; the later rejection of
    # §5.9 (CommandReport RiskRejected, then Order Rejected) is pushed through the socket's hook.
    intent_id = manual_intent(sessions, account, order_type="limit", limit_price=Decimal("25000"))
    ctx.sender.drain(account[2])
    order_id = int(intent_row(sessions, intent_id).broker_order_id)
    assert intent_row(sessions, intent_id).status == "accepted"
    command = next(c for c in broker.book.commands.values() if c["orderId"] == order_id)
    sock.push(
        account[3],
        "commandReport",
        "Created",
        {
            "id": 1,
            "commandId": command["id"],
            "commandStatus": "RiskRejected",
            "rejectReason": "MaxPosLimitReached",
            "text": "Max position limit reached",
        },
    )
    sock.push(
        account[3],
        "order",
        "Updated",
        {**broker.book.orders[order_id].json(), "ordStatus": "Rejected"},
    )
    wait_for(lambda: intent_row(sessions, intent_id).status == "rejected")
    assert "MaxPosLimitReached: Max position limit reached" in intent_row(sessions, intent_id).error
    assert [e["id"] for e in events(redis_client, tv_settings, "order.rejected")] == [
        str(intent_id)
    ]


def test_liquidate_only_at_the_broker_updates_the_subaccount(
    sync, account, tv_settings, redis_client, sessions, broker
):
    broker.set_risk_status(account[4], liquidate_only=True)
    wait_for(lambda: risk_status(sessions, account[2]) == "liquidate_only")
    [event] = events(redis_client, tv_settings, "account.risk_status")
    assert event["risk_status"] == "liquidate_only" and event["previous"] == "normal"


def test_a_dropped_socket_reconnects_and_resyncs_what_changed_meanwhile(
    sync, account, sessions, broker, sock
):
    sock.drop_all(abrupt=True)
    # Nobody is subscribed now: this change reaches the client only through the new snapshot.
    broker.set_risk_status(account[4], admin_action="LockTradingImmediately")
    wait_for(lambda: sync.syncs == 2)
    assert sock.sync_requests == 2
    wait_for(lambda: risk_status(sessions, account[2]) == "locked")


def test_a_position_opened_by_hand_raises_a_mismatch_after_the_grace_and_clears_when_closed(
    sync, ctx, account, trader, tv_settings, redis_client, sessions
):
    with sessions() as s:
        client = ctx.keeper.client_for(s, s.get(Account, account[1]))
    opened = time.monotonic()
    client.place_order(account[3], account[4], "Buy", FRONT, 1)  # at the broker, not from a signal
    raised = wait_for(
        lambda: [
            e for e in events(redis_client, tv_settings, "account.mismatch") if e["mismatches"]
        ]
    )
    assert time.monotonic() - opened >= GRACE_S  # fills lag orders: no alarm before the grace
    [gap] = raised[0]["mismatches"]
    assert (gap["subaccount_id"], gap["symbol"], gap["expected"], gap["actual"]) == (
        account[2],
        "MNQ",
        0,
        1,
    )
    stored = json.loads(redis_client.get(tv_settings.stream(f"reconcile:{account[1]}")))
    assert stored["mismatches"] == raised[0]["mismatches"]

    contract_id = client.contract_find(FRONT)["id"]
    client.liquidate_position(account[3], contract_id)
    wait_for(lambda: not events(redis_client, tv_settings, "account.mismatch")[-1]["mismatches"])
    assert (
        json.loads(redis_client.get(tv_settings.stream(f"reconcile:{account[1]}")))["mismatches"]
        == []
    )


def test_a_penalty_on_the_sync_request_pauses_the_user_then_it_syncs(
    ctx, account, broker, sock, sessions
):
    broker.penalize_next(1, p_time=1.0)  # the next request is the syncrequest
    stop = threading.Event()
    syncer = start_account_sync(ctx, stop, socket_urls={"demo": sock.url}, timings=FAST, seed=7)
    try:
        wait_for(lambda: (s := syncer.stream(account[1])) and s.syncs)
        with sessions() as s:
            usage = ctx.limiter.usage(limiter_user(s.get(Account, account[1])))
        assert sock.sync_requests == 2 and usage.penalties == 1 and usage.background_used == 2
    finally:
        stop.set()
        syncer.thread.join(15)


def test_the_simulated_account_socket_speaks_the_protocol(broker, sock, tv_settings, account):
    import websocket

    from libs.common.tradovate.frames import Messages, build_request, parse_frame

    _, token = login(
        tv_settings,
        "demo",
        new_credentials(USER, PASSWORD, "JustTrades", "1.0", "1234", "sim-api-secret"),
    )
    ws = websocket.create_connection(sock.url, timeout=5)
    try:
        assert ws.recv() == "o"
        ws.send(build_request("user/syncrequest", 1, "", {"users": [broker.user_ids[USER]]}))
        assert parse_frame(ws.recv()).items[0].s == 401  # nothing before authorize
        ws.send(build_request("authorize", 2, "", "not-a-token"))
        assert parse_frame(ws.recv()).items[0].s == 401
        ws.send(build_request("authorize", 3, "", token.access_token))
        assert parse_frame(ws.recv()).items[0].s == 200
        ws.send(build_request("user/syncrequest", 4, "", {"accounts": [account[3]]}))
        snapshot = parse_frame(ws.recv()).items[0].d
        assert {
            "users",
            "accounts",
            "accountRiskStatuses",
            "positions",
            "orders",
            "fills",
            "commands",
            "contracts",
            "cashBalances",
        } <= set(snapshot)
        assert [a["id"] for a in snapshot["accounts"]] == [account[3]]
        broker.set_risk_status(account[4], liquidate_only=True)
        frame = parse_frame(ws.recv())
        assert isinstance(frame, Messages) and frame.items[0].d["entityType"] == "accountRiskStatus"
        frames = [ws.recv()]
        while not frames[-1].startswith("c") and len(frames) < 20:
            frames.append(ws.recv())
        assert "h" in frames and frames[-1] == 'c[1000,"Inactivity"]'  # no `[]` sent: idle close
    finally:
        ws.close()
