"""Exit plans on a paper account: target legs working as one OCO group each (the leg's limit and
a stop), filled one by one as ticks reach them, and a stop the engine moves (docs/contract.md §3b).
The intents are written here as the engine writes them; the executor, RQ, PostgreSQL and Redis
are real."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from libs.common import orders, streams
from libs.common.storage import db
from libs.common.storage.models import OrderIntent, PaperOrder, PaperPosition
from libs.common.streams import TickMessage
from services.executor.brokers import Ticket
from services.executor.paper import PaperBroker, working_symbols
from services.executor.upkeep import PaperBracketWatcher


@pytest.fixture
def watcher(executor):
    w = PaperBracketWatcher(executor.ctx, "paper-plans-test")
    w.prepare()
    return w


@pytest.fixture
def place(alice, paper, sessions, settings, executor):
    """Write one intent as the engine would, hand it to RQ, and let the executor send it."""

    def place(kind: str, side: str, quantity: str = "0", **fields) -> OrderIntent:
        intent_id = uuid.uuid4()
        priority = "entry" if kind in ("entry", "add") else "exit"
        with db.transaction(sessions) as s:
            s.add(
                OrderIntent(
                    id=intent_id,
                    user_id=alice[0].id,
                    subaccount_id=paper["id"],
                    source="signal",
                    kind=kind,
                    symbol="MNQ",
                    ticker="MNQ1!",
                    side=side,
                    quantity=Decimal(quantity),
                    priority=priority,
                    cl_ord_id=orders.client_order_id(intent_id),
                    **fields,
                )
            )
        orders.enqueue(
            executor.rq,
            settings.stream_prefix,
            [orders.QueuedIntent(intent_id, paper["id"], priority)],
        )
        executor()
        with sessions() as s:
            return s.get_one(OrderIntent, intent_id)

    return place


def plan(entry: str, *legs: tuple[str, str]) -> dict:
    return {"entry_price": entry, "legs": [{"price": p, "qty": q} for p, q in legs]}


def set_price(settings, redis_client, price: str) -> None:
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", price)


def tick(settings, redis_client, watcher, *prices: str) -> None:
    for price in prices:
        redis_client.xadd(
            settings.stream(streams.TICKS),
            TickMessage("MNQ", Decimal(price), streams.now_ms()).to_fields(),
        )
    watcher.step(block_ms=None)


def the_book(sessions, subaccount_id) -> PaperPosition | None:
    with sessions() as s:
        return s.scalar(select(PaperPosition).where(PaperPosition.subaccount_id == subaccount_id))


def working(sessions, subaccount_id, role: str) -> list[tuple[Decimal, Decimal]]:
    """(price, quantity) of the subaccount's working orders of one role, oldest first."""
    with sessions() as s:
        rows = s.scalars(
            select(PaperOrder)
            .where(
                PaperOrder.subaccount_id == subaccount_id,
                PaperOrder.status == "working",
                PaperOrder.role == role,
            )
            .order_by(PaperOrder.id)
        ).all()
    return [(o.price, o.quantity) for o in rows]


def bracket_fills(settings, redis_client) -> list[dict]:
    return [
        json.loads(f["data"])
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == "order.bracket_filled"
    ]


def test_legs_fill_one_by_one_and_a_moved_stop_closes_the_rest_at_its_new_level(
    alice, paper, settings, redis_client, sessions, watcher, place
):
    # Given a long of 4 MNQ with three target legs and a stop
    set_price(settings, redis_client, "25000")
    entry = place(
        "entry",
        "buy",
        "4",
        tp_price=Decimal("25005"),
        sl_price=Decimal("24990"),
        targets=plan("25000", ("25005", "1"), ("25010", "1"), ("25020", "2")),
    )
    assert entry.status == "filled" and entry.fill_price == Decimal("25000")
    assert the_book(sessions, paper["id"]).net_qty == 4
    assert working(sessions, paper["id"], "target") == [
        (Decimal("25005"), 1),
        (Decimal("25010"), 1),
        (Decimal("25020"), 2),
    ]
    assert working(sessions, paper["id"], "stop") == [
        (Decimal("24990"), 1),
        (Decimal("24990"), 1),
        (Decimal("24990"), 2),
    ]

    # When a tick runs through the first two legs
    tick(settings, redis_client, watcher, "25004.75", "25013")

    # Then each fills at its own level, one event per leg with its quantity
    fills = bracket_fills(settings, redis_client)
    assert [(f["reason"], f["fill_price"], f["quantity"], f["net_qty"]) for f in fills] == [
        ("tp", 25005, 1, 3),
        ("tp", 25010, 1, 2),
    ]
    assert fills[-1]["realized_pnl"] == 30 and fills[0]["user_id"] == alice[0].id
    assert working(sessions, paper["id"], "target") == [(Decimal("25020"), 2)]
    assert working(sessions, paper["id"], "stop") == [(Decimal("24990"), 2)]  # its leg's stop

    # When the engine moves the stop to break-even plus a tick
    moved = place("move_stop", "sell", sl_price=Decimal("25000.25"))
    assert (moved.status, moved.error) == ("filled", None)
    assert the_book(sessions, paper["id"]).net_qty == 2  # no trade
    assert working(sessions, paper["id"], "stop") == [(Decimal("25000.25"), 2)]

    # Then a drop through it closes the rest at the new level, not at the tick
    tick(settings, redis_client, watcher, "25003", "24998.5")
    last = bracket_fills(settings, redis_client)[-1]
    assert (last["reason"], last["fill_price"], last["quantity"], last["net_qty"]) == (
        "sl",
        25000.25,
        2,
        0,
    )
    book = the_book(sessions, paper["id"])
    assert book.realized_pnl == Decimal("31")  # $10 + $20 + 2 × 0.25 × $2
    assert working(sessions, paper["id"], "target") == working(sessions, paper["id"], "stop") == []
    with sessions() as s:
        assert working_symbols(s) == set()  # a cleared book has nothing left to watch


