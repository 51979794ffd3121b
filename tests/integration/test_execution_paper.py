"""Signals placed on a paper account: the engine's outbox, RQ, the executor, the paper broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from libs.common import orders, streams
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.rolls import front_contract
from libs.common.storage import db
from libs.common.storage.models import (
    OrderIntent,
    PaperFill,
    PaperOrder,
    PaperPosition,
    Subaccount,
    Trader,
)
from libs.common.streams import SignalMessage, TickMessage
from services.executor.upkeep import PaperBracketWatcher, sweep
from services.position_engine.engine import PositionEngine


@pytest.fixture
def recorder_of_alice(client, alice):
    body = {"name": "MNQ", "tp_ticks": 20, "sl_ticks": 40}
    return client.post("/api/recorders", json=body, headers=alice[1]).get_json()


@pytest.fixture
def position_engine(settings, sessions, redis_client):
    eng = PositionEngine(settings, sessions, redis_client, consumer="engine-test")
    eng.prepare()
    return eng


def signal(
    settings, redis_client, position_engine, recorder_id, action, price, qty=1, ticker="MNQ1!"
):
    msg = SignalMessage(
        str(uuid.uuid4()),
        recorder_id,
        action,
        ticker,
        "MNQ",
        Decimal(str(price)),
        Decimal(qty),
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), msg.to_fields())
    while position_engine.step(block_ms=None):
        pass


def set_price(settings, redis_client, price, symbol="MNQ"):
    redis_client.hset(settings.stream(streams.LAST_PRICE), symbol, str(price))


def intents(sessions):
    with sessions() as s:
        return s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)).all()


def book(sessions, subaccount_id):
    with sessions() as s:
        return s.scalars(
            select(PaperPosition).where(PaperPosition.subaccount_id == subaccount_id)
        ).all()


def working_orders(sessions, subaccount_id) -> list[tuple[int | None, str, str, Decimal, Decimal]]:
    """(trader, role, side, quantity, price) of the subaccount's working paper orders."""
    with sessions() as s:
        rows = s.scalars(
            select(PaperOrder)
            .where(PaperOrder.subaccount_id == subaccount_id, PaperOrder.status == "working")
            .order_by(PaperOrder.id)
        ).all()
    return [(o.trader_id, o.role, o.side, o.quantity, o.price) for o in rows]


