"""The broker holds what the recorder holds (docs/contract.md §3b): one plan recorder traded on a
paper account and on a Tradovate account at the simulator, its legs and stop compared at every
step of the worked example — entry, break-even, leg 1 with the trail, the trail, the stop-out."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from libs.common import streams
from libs.common.storage.models import OrderIntent, PaperOrder, PaperPosition, Position
from libs.common.streams import SignalMessage, TickMessage
from services.executor.jobs import ExecutorContext
from services.executor.upkeep import PaperBracketWatcher
from services.position_engine.engine import PositionEngine
from tests.integration.exit_plan_support import WORKED_PLAN
from tests.integration.tradovate_support import FRONT, connect_demo_account

PLAN = WORKED_PLAN


@pytest.fixture
def desk(client, alice, tv_settings, sessions, redis_client, broker):
    """A plan recorder with a trader on a paper account and one on the Tradovate simulator."""
    user, key = alice
    recorder = client.post(
        "/api/recorders", json={"name": "MNQ plan", "exits": PLAN}, headers=key
    ).get_json()
    paper = client.post(
        "/api/accounts", json={"broker": "paper", "name": "Practice"}, headers=key
    ).get_json()["subaccounts"][0]
    tradovate = connect_demo_account(tv_settings, sessions, user.id)
    for subaccount_id in (paper["id"], tradovate.subaccount_id):
        trader = client.post(
            "/api/traders",
            json={"recorder_id": recorder["id"], "subaccount_id": subaccount_id},
            headers=key,
        )
        assert trader.status_code == 201, trader.get_json()
    engine = PositionEngine(tv_settings, sessions, redis_client, consumer="engine-plan")
    engine.prepare()
    ctx = ExecutorContext(tv_settings)
    watcher = PaperBracketWatcher(ctx, "paper-plan")
    watcher.prepare()
    return recorder, paper["id"], tradovate.subaccount_id, engine, ctx, watcher


def step(desk, settings, redis_client, broker, price: str) -> None:
    """One tick everywhere: the engine and the paper broker read it from the stream, the
    simulator trades at it; then the executor sends what the engine wrote."""
    _, paper_id, tradovate_id, engine, ctx, watcher = desk
    tick = TickMessage("MNQ", D(price), streams.now_ms(), "test")
    redis_client.xadd(settings.stream(streams.TICKS), tick.to_fields())
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", price)
    while engine.step(block_ms=None):
        pass
    watcher.step(block_ms=None)
    broker.set_price(FRONT, price)
    for subaccount_id in (paper_id, tradovate_id):
        ctx.sender.drain(subaccount_id)


def recorder_view(sessions, recorder_id) -> tuple[list[tuple[D, D]], D | None]:
    """The open position's legs with contracts (level, allotted) and its stop."""
    with sessions() as s:
        position = s.scalar(
            select(Position).where(Position.recorder_id == recorder_id, Position.status == "open")
        )
    if position is None:
        return [], None
    legs = [
        (D(t["level"]), D(t["allotted"]))
        for t in position.plan_state["targets"]
        if D(t["allotted"]) > 0
    ]
    return legs, position.sl_price


def paper_view(sessions, subaccount_id) -> tuple[list[tuple[D, D]], D | None]:
    """The working paper targets (price, qty) and the one stop level all working stops share."""
    with sessions() as s:
        book = s.scalar(select(PaperPosition).where(PaperPosition.subaccount_id == subaccount_id))
        working = s.scalars(
            select(PaperOrder).where(
                PaperOrder.subaccount_id == subaccount_id, PaperOrder.status == "working"
            )
        ).all()
    if book is None or book.net_qty == 0:
        return [], None
    legs = sorted((o.price, o.quantity) for o in working if o.role == "target")
    stops = {o.price for o in working if o.role == "stop"}
    assert len(stops) <= 1, f"the paper stops disagree: {stops}"
    return legs, (stops.pop() if stops else None)


def simulator_view(broker) -> tuple[list[tuple[D, D]], D | None]:
    """Working targets (price, qty) and the one stop level all working stops share."""
    with broker.lock:
        working = [o for o in broker.book.orders.values() if o.status == "Working"]
    legs = sorted((D(o.spec.price), D(o.spec.qty)) for o in working if o.spec.order_type == "Limit")
    stops = {D(o.spec.stop_price) for o in working if o.spec.order_type == "Stop"}
    assert len(stops) <= 1, f"the simulator's stops disagree: {stops}"
    return legs, (stops.pop() if stops else None)


def test_paper_and_tradovate_hold_the_recorders_legs_and_stop_at_every_step(
    desk, tv_settings, redis_client, sessions, broker
):
    recorder, paper_id, _, engine, ctx, _ = desk
    redis_client.hset(tv_settings.stream(streams.LAST_PRICE), "MNQ", "25000")
    broker.set_price(FRONT, "25000")
    signal = SignalMessage(
        str(uuid.uuid4()),
        recorder["id"],
        "buy",
        "MNQ1!",
        "MNQ",
        D(25000),
        D(2),
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(tv_settings.stream(streams.SIGNALS), signal.to_fields())
    step(desk, tv_settings, redis_client, broker, "25000")

    expected = {
        "entry": ([(D("25005"), 1), (D("25010"), 1)], D("24990")),
        "25004": ([(D("25005"), 1), (D("25010"), 1)], D("25000.5")),  # break-even
        "25006": ([(D("25010"), 1)], D("25003")),  # leg 1 filled, trailing
        "25007": ([(D("25010"), 1)], D("25004")),
        "25003.75": ([], None),  # stopped out at 25004 everywhere
    }
    for price, want in expected.items():
        if price != "entry":
            step(desk, tv_settings, redis_client, broker, price)
        assert recorder_view(sessions, recorder["id"]) == want, price
        assert paper_view(sessions, paper_id) == want, price
        assert simulator_view(broker) == want, price

    with sessions() as s:
        sent = s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)).all()
        closed = s.scalar(select(Position).where(Position.recorder_id == recorder["id"]))
        book = s.scalar(select(PaperPosition).where(PaperPosition.subaccount_id == paper_id))
    assert {i.status for i in sent} <= {"accepted", "filled", "skipped"}, [
        (i.kind, i.status, i.error) for i in sent
    ]
    assert [i.kind for i in sent if i.subaccount_id == paper_id] == ["entry"] + ["move_stop"] * 3
    assert {i.ticker for i in sent} == {"MNQ1!"}  # stop moves name the contract the entry traded
    assert (closed.exit_reason, closed.realized_pnl) == ("trail", 18)
    assert book.realized_pnl == 18  # leg 1 +10, the trailed stop +8: the recorder's figure
    with broker.lock:
        assert sum(p.net_pos for p in broker.book.positions.values()) == 0
