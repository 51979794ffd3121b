"""The risk desk on a paper account (docs/contract.md §4c), end to end on PostgreSQL and Redis:
an open loss alone (ticks, no signal) breaches the daily loss limit; the subaccount is flattened
and locked; a new entry is skipped with the reason while another account's exit still goes out;
unlock answers 409; the lock lifts at the next trade date (the clock is the signal's time). On
Tradovate, the broker's own realized PnL judges the daily limits where it is below ours."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from libs.common import orders, streams
from libs.common.futures.exchange_calendar import add_business_days, trade_date
from libs.common.storage import db
from libs.common.storage.models import OrderIntent, PaperOrder, PaperPosition, Subaccount, Trader
from libs.common.streams import SignalMessage
from services.executor.risk_desk import RiskDesk
from services.position_engine.engine import PositionEngine
from tests.integration.test_account_sync import signal as tradovate_signal
from tests.integration.test_subaccount_view import view_of
from tests.integration.tradovate_support import FRONT
from tests.polling import wait_for


@pytest.fixture
def risk_engine(settings, sessions, redis_client):
    eng = PositionEngine(settings, sessions, redis_client, consumer="engine-risk")
    eng.prepare()
    return eng


@pytest.fixture
def second_paper(client, alice):
    account = client.post(
        "/api/accounts", json={"broker": "paper", "name": "Other"}, headers=alice[1]
    )
    return account.get_json()["subaccounts"][0]


def trader_on(client, alice, subaccount_id: int, name: str) -> int:
    recorder = client.post(
        "/api/recorders", json={"name": name, "tp_ticks": 400, "sl_ticks": 400}, headers=alice[1]
    ).get_json()
    answer = client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": subaccount_id},
        headers=alice[1],
    )
    assert answer.status_code == 201, answer.get_json()
    return recorder["id"]


def signal(settings, redis_client, engine, executor, recorder_id, action, price, at_ms=None):
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", price)
    message = SignalMessage(
        str(uuid.uuid4()),
        recorder_id,
        action,
        "MNQ1!",
        "MNQ",
        D(price),
        D(2),
        None,
        None,
        at_ms or streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), message.to_fields())
    while engine.step(block_ms=None):
        pass
    executor()


def events_of(redis_client, settings, kind):
    return [
        json.loads(f["data"])
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == kind
    ]


def test_an_open_loss_breaches_the_daily_limit_flattens_locks_and_lifts_next_trade_date(
    client, alice, paper, second_paper, settings, redis_client, sessions, risk_engine, executor
):
    locked_recorder = trader_on(client, alice, paper["id"], "MNQ on the funded account")
    other_recorder = trader_on(client, alice, second_paper["id"], "MNQ elsewhere")
    risk = client.put(
        f"/api/subaccounts/{paper['id']}/risk", json={"daily_loss_limit": 100}, headers=alice[1]
    )
    assert risk.status_code == 200, risk.get_json()
    signal(settings, redis_client, risk_engine, executor, locked_recorder, "buy", "25000")
    signal(settings, redis_client, risk_engine, executor, other_recorder, "buy", "25000")
    desk = RiskDesk(executor.ctx, executor.rq)
    assert desk.check_all() == []  # flat PnL: nothing to do

    # The price falls 24.75 points: 2 contracts × $2 × 24.75 = -$99.00, still inside the limit
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "24975.25")
    assert desk.check_all() == []
    # ... and a quarter point more: -$100.00 of open loss alone reaches it
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "24975")
    [lock] = desk.check_all()
    assert lock.event["rule"] == "daily_loss_limit" and lock.event["flattened"]
    executor()  # the flatten goes out
    with sessions() as s:
        book = s.scalar(select(PaperPosition).where(PaperPosition.subaccount_id == paper["id"]))
        working = s.scalars(
            select(PaperOrder).where(
                PaperOrder.subaccount_id == paper["id"], PaperOrder.status == "working"
            )
        ).all()
        sub = s.get(Subaccount, paper["id"])
    assert book.net_qty == 0 and working == []  # flat, its brackets cancelled
    next_day = add_business_days(trade_date(datetime.now(UTC)), 1)
    assert sub.locked_until == next_day
    [event] = events_of(redis_client, settings, "account.locked")
    assert event["user_id"] == alice[0].id and event["locked_until"] == next_day.isoformat()

    # Locked: unlock is refused, a new entry is skipped with the reason, the exit of the locked
    # recorder sends nothing (the broker holds none of it), another account's exit goes out.
    assert (
        client.post(f"/api/subaccounts/{paper['id']}/unlock", headers=alice[1]).status_code == 409
    )
    signal(settings, redis_client, risk_engine, executor, locked_recorder, "close", "24980")
    signal(settings, redis_client, risk_engine, executor, locked_recorder, "buy", "24980")
    signal(settings, redis_client, risk_engine, executor, other_recorder, "close", "24980")
    with sessions() as s:
        sent = s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)).all()
    on_locked = [(i.kind, i.source) for i in sent if i.subaccount_id == paper["id"]]
    assert on_locked == [("entry", "signal"), ("flatten", "risk")]
    assert [i.kind for i in sent if i.subaccount_id == second_paper["id"]] == ["entry", "close"]
    skipped = [e["message"] for e in events_of(redis_client, settings, "account.trader_skipped")]
    assert any("locked by its risk desk until" in m for m in skipped)

    # The next trade date: entries go out again (the engine's clock is the signal's time)
    monday_evening = datetime.combine(next_day, datetime.min.time(), UTC) + timedelta(hours=15)
    signal(
        settings,
        redis_client,
        risk_engine,
        executor,
        locked_recorder,
        "close",
        "24990",
        at_ms=int(monday_evening.timestamp() * 1000),
    )
    signal(
        settings,
        redis_client,
        risk_engine,
        executor,
        locked_recorder,
        "buy",
        "24990",
        at_ms=int(monday_evening.timestamp() * 1000) + 1,
    )
    with sessions() as s:
        kinds = [
            i.kind
            for i in s.scalars(
                select(OrderIntent)
                .where(OrderIntent.subaccount_id == paper["id"])
                .order_by(OrderIntent.sequence)
            )
        ]
    assert kinds == ["entry", "flatten", "entry"]


# -- Tradovate: the broker's own realized PnL, through the executor's account socket -----------


def test_a_broker_realized_loss_below_ours_breaches_the_daily_limit_on_tradovate(
    client,
    alice,
    tradovate,
    synced,
    ctx,
    make_recorder,
    sessions,
    tv_settings,
    redis_client,
    broker,
):
    risk = client.put(
        f"/api/subaccounts/{tradovate.subaccount_id}/risk",
        json={"daily_loss_limit": 20},
        headers=alice[1],
    )
    assert risk.status_code == 200, risk.get_json()
    recorder = make_recorder(user=alice[0], tp_ticks=20, sl_ticks=40)
    with db.transaction(sessions) as s:
        s.add(
            Trader(
                user_id=alice[0].id,
                recorder_id=recorder.id,
                subaccount_id=tradovate.subaccount_id,
                multiplier=D(1),
            )
        )
    tradovate_signal(tv_settings, redis_client, sessions, recorder, "buy", "25640")
    ctx.sender.drain(tradovate.subaccount_id)
    wait_for(lambda: len(view_of(client, alice, tradovate.subaccount_id)["working_orders"]) == 2)
    broker.set_price(FRONT, "25645.00")  # the take-profit fills: +$10 by our count and the broker's

    def broker_says(realized: float):
        def seen() -> dict | None:
            v = view_of(client, alice, tradovate.subaccount_id)
            cash = v["broker_cash"]
            return v if cash and cash["realized_pnl"] == realized and not v["positions"] else None

        return wait_for(seen)

    broker_says(10.0)
    desk = RiskDesk(ctx, orders.rq_connection(tv_settings.redis_url))
    assert desk.check_all() == []

    # Given the broker's charges take its realized PnL to -$25 while ours stays +$10
    broker.charge(tradovate.account_spec, "35")
    view = broker_says(-25.0)
    assert view["realized_pnl_today"] == 10.0
    assert view["room"]["daily_loss_limit"] == -5.0  # judged on the broker's lower figure

    # Then the risk desk locks the account on the broker's figure
    [lock] = desk.check_all()
    assert lock.event["rule"] == "daily_loss_limit"
    assert "net -$25.00" in lock.event["reason"]
    assert "as the broker reports it" in lock.event["reason"]  # not our own figure