def test_signals_become_paper_orders_in_sequence(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    _, key = alice
    trader = client.post(
        "/api/traders",
        json={
            "recorder_id": recorder_of_alice["id"],
            "subaccount_id": paper["id"],
            "multiplier": 2,
        },
        headers=key,
    )
    assert trader.status_code == 201, trader.get_json()
    set_price(settings, redis_client, "25641.25")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    signal(
        settings, redis_client, position_engine, recorder_of_alice["id"], "sell", 25650
    )  # reverse
    queued = intents(sessions)
    assert [(i.kind, i.side, i.quantity, i.status) for i in queued] == [
        ("entry", "buy", 2, "queued"),
        ("close", "sell", 0, "queued"),
        ("entry", "sell", 2, "queued"),
    ]
    assert queued[0].tp_price == Decimal("25645") and queued[0].sl_price == Decimal("25630")

    executor()
    done = intents(sessions)
    assert [i.status for i in done] == ["filled", "filled", "filled"]
    front = front_contract("MNQ", trade_date(datetime.now(UTC)))  # MNQZ6 in late November 2026
    assert {i.contract for i in done} == {front}
    assert done[0].sent_at <= done[1].sent_at <= done[2].sent_at  # the subaccount's sequence
    [position] = book(sessions, paper["id"])
    assert position.net_qty == -2 and position.avg_price == Decimal("25641.25")
    trader_id = trader.get_json()["id"]
    assert working_orders(sessions, paper["id"]) == [  # the long's bracket went with the close
        (trader_id, "target", "buy", 2, Decimal("25645")),
        (trader_id, "stop", "buy", 2, Decimal("25660")),
    ]
    with sessions() as s:
        fills = s.scalars(select(PaperFill).order_by(PaperFill.id)).all()
    assert [(f.side, f.quantity, f.price, f.realized_pnl) for f in fills] == [
        ("buy", 2, Decimal("25641.25"), 0),
        ("sell", 2, Decimal("25641.25"), 0),
        ("sell", 2, Decimal("25641.25"), 0),
    ]

    orders_api = client.get(
        f"/api/orders?trader_id={trader.get_json()['id']}", headers=key
    ).get_json()["orders"]
    assert [o["status"] for o in orders_api] == ["filled"] * 3
    types = [f["type"] for _, f in redis_client.xrange(settings.stream(streams.EVENTS))]
    assert types.count("order.filled") == 3


def test_paper_bracket_fills_at_its_level_when_a_tick_reaches_it(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=alice[1],
    )
    watcher = PaperBracketWatcher(executor.ctx, "paper-test")
    watcher.prepare()
    set_price(settings, redis_client, "25640")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    executor()
    redis_client.xadd(
        settings.stream(streams.TICKS),
        TickMessage("MNQ", Decimal("25646"), streams.now_ms()).to_fields(),
    )
    watcher.step(block_ms=None)
    [position] = book(sessions, paper["id"])
    assert position.net_qty == 0 and position.realized_pnl == Decimal("10")  # 5 points × $2
    events = [
        (f["type"], json.loads(f["data"]))
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
    ]
    [(_, fill)] = [e for e in events if e[0] == "order.bracket_filled"]
    assert fill["reason"] == "tp" and fill["fill_price"] == 25645 and fill["quantity"] == 1
    assert fill["user_id"] == alice[0].id  # the relay sends it to the owner's pages
    assert working_orders(sessions, paper["id"]) == []  # the stop went with its target
    with sessions() as s:
        [_, exit_fill] = s.scalars(select(PaperFill).order_by(PaperFill.id)).all()
    assert (exit_fill.price, exit_fill.realized_pnl) == (Decimal("25645"), Decimal("10"))
    assert exit_fill.order_id is not None


def test_a_limit_entry_rests_until_a_tick_reaches_it_then_its_bracket_is_placed(
    client, alice, paper, settings, redis_client, executor, sessions
):
    _, key = alice
    watcher = PaperBracketWatcher(executor.ctx, "paper-test")
    watcher.prepare()
    set_price(settings, redis_client, "25640")
    answer = client.post(
        "/api/manual-trade",
        json={
            "subaccount_id": paper["id"],
            "action": "buy",
            "ticker": "MNQ1!",
            "quantity": 2,
            "order_type": "limit",
            "limit_price": 25630,
            "tp_ticks": 20,
            "sl_ticks": 20,
        },
        headers=key,
    )
    assert answer.status_code == 202, answer.get_json()
    executor()
    [intent] = intents(sessions)
    assert (intent.status, intent.error) == ("accepted", None)
    assert working_orders(sessions, paper["id"]) == [(None, "entry", "buy", 2, Decimal("25630"))]
    assert [b.net_qty for b in book(sessions, paper["id"])] == [0]

    for price in ("25635", "25629.5"):
        redis_client.xadd(
            settings.stream(streams.TICKS),
            TickMessage("MNQ", Decimal(price), streams.now_ms()).to_fields(),
        )
    watcher.step(block_ms=None)

    [intent] = intents(sessions)
    assert (intent.status, intent.fill_price) == ("filled", Decimal("25630"))
    [position] = book(sessions, paper["id"])
    assert (position.net_qty, position.avg_price) == (2, Decimal("25630"))
    tp, sl = intent.tp_price, intent.sl_price
    assert working_orders(sessions, paper["id"]) == [
        (None, "target", "sell", 2, tp),
        (None, "stop", "sell", 2, sl),
    ]
    events = [
        (f["type"], json.loads(f["data"]))
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
    ]
    filled = [d for t, d in events if t == "order.filled"]
    assert [d["id"] for d in filled] == [str(intent.id)]
    [entry] = [d for t, d in events if t == "order.bracket_filled"]
    assert (entry["reason"], entry["fill_price"], entry["quantity"]) == ("entry", 25630, 2)


def test_no_price_rejects_the_order_with_the_reason(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=alice[1],
    )
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    executor()
    [intent] = intents(sessions)
    assert intent.status == "rejected" and "no price for MNQ" in intent.error


def test_an_interrupted_send_is_not_filled_twice(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=alice[1],
    )
    set_price(settings, redis_client, "25640")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    with db.transaction(sessions) as s:  # a worker claimed it, then died before the answer
        [intent] = s.scalars(select(OrderIntent)).all()
        intent.status, intent.attempts, intent.sent_at = (
            "sending",
            1,
            datetime(2026, 1, 1, tzinfo=UTC),
        )
    orders.order_queue(executor.rq, settings.stream_prefix + orders.QUEUE_ENTRIES).empty()
    assert sweep(executor.ctx, executor.rq) == 1  # the sweep hands the stuck intent over
    executor()
    [intent] = intents(sessions)
    assert (intent.status, intent.attempts) == ("filled", 2)
    [position] = book(sessions, paper["id"])
    assert position.net_qty == 1


def test_entries_wait_outside_the_window_but_exits_go_out(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    trader = client.post(
        "/api/traders",
        json={
            "recorder_id": recorder_of_alice["id"],
            "subaccount_id": paper["id"],
            "window": {"start": "00:00", "end": "00:01", "tz": "Pacific/Kiritimati"},
        },
        headers=alice[1],
    ).get_json()
    set_price(settings, redis_client, "25640")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    assert intents(sessions) == []
    events = [
        (f["type"], json.loads(f["data"]))
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
    ]
    [(_, note)] = [e for e in events if e[0] == "account.trader_skipped"]
    assert note["trader_id"] == trader["id"] and "window" in note["message"]


def test_a_liquidate_only_account_gets_no_entries(
    client, alice, paper, recorder_of_alice, settings, redis_client, position_engine, sessions
):
    client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=alice[1],
    )
    with db.transaction(sessions) as s:
        s.get(Subaccount, paper["id"]).risk_status = "liquidate_only"
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    assert intents(sessions) == []


def test_daily_loss_limit_flattens_and_pauses_the_trader(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    trader = client.post(
        "/api/traders",
        json={
            "recorder_id": recorder_of_alice["id"],
            "subaccount_id": paper["id"],
            "daily_loss_limit": 15,
        },
        headers=alice[1],
    ).get_json()
    set_price(settings, redis_client, "25640")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "close", 25630)  # −$20
    kinds = [(i.kind, i.source) for i in intents(sessions)]
    assert kinds == [("entry", "signal"), ("close", "signal"), ("close", "guard")]
    with sessions() as s:
        paused = s.get(Trader, trader["id"])
    assert (
        paused.disabled_until is not None and "daily loss limit of $15.00" in paused.disabled_reason
    )
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25630)
    assert len(intents(sessions)) == 3  # no entry while paused
    view = client.get(f"/api/traders/{trader['id']}", headers=alice[1]).get_json()
    assert view["paused_until"] == paused.disabled_until.isoformat()