def test_legs_cover_the_whole_book_and_an_add_without_legs_rests_one_target(
    paper, settings, redis_client, sessions, place
):
    set_price(settings, redis_client, "25000")
    # Another trader's contract on the same subaccount: the outermost leg takes the difference
    place(
        "entry",
        "buy",
        "3",
        sl_price=Decimal("24990"),
        tp_price=Decimal("25005"),
        targets=plan("25000", ("25005", "1"), ("25010", "1")),
    )
    assert working(sessions, paper["id"], "target") == [
        (Decimal("25005"), 1),
        (Decimal("25010"), 2),
    ]
    with sessions() as s:
        assert working_symbols(s) == {"MNQ"}

    place("add", "buy", "1", tp_price=Decimal("25008"), sl_price=Decimal("24995"))

    assert the_book(sessions, paper["id"]).net_qty == 4
    assert working(sessions, paper["id"], "target") == [(Decimal("25008"), 4)]
    assert working(sessions, paper["id"], "stop") == [(Decimal("24995"), 4)]


def move_target(settings, redis_client, sessions, subaccount_id, level: str):
    """A move_target ticket sent straight to the paper broker: `order_intents.kind` is
    VARCHAR(10) and cannot hold "move_target" (11 characters) until the column is widened."""
    broker = PaperBroker(redis_client, settings.stream_prefix)
    book = the_book(sessions, subaccount_id)
    assert book is not None, "a target moves on an open book"
    with db.transaction(sessions) as s:
        return broker.send(
            Ticket(
                intent_id=str(uuid.uuid4()),
                cl_ord_id=f"jt-move-{level}",
                subaccount_id=subaccount_id,
                account_spec="Practice",
                broker_account_id=0,
                kind="move_target",
                symbol="MNQ",
                contract=book.contract,
                side="buy",
                quantity=Decimal(0),
                tp_price=Decimal(level),
            ),
            s,
        )


def test_a_single_remaining_target_moves(paper, settings, redis_client, sessions, watcher, place):
    # Given a short of 2 with two legs
    set_price(settings, redis_client, "25000")
    place(
        "entry",
        "sell",
        "2",
        sl_price=Decimal("25010"),
        tp_price=Decimal("24995"),
        targets=plan("25000", ("24995", "1"), ("24990", "1")),
    )
    several = move_target(settings, redis_client, sessions, paper["id"], "24980")
    assert several.status == "rejected" and "2 target legs rest" in several.error

    # When the first leg fills and the last one is moved further out
    tick(settings, redis_client, watcher, "24995")
    moved = move_target(settings, redis_client, sessions, paper["id"], "24985")

    # Then it rests at the new level and fills there
    assert moved.status == "filled"
    assert the_book(sessions, paper["id"]).net_qty == -1
    assert working(sessions, paper["id"], "target") == [(Decimal("24985"), 1)]
    tick(settings, redis_client, watcher, "24989", "24984")
    last = bracket_fills(settings, redis_client)[-1]
    assert (last["fill_price"], last["quantity"], last["net_qty"]) == (24985, 1, 0)
    assert the_book(sessions, paper["id"]).realized_pnl == Decimal("40")  # (5 + 15) × $2


def test_stop_moves_on_a_flat_book_or_odd_inputs_change_nothing(
    paper, settings, redis_client, sessions, place
):
    flat = place("move_stop", "sell", sl_price=Decimal("25000"))
    assert (flat.status, flat.error) == ("filled", "already flat; no stop to move")
    assert the_book(sessions, paper["id"]) is None

    set_price(settings, redis_client, "25000")
    bad_leg = place(
        "entry",
        "buy",
        "2",
        sl_price=Decimal("24990"),
        targets=plan("25000", ("25005", "1"), ("25010", "0")),
    )
    assert bad_leg.status == "rejected" and "whole number of contracts" in bad_leg.error
    assert the_book(sessions, paper["id"]) is None

    place("entry", "buy", "1", tp_price=Decimal("25005"), sl_price=Decimal("24990"))
    wrong_side = place("move_stop", "buy", sl_price=Decimal("25010"))
    no_level = place("move_stop", "sell")
    assert wrong_side.status == "rejected" and "position is long" in wrong_side.error
    assert no_level.status == "rejected" and "new level" in no_level.error
    assert the_book(sessions, paper["id"]).net_qty == 1
    assert working(sessions, paper["id"], "target") == [(Decimal("25005"), 1)]
    assert working(sessions, paper["id"], "stop") == [(Decimal("24990"), 1)]
