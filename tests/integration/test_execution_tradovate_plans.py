"""Exit plans on a Tradovate account: several target legs as one order strategy, protection
re-armed per leg, stops moved by modify; the executor's real client against the broker simulator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from libs.common.storage import db
from libs.common.storage.models import Account, OrderIntent, Subaccount
from services.executor.jobs import ExecutorContext
from services.executor.limiter import BrokerLimiter
from tests.integration.tradovate_support import (
    FRONT,
    USER,
    connect_demo_account,
    queue_intent,
    target_legs,
)

THREE_LEGS = target_legs("25640", ("25645", "1"), ("25650", "1"), ("25660", "2"))


@pytest.fixture
def account(tv_settings, sessions, make_user, broker):
    user = make_user()
    connected = connect_demo_account(tv_settings, sessions, user.id)
    return user.id, connected.account_id, connected.subaccount_id


@pytest.fixture
def ctx(tv_settings, redis_client):
    """The executor with a fresh Redis: no request budget spent by an earlier test."""
    return ExecutorContext(tv_settings)


def intents(sessions) -> list[OrderIntent]:
    with sessions() as s:
        return list(s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)))


def intent(sessions, intent_id) -> OrderIntent:
    with sessions() as s:
        return s.get_one(OrderIntent, intent_id)


def working(broker, order_type: str) -> list[tuple[int, Decimal | None]]:
    """(qty, price or stop price) of the working orders of one type, nearest first."""
    with broker.lock:
        orders = [
            o
            for o in broker.book.orders.values()
            if o.status == "Working" and o.spec.order_type == order_type
        ]
    level = "stop_price" if order_type == "Stop" else "price"
    return sorted((o.spec.qty, getattr(o.spec, level)) for o in orders)


def requests_to(broker, route: str) -> int:
    return sum(1 for _, r in broker.requests_per_user.get(USER, []) if r == route)


def net_position(broker) -> int:
    with broker.lock:
        return sum(p.net_pos for p in broker.book.positions.values())


def enter_with_three_legs(sessions, account, ctx, sl_price="25630") -> OrderIntent:
    user_id, _, subaccount_id = account
    entry = queue_intent(
        sessions,
        user_id,
        subaccount_id,
        "entry",
        "buy",
        4,
        tp_price=Decimal("25645"),
        sl_price=None if sl_price is None else Decimal(sl_price),
        targets=THREE_LEGS,
    )
    ctx.sender.drain(subaccount_id)
    return intent(sessions, entry)


def test_an_entry_with_three_legs_is_one_strategy_with_a_target_and_a_stop_per_leg(
    sessions, account, ctx, broker
):
    entry = enter_with_three_legs(sessions, account, ctx)

    assert entry.status == "accepted" and entry.contract == FRONT
    assert requests_to(broker, "orderstrategy/startorderstrategy") == 1
    assert requests_to(broker, "order/placeoso") == requests_to(broker, "order/placeorder") == 0
    [strategy] = broker.book.strategies.values()
    assert strategy.uuid == entry.cl_ord_id and strategy.status == "ActiveStrategy"
    entry_order = broker.book.orders[int(entry.broker_order_id)]
    assert entry_order.status == "Filled" and entry_order.spec.qty == 4
    assert working(broker, "Limit") == [
        (1, Decimal("25645")),
        (1, Decimal("25650")),
        (2, Decimal("25660")),
    ]
    assert working(broker, "Stop") == [
        (1, Decimal("25630")),
        (1, Decimal("25630")),
        (2, Decimal("25630")),
    ]


def test_the_first_target_fills_alone_and_cancels_only_its_own_stop(sessions, account, ctx, broker):
    enter_with_three_legs(sessions, account, ctx)

    broker.set_price(FRONT, "25646.00")

    assert net_position(broker) == 3
    assert working(broker, "Limit") == [(1, Decimal("25650")), (2, Decimal("25660"))]
    assert working(broker, "Stop") == [(1, Decimal("25630")), (2, Decimal("25630"))]


def test_without_a_stop_the_legs_are_targets_alone(sessions, account, ctx, broker):
    entry = enter_with_three_legs(sessions, account, ctx, sl_price=None)

    assert entry.status == "accepted"
    assert len(working(broker, "Limit")) == 3 and working(broker, "Stop") == []


def test_move_stop_modifies_each_remaining_stop_once_and_they_trigger_at_the_new_level(
    sessions, account, ctx, broker
):
    user_id, _, subaccount_id = account
    enter_with_three_legs(sessions, account, ctx)
    broker.set_price(FRONT, "25646.00")  # leg 1 taken: two stops remain

    move = queue_intent(
        sessions, user_id, subaccount_id, "move_stop", "sell", 0, sl_price=Decimal("25640")
    )
    ctx.sender.drain(subaccount_id)

    answered = intent(sessions, move)
    assert answered.status == "accepted" and answered.error is None
    assert requests_to(broker, "order/modifyorder") == 2
    assert working(broker, "Stop") == [(1, Decimal("25640")), (2, Decimal("25640"))]
    with broker.lock:
        stops = [o for o in broker.book.orders.values() if o.spec.order_type == "Stop"]
    assert {o.spec.time_in_force for o in stops} == {"GTC"}

    broker.set_price(FRONT, "25640.00")
    assert net_position(broker) == 0 and working(broker, "Stop") == []
    assert [s.status for s in broker.book.strategies.values()] == ["ExecutionFinished"]


def test_two_quick_stop_moves_send_only_the_latest_level(sessions, account, ctx, broker):
    user_id, _, subaccount_id = account
    enter_with_three_legs(sessions, account, ctx)
    first = queue_intent(
        sessions, user_id, subaccount_id, "move_stop", "sell", 0, sl_price=Decimal("25635")
    )
    latest = queue_intent(
        sessions, user_id, subaccount_id, "move_stop", "sell", 0, sl_price=Decimal("25638")
    )

    ctx.sender.drain(subaccount_id)

    skipped, sent = intent(sessions, first), intent(sessions, latest)
    assert (skipped.status, skipped.error) == ("skipped", "superseded by a later stop move")
    assert sent.status == "accepted"
    assert requests_to(broker, "order/modifyorder") == 3  # one per stop, at the latest level only
    assert {level for _, level in working(broker, "Stop")} == {Decimal("25638")}


def test_a_stop_move_with_no_working_stop_says_so(sessions, account, ctx, broker):
    user_id, _, subaccount_id = account
    move = queue_intent(
        sessions, user_id, subaccount_id, "move_stop", "sell", 0, sl_price=Decimal("25640")
    )
    ctx.sender.drain(subaccount_id)
    answered = intent(sessions, move)
    assert answered.status == "accepted" and answered.error == "no working stop order to move"
    assert requests_to(broker, "order/modifyorder") == 0


def test_a_modify_met_by_another_pending_command_is_retried(sessions, account, ctx, broker):
    user_id, _, subaccount_id = account
    enter_with_three_legs(sessions, account, ctx)
    broker.reject_next("AnotherCommandPending", "Another command is pending for this order")
    move = queue_intent(
        sessions, user_id, subaccount_id, "move_stop", "sell", 0, sl_price=Decimal("25638")
    )
    ctx.sender.drain(subaccount_id)
    assert intent(sessions, move).status == "accepted"
    assert requests_to(broker, "order/modifyorder") == 4  # three stops, one of them twice
    assert {level for _, level in working(broker, "Stop")} == {Decimal("25638")}


def test_move_target_moves_the_remaining_target(sessions, account, ctx, broker):
    user_id, _, subaccount_id = account
    enter_with_three_legs(sessions, account, ctx)
    broker.set_price(FRONT, "25651.00")  # two legs taken: one target of 2 remains
    move = queue_intent(
        sessions, user_id, subaccount_id, "move_target", "sell", 0, tp_price=Decimal("25670")
    )
    ctx.sender.drain(subaccount_id)
    assert intent(sessions, move).status == "accepted"
    assert working(broker, "Limit") == [(2, Decimal("25670"))]
    assert working(broker, "Stop") == [(2, Decimal("25630"))]


def test_an_add_rearms_one_oco_pair_per_leg_covering_the_whole_position(
    sessions, account, ctx, broker
):
    user_id, _, subaccount_id = account
    enter_with_three_legs(sessions, account, ctx)
    # Legs for 4 contracts after the add of 1, but the account holds 5: the last leg takes it up
    add = queue_intent(
        sessions,
        user_id,
        subaccount_id,
        "add",
        "buy",
        1,
        tp_price=Decimal("25650"),
        sl_price=Decimal("25635"),
        targets=target_legs("25641", ("25650", "2"), ("25665", "2")),
    )
    ctx.sender.drain(subaccount_id)

    assert intent(sessions, add).status == "accepted" and net_position(broker) == 5
    assert working(broker, "Limit") == [(2, Decimal("25650")), (3, Decimal("25665"))]
    assert working(broker, "Stop") == [(2, Decimal("25635")), (3, Decimal("25635"))]
    broker.set_price(FRONT, "25650.00")  # the first pair: its target fills, its stop goes
    assert net_position(broker) == 3 and working(broker, "Stop") == [(3, Decimal("25635"))]


def test_a_strategy_entry_interrupted_after_the_request_is_found_and_not_sent_again(
    sessions, account, ctx, broker
):
    user_id, account_id, subaccount_id = account
    entry_id = queue_intent(
        sessions,
        user_id,
        subaccount_id,
        "entry",
        "buy",
        4,
        tp_price=Decimal("25645"),
        sl_price=Decimal("25630"),
        targets=THREE_LEGS,
    )
    # The worker claimed the intent and Tradovate started the strategy; then the worker died.
    with db.transaction(sessions) as s:
        row = s.get_one(OrderIntent, entry_id)
        row.status, row.attempts, row.contract = "sending", 1, FRONT
        row.sent_at = datetime(2026, 1, 1, tzinfo=UTC)
    with sessions() as s:
        row = s.get_one(OrderIntent, entry_id)
        ticket = ctx.sender._ticket(row, s.get_one(Subaccount, subaccount_id))
        ctx.broker_for(s.get_one(Account, account_id)).send(ticket, s)

    ctx.sender.drain(subaccount_id)

    answered = intent(sessions, entry_id)
    assert answered.status == "accepted" and answered.attempts == 1
    assert requests_to(broker, "orderstrategy/startorderstrategy") == 1
    assert len(broker.book.strategies) == 1
    [strategy] = broker.book.strategies.values()
    entry_link = next(k for k in broker.book.links.values() if k["label"] == "Entry")
    assert answered.broker_order_id == str(entry_link["orderId"])
    assert strategy.uuid == answered.cl_ord_id


def test_stop_moves_use_the_exit_reserve_when_entries_have_spent_their_budget(
    tv_settings, redis_client, sessions, account, ctx, broker
):
    user_id, _, subaccount_id = account
    # Entries get 3 requests a minute, exits 7 more: the strategy entry (contract lookup,
    # start, its links) spends every entry slot; the move needs all 7 (below). With fewer, the
    # move waited for the next minute, and the entries' slots came back meanwhile.
    ctx.limiter = BrokerLimiter(
        redis_client,
        tv_settings.stream_prefix,
        per_minute=10,
        per_hour=1000,
        exit_reserve=7,
        minute_ms=60_000,
        hour_ms=3_600_000,
    )
    limiter_user = f"tradovate:demo:{broker.user_ids[USER]}"
    enter_with_three_legs(sessions, account, ctx)
    assert not ctx.limiter.try_acquire(limiter_user, "entry").granted

    move = queue_intent(
        sessions, user_id, subaccount_id, "move_stop", "sell", 0, sl_price=Decimal("25636")
    )
    ctx.sender.drain(subaccount_id)

    # the orders, their versions, the strategy and its links, then three modifies: all within
    # the exits' reserve, at once
    assert intent(sessions, move).status == "accepted"
    assert {level for _, level in working(broker, "Stop")} == {Decimal("25636")}
    assert not ctx.limiter.try_acquire(limiter_user, "entry").granted