def test_traders_are_private_and_validated(client, alice, bob, paper, recorder_of_alice):
    answer = client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=bob[1],
    )
    assert answer.status_code == 404
    answer = client.post(
        "/api/traders",
        json={
            "recorder_id": recorder_of_alice["id"],
            "subaccount_id": paper["id"],
            "multiplier": 0,
        },
        headers=alice[1],
    )
    assert answer.status_code == 422 and "multiplier" in answer.get_json()["error"]
    assert client.get("/api/accounts", headers=bob[1]).get_json()["accounts"] == []


def test_manual_trade_with_bracket_is_copied_to_followers(
    client, alice, settings, redis_client, executor, sessions
):
    _, key = alice
    leader, follower = (
        client.post("/api/accounts", json={"broker": "paper", "name": n}, headers=key).get_json()[
            "subaccounts"
        ][0]
        for n in ("Leader", "Follower")
    )
    group = client.post(
        "/api/copy-groups",
        json={
            "leader_subaccount_id": leader["id"],
            "followers": [{"subaccount_id": follower["id"], "multiplier": 3}],
        },
        headers=key,
    )
    assert group.status_code == 201, group.get_json()
    set_price(settings, redis_client, "6900.25", symbol="ES")
    answer = client.post(
        "/api/manual-trade",
        json={
            "subaccount_id": leader["id"],
            "action": "buy",
            "ticker": "ES1!",
            "quantity": 2,
            "tp_ticks": 8,
            "sl_ticks": 4,
        },
        headers=key,
    )
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert (body["order"]["tp_price"], body["order"]["sl_price"]) == (6902.25, 6899.25)
    assert [(c["subaccount_id"], c["quantity"], c["source"]) for c in body["copies"]] == [
        (follower["id"], 6, "copy")
    ]
    executor()
    assert [b.net_qty for b in book(sessions, leader["id"])] == [2]
    assert [b.net_qty for b in book(sessions, follower["id"])] == [6]


