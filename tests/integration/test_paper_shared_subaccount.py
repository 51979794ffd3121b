"""Two strategies on one paper subaccount (§4b): two recorders, a trader each on the same account,
the same contract. Each trader trades only its own part: its exit takes its contracts and its
protective orders and leaves the other's alone. Signals go through the real engine, RQ, the
executor and the paper broker on PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from libs.common import streams
from libs.common.storage.models import OrderIntent, PaperFill, PaperOrder, PaperPosition
from libs.common.streams import SignalMessage, TickMessage
from services.executor.upkeep import PaperBracketWatcher
from services.position_engine.engine import PositionEngine


@pytest.fixture
def position_engine(settings, sessions, redis_client):
    eng = PositionEngine(settings, sessions, redis_client, consumer="engine-shared")
    eng.prepare()
    return eng


@pytest.fixture
def desk(client, alice, paper):
    """Two recorders (stop and target 10 and 20 points away), a trader each on one subaccount."""
    _, key = alice
    traders = {}
    for name, tp, sl in (("fast", 40, 40), ("slow", 80, 80)):
        recorder = client.post(
            "/api/recorders", json={"name": name, "tp_ticks": tp, "sl_ticks": sl}, headers=key
        ).get_json()
        trader = client.post(
            "/api/traders",
            json={"recorder_id": recorder["id"], "subaccount_id": paper["id"]},
            headers=key,
        )
        assert trader.status_code == 201, trader.get_json()
        traders[name] = (recorder["id"], trader.get_json()["id"])
    return traders


@pytest.fixture
def send(settings, redis_client, position_engine, executor):
    """A signal through the engine at `price`, the last price set to it, the executor run."""

    def send(
        recorder_id: int, action: str, price: str, qty: str = "1", sl_price: str | None = None
    ) -> None:
        redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", price)
        msg = SignalMessage(
            str(uuid.uuid4()),
            recorder_id,
            action,
            "MNQ1!",
            "MNQ",
            Decimal(price),
            Decimal(qty),
            None,
            None,
            streams.now_ms(),
            "{}",
            sl_price=None if sl_price is None else Decimal(sl_price),
        )
        redis_client.xadd(settings.stream(streams.SIGNALS), msg.to_fields())
        while position_engine.step(block_ms=None):
            pass
        executor()

    return send


def net(sessions, subaccount_id) -> Decimal:
    with sessions() as s:
        [book] = s.scalars(
            select(PaperPosition).where(PaperPosition.subaccount_id == subaccount_id)
        ).all()
    return book.net_qty


def orders_of(sessions, trader_id) -> list[tuple[str, str, Decimal, Decimal]]:
    """(role, side, quantity, price) of the trader's working paper orders."""
    with sessions() as s:
        rows = s.scalars(
            select(PaperOrder)
            .where(PaperOrder.trader_id == trader_id, PaperOrder.status == "working")
            .order_by(PaperOrder.id)
        ).all()
    return [(o.role, o.side, o.quantity, o.price) for o in rows]


def sent(sessions) -> list[tuple[str, str, Decimal, Decimal | None, str]]:
    with sessions() as s:
        rows = s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)).all()
    return [(i.kind, i.side, i.quantity, i.position_quantity, i.status) for i in rows]


def test_closing_one_strategy_takes_only_its_contracts_and_its_bracket(desk, paper, send, sessions):
    (fast, fast_trader), (slow, slow_trader) = desk["fast"], desk["slow"]
    # Given both strategies long on one subaccount: 1 and 2 contracts
    send(fast, "buy", "25640", "1")
    send(slow, "buy", "25640", "2")
    assert net(sessions, paper["id"]) == 3
    assert orders_of(sessions, fast_trader) == [
        ("target", "sell", 1, Decimal("25650")),
        ("stop", "sell", 1, Decimal("25630")),
    ]
    slow_bracket = [
        ("target", "sell", 2, Decimal("25660")),
        ("stop", "sell", 2, Decimal("25620")),
    ]
    assert orders_of(sessions, slow_trader) == slow_bracket

    # When the fast one closes
    send(fast, "close", "25645")

    # Then exactly its contract is sold and its bracket cancelled; the slow one's stay
    assert sent(sessions)[-1] == ("reduce", "sell", 1, 0, "filled")
    assert net(sessions, paper["id"]) == 2
    assert orders_of(sessions, fast_trader) == []
    assert orders_of(sessions, slow_trader) == slow_bracket
    with sessions() as s:
        last = s.scalars(select(PaperFill).order_by(PaperFill.id.desc())).first()
    assert (last.trader_id, last.quantity, last.realized_pnl) == (fast_trader, 1, Decimal("10"))