def test_kill_switch_switches_traders_off_and_flattens_every_subaccount(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    _, key = alice
    trader = client.post(
        "/api/traders",
        json={"recorder_id": recorder_of_alice["id"], "subaccount_id": paper["id"]},
        headers=key,
    ).get_json()
    set_price(settings, redis_client, "25640")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    executor()
    assert [b.net_qty for b in book(sessions, paper["id"])] == [1]
    answer = client.post("/api/control/flatten-all", headers=key)
    assert answer.status_code == 202 and answer.get_json()["traders_switched_off"] == 1
    executor()
    assert [b.net_qty for b in book(sessions, paper["id"])] == [0]
    assert client.get(f"/api/traders/{trader['id']}", headers=key).get_json()["enabled"] is False


def test_manual_trade_input_is_checked_and_changes_nothing(client, alice, bob, paper, sessions):
    _, key = alice
    bad = [
        ({"subaccount_id": paper["id"], "action": "hold", "ticker": "MNQ1!"}, 422, "action"),
        ({"subaccount_id": paper["id"], "action": "buy"}, 422, "ticker is required"),
        (
            {"subaccount_id": paper["id"], "action": "buy", "ticker": "MNQ1!", "quantity": 0},
            422,
            "quantity",
        ),
        (
            {
                "subaccount_id": paper["id"],
                "action": "buy",
                "ticker": "MNQ1!",
                "order_type": "limit",
            },
            422,
            "limit_price",
        ),
        (
            {"subaccount_id": paper["id"], "action": "buy", "ticker": "MNQ1!", "tp_ticks": 4},
            422,
            "no last price",
        ),
    ]
    for body, status, words in bad:
        answer = client.post("/api/manual-trade", json=body, headers=key)
        assert answer.status_code == status and words in answer.get_json()["error"], (
            body,
            answer.get_json(),
        )
    other = client.post(
        "/api/manual-trade",
        json={"subaccount_id": paper["id"], "action": "flatten"},
        headers=bob[1],
    )
    assert other.status_code == 404
    assert intents(sessions) == []


def test_the_end_of_the_trading_window_flattens_once(
    client,
    alice,
    paper,
    recorder_of_alice,
    settings,
    redis_client,
    position_engine,
    executor,
    sessions,
):
    _, key = alice
    client.post(
        "/api/traders",
        json={
            "recorder_id": recorder_of_alice["id"],
            "subaccount_id": paper["id"],
            "window": {"start": "00:00", "end": "23:59", "tz": "UTC"},
        },
        headers=key,
    )
    set_price(settings, redis_client, "25640")
    signal(settings, redis_client, position_engine, recorder_of_alice["id"], "buy", 25640)
    executor()
    assert [b.net_qty for b in book(sessions, paper["id"])] == [1]
    at_end = datetime.now(UTC).replace(hour=23, minute=59, second=30)
    assert position_engine.check_trading_windows(at_end) == 1
    assert position_engine.check_trading_windows(at_end) == 0  # once per trade date
    executor()
    assert [b.net_qty for b in book(sessions, paper["id"])] == [0]
    assert [(i.kind, i.source, i.status) for i in intents(sessions)][-1] == (
        "close",
        "guard",
        "filled",
    )
    events = [f["type"] for _, f in redis_client.xrange(settings.stream(streams.EVENTS))]
    assert "account.trader_flattened" in events