def test_reversing_one_strategy_leaves_the_net_the_sum_of_both(desk, paper, send, sessions):
    (fast, fast_trader), (slow, slow_trader) = desk["fast"], desk["slow"]
    send(fast, "buy", "25640", "1")
    send(slow, "buy", "25640", "2")

    # When the fast one reverses to short 1
    send(fast, "sell", "25650", "1")

    # Then it sold its 1 and sold 1 more: long 2 + short 1
    assert sent(sessions)[-2:] == [
        ("reduce", "sell", 1, 0, "filled"),
        ("entry", "sell", 1, 1, "filled"),
    ]
    assert net(sessions, paper["id"]) == 1
    assert orders_of(sessions, fast_trader) == [
        ("target", "buy", 1, Decimal("25640")),
        ("stop", "buy", 1, Decimal("25660")),
    ]
    assert orders_of(sessions, slow_trader) == [
        ("target", "sell", 2, Decimal("25660")),
        ("stop", "sell", 2, Decimal("25620")),
    ]


def test_moving_one_strategys_stop_leaves_the_others_where_it_was(desk, paper, send, sessions):
    (fast, fast_trader), (slow, slow_trader) = desk["fast"], desk["slow"]
    send(fast, "buy", "25640", "1")
    send(slow, "buy", "25640", "2")

    send(fast, "update", "25644", sl_price="25641")

    assert sent(sessions)[-1][0::4] == ("move_stop", "filled")
    assert net(sessions, paper["id"]) == 3
    assert orders_of(sessions, fast_trader) == [
        ("target", "sell", 1, Decimal("25650")),
        ("stop", "sell", 1, Decimal("25641")),
    ]
    assert orders_of(sessions, slow_trader) == [
        ("target", "sell", 2, Decimal("25660")),
        ("stop", "sell", 2, Decimal("25620")),
    ]


def test_a_tick_fills_one_strategys_target_and_leaves_the_other_protected(
    desk, paper, send, sessions, settings, redis_client, executor
):
    (fast, fast_trader), (slow, slow_trader) = desk["fast"], desk["slow"]
    watcher = PaperBracketWatcher(executor.ctx, "paper-shared")
    watcher.prepare()
    send(fast, "buy", "25640", "1")
    send(slow, "buy", "25640", "2")

    redis_client.xadd(
        settings.stream(streams.TICKS),
        TickMessage("MNQ", Decimal("25651"), streams.now_ms()).to_fields(),
    )
    watcher.step(block_ms=None)

    fills = [
        json.loads(f["data"])
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == "order.bracket_filled"
    ]
    assert [(f["reason"], f["fill_price"], f["quantity"], f["net_qty"]) for f in fills] == [
        ("tp", 25650, 1, 2)
    ]
    assert net(sessions, paper["id"]) == 2
    assert orders_of(sessions, fast_trader) == []
    assert orders_of(sessions, slow_trader) == [
        ("target", "sell", 2, Decimal("25660")),
        ("stop", "sell", 2, Decimal("25620")),
    ]


def test_the_exit_of_an_entry_the_broker_refused_takes_none_of_the_other_strategys_contracts(
    client, alice, desk, paper, send, sessions
):
    (fast, _), (slow, slow_trader) = desk["fast"], desk["slow"]
    send(slow, "buy", "25640", "2")
    # Given the account's risk desk allows 2 contracts: the fast strategy's entry is refused
    answer = client.put(
        f"/api/subaccounts/{paper['id']}/risk", json={"max_contracts": 2}, headers=alice[1]
    )
    assert answer.status_code == 200, answer.get_json()
    send(fast, "buy", "25640", "1")
    refused = sent(sessions)[-1]
    assert refused[0] == "entry" and refused[4] == "rejected"
    with sessions() as s:
        error = s.scalars(select(OrderIntent.error).order_by(OrderIntent.sequence.desc())).first()
    assert "above its maximum of 2" in error

    # When the fast strategy closes the position it never got at the broker
    send(fast, "close", "25645")

    # Then nothing is sold: the slow strategy keeps its 2 contracts and its bracket
    assert sent(sessions)[-1][0] == "reduce" and sent(sessions)[-1][4] == "skipped"
    assert net(sessions, paper["id"]) == 2
    assert len(orders_of(sessions, slow_trader)) == 2
