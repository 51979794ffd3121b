"""Two traders on one Tradovate subaccount (docs/contract.md §4b): each trader's protective orders
say whose they are, and a reduce, an add or a stop move touches only that trader's; the executor's
real client against the broker simulator, intents written as the engine writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import pytest
import websocket

from libs.common.storage import db
from libs.common.storage.models import OrderIntent, Trader
from libs.common.tradovate.client import TradovateClient
from services.executor.jobs import ExecutorContext
from simulators.tradovate.account_socket import AccountSocketServer
from tests.integration.tradovate_support import (
    FRONT,
    PASSWORD,
    USER,
    connect_demo_account,
    queue_intent,
    target_legs,
)

D = Decimal


@dataclass(frozen=True)
class Shared:
    user_id: int
    subaccount_id: int
    a: int  # trader A's id
    b: int  # trader B's id


@pytest.fixture
def shared(tv_settings, sessions, make_user, make_recorder, broker) -> Shared:
    """Two recorders traded on the same Tradovate subaccount by two traders."""
    user = make_user()
    connected = connect_demo_account(tv_settings, sessions, user.id)
    recorders = [make_recorder(user=user, name=n) for n in ("MNQ trend", "MNQ breakout")]
    traders = []
    with db.transaction(sessions) as s:
        for recorder in recorders:
            trader = Trader(
                user_id=user.id,
                recorder_id=recorder.id,
                subaccount_id=connected.subaccount_id,
                multiplier=D(1),
            )
            s.add(trader)
            s.flush()
            traders.append(trader.id)
    return Shared(user.id, connected.subaccount_id, *traders)


@pytest.fixture
def ctx(tv_settings, redis_client):
    """The executor with a fresh Redis: no request budget spent by an earlier test."""
    return ExecutorContext(tv_settings)


def send(sessions, ctx, shared: Shared, trader: int | None, kind: str, side: str, qty, **fields):
    """One intent of `trader` on the shared subaccount, sent; the intent as answered."""
    intent_id = queue_intent(
        sessions, shared.user_id, shared.subaccount_id, kind, side, qty, trader_id=trader, **fields
    )
    ctx.sender.drain(shared.subaccount_id)
    with sessions() as s:
        return s.get_one(OrderIntent, intent_id)


def enter(sessions, ctx, shared, trader, qty, tp, sl, **fields):
    return send(
        sessions,
        ctx,
        shared,
        trader,
        "entry",
        "buy",
        qty,
        tp_price=D(tp),
        sl_price=D(sl),
        position_quantity=D(qty),
        **fields,
    )


def working(broker, trader: int | None = None) -> list[tuple[str, int, Decimal | None]]:
    """(type, qty, level) of the working orders, of one trader when given (by their text)."""
    tag = None if trader is None else f"jt:t{trader}"
    with broker.lock:
        orders = [o for o in broker.book.orders.values() if o.status == "Working"]
    return sorted(
        (o.spec.order_type, o.spec.qty, o.spec.stop_price or o.spec.price)
        for o in orders
        if tag is None or o.spec.text == tag
    )


def net_position(broker) -> int:
    with broker.lock:
        return sum(p.net_pos for p in broker.book.positions.values())


def requests_to(broker, route: str) -> int:
    return sum(1 for _, r in broker.requests_per_user.get(USER, []) if r == route)


def both_enter(sessions, ctx, shared: Shared) -> None:
    """A buys 2 (target 25660, stop 25620), B buys 1 (target 25670, stop 25610)."""
    assert enter(sessions, ctx, shared, shared.a, 2, "25660", "25620").status == "accepted"
    assert enter(sessions, ctx, shared, shared.b, 1, "25670", "25610").status == "accepted"


def test_each_traders_brackets_carry_its_name_and_cover_its_own_size(sessions, ctx, shared, broker):
    both_enter(sessions, ctx, shared)

    assert net_position(broker) == 3
    assert working(broker, shared.a) == [("Limit", 2, D("25660")), ("Stop", 2, D("25620"))]
    assert working(broker, shared.b) == [("Limit", 1, D("25670")), ("Stop", 1, D("25610"))]
    assert len(working(broker)) == 4


def test_a_reduce_to_zero_closes_only_that_traders_contracts_and_brackets(
    sessions, ctx, shared, broker
):
    both_enter(sessions, ctx, shared)

    out = send(sessions, ctx, shared, shared.a, "reduce", "sell", 2, position_quantity=D(0))

    assert out.status == "accepted" and out.error is None
    assert requests_to(broker, "order/liquidateposition") == 0
    assert net_position(broker) == 1  # B's contract is still held
    assert working(broker, shared.a) == []
    assert working(broker) == [("Limit", 1, D("25670")), ("Stop", 1, D("25610"))]

    broker.set_price(FRONT, "25610.00")  # B's stop closes exactly B's contract
    assert net_position(broker) == 0 and working(broker) == []


def test_an_add_rearms_only_that_traders_orders_for_its_new_size(sessions, ctx, shared, broker):
    both_enter(sessions, ctx, shared)

    added = send(
        sessions,
        ctx,
        shared,
        shared.b,
        "add",
        "buy",
        2,
        tp_price=D("25675"),
        sl_price=D("25615"),
        position_quantity=D(3),
    )

    assert added.status == "accepted" and added.error is None
    assert net_position(broker) == 5
    assert working(broker, shared.b) == [("Limit", 3, D("25675")), ("Stop", 3, D("25615"))]
    assert working(broker, shared.a) == [("Limit", 2, D("25660")), ("Stop", 2, D("25620"))]


def test_a_partial_reduce_resizes_only_that_traders_orders(sessions, ctx, shared, broker):
    both_enter(sessions, ctx, shared)

    send(
        sessions,
        ctx,
        shared,
        shared.a,
        "reduce",
        "sell",
        1,
        tp_price=D("25660"),
        sl_price=D("25620"),
        position_quantity=D(1),
    )

    assert net_position(broker) == 2
    assert working(broker, shared.a) == [("Limit", 1, D("25660")), ("Stop", 1, D("25620"))]
    assert working(broker, shared.b) == [("Limit", 1, D("25670")), ("Stop", 1, D("25610"))]


def test_a_stop_move_moves_only_that_traders_stop(sessions, ctx, shared, broker):
    both_enter(sessions, ctx, shared)

    moved = send(sessions, ctx, shared, shared.a, "move_stop", "sell", 0, sl_price=D("25635"))

    assert moved.status == "accepted" and moved.error is None
    assert requests_to(broker, "order/modifyorder") == 1
    assert working(broker, shared.a) == [("Limit", 2, D("25660")), ("Stop", 2, D("25635"))]
    assert working(broker, shared.b) == [("Limit", 1, D("25670")), ("Stop", 1, D("25610"))]

    broker.set_price(FRONT, "25635.00")  # A's moved stop takes A's two contracts only
    assert net_position(broker) == 1 and working(broker, shared.a) == []


def test_a_target_move_moves_only_that_traders_target(sessions, ctx, shared, broker):
    both_enter(sessions, ctx, shared)

    send(sessions, ctx, shared, shared.b, "move_target", "sell", 0, tp_price=D("25680"))

    assert working(broker, shared.b) == [("Limit", 1, D("25680")), ("Stop", 1, D("25610"))]
    assert working(broker, shared.a) == [("Limit", 2, D("25660")), ("Stop", 2, D("25620"))]


def test_one_traders_target_filling_cancels_only_its_own_stop(sessions, ctx, shared, broker):
    both_enter(sessions, ctx, shared)

    broker.set_price(FRONT, "25660.00")

    assert net_position(broker) == 1
    assert working(broker, shared.a) == []
    assert working(broker, shared.b) == [("Limit", 1, D("25670")), ("Stop", 1, D("25610"))]


def test_a_traders_order_strategy_legs_are_its_own(sessions, ctx, shared, broker):
    """An entry with target legs is an order strategy, whose orders carry no text: they are the
    trader's whose intent started it."""
    legs = target_legs("25640", ("25650", "1"), ("25660", "1"))
    enter(sessions, ctx, shared, shared.a, 2, "25650", "25620", targets=legs)
    enter(sessions, ctx, shared, shared.b, 1, "25670", "25610")

    send(sessions, ctx, shared, shared.a, "move_stop", "sell", 0, sl_price=D("25630"))
    with broker.lock:
        stops = sorted(
            (o.spec.text or "", o.spec.qty, o.spec.stop_price)
            for o in broker.book.orders.values()
            if o.status == "Working" and o.spec.order_type == "Stop"
        )
    assert stops == [
        ("", 1, D("25630")),
        ("", 1, D("25630")),
        (f"jt:t{shared.b}", 1, D("25610")),
    ]

    send(sessions, ctx, shared, shared.b, "reduce", "sell", 1, position_quantity=D(0))
    assert net_position(broker) == 2
    assert working(broker, shared.b) == []
    assert [kind for kind, _, _ in working(broker)] == ["Limit", "Limit", "Stop", "Stop"]

    send(sessions, ctx, shared, shared.a, "reduce", "sell", 2, position_quantity=D(0))
    assert net_position(broker) == 0 and working(broker) == []


def test_a_reduce_interrupted_after_its_order_went_out_still_cancels_the_traders_orders(
    sessions, ctx, shared, broker, tv_settings
):
    both_enter(sessions, ctx, shared)
    reduce = queue_intent(
        sessions,
        shared.user_id,
        shared.subaccount_id,
        "reduce",
        "sell",
        2,
        trader_id=shared.a,
        position_quantity=D(0),
    )
    # The worker claimed it and the order reached Tradovate; then the worker died.
    with db.transaction(sessions) as s:
        row = s.get_one(OrderIntent, reduce)
        row.status, row.attempts, row.contract = "sending", 1, FRONT
        cl_ord_id = row.cl_ord_id
    client = TradovateClient(broker.url)
    client.access_token_request(USER, PASSWORD, "JustTrades", "1.0", 1234, "sim-api-secret")
    [account] = client.account_list()
    client.place_order(account["id"], account["name"], "Sell", FRONT, 2, cl_ord_id=cl_ord_id)

    ctx.sender.drain(shared.subaccount_id)

    with sessions() as s:
        assert s.get_one(OrderIntent, reduce).status == "accepted"
    assert requests_to(broker, "order/placeorder") == 1  # not sent again
    assert net_position(broker) == 1
    assert working(broker, shared.a) == []
    assert working(broker) == [("Limit", 1, D("25670")), ("Stop", 1, D("25610"))]


def test_a_close_of_a_trader_alone_on_the_contract_liquidates(sessions, ctx, shared, broker):
    enter(sessions, ctx, shared, shared.a, 2, "25660", "25620")

    closed = send(sessions, ctx, shared, shared.a, "close", "sell", 0)

    assert closed.status == "accepted"
    assert requests_to(broker, "order/liquidateposition") == 1
    assert net_position(broker) == 0 and working(broker) == []


def test_a_manual_orders_protection_says_it_is_of_no_trader(sessions, ctx, shared, broker):
    enter(sessions, ctx, shared, None, 1, "25660", "25620")
    with broker.lock:
        texts = {o.spec.text for o in broker.book.orders.values() if o.status == "Working"}
    assert texts == {"jt:manual"}


def test_the_text_is_read_back_and_streamed_on_the_order_version(sessions, ctx, shared, broker):
    """What the executor relies on, as Tradovate serves it: `text` on the OrderVersion of a REST
    read and of the account socket's `props` events (the Order itself has no text)."""
    client = TradovateClient(broker.url)
    token = client.access_token_request(USER, PASSWORD, "JustTrades", "1.0", 1234, "sim-api-secret")
    with AccountSocketServer(broker) as sock:
        ws = websocket.create_connection(sock.url, timeout=5)
        try:
            assert ws.recv() == "o"
            ws.send(f"authorize\n0\n\n{token.access_token}")
            ws.send(f'user/syncrequest\n1\n\n{{"users":[{token.user_id}]}}')
            wait_for_answer(ws, 1)
            enter(sessions, ctx, shared, shared.a, 1, "25660", "25620")
            streamed = version_texts(ws)
        finally:
            ws.close()
    [account] = client.account_list()
    orders = client.order_deps(account["id"])
    read = {v["text"] for v in client.order_version_ldeps([o["id"] for o in orders]) if "text" in v}
    assert read == streamed == {f"jt:t{shared.a}"}
    assert all("text" not in o for o in orders)


def wait_for_answer(ws: websocket.WebSocket, request_id: int) -> None:
    while True:
        frame = str(ws.recv())
        if frame.startswith("a") and any(m.get("i") == request_id for m in json.loads(frame[1:])):
            return


def version_texts(ws: websocket.WebSocket) -> set[str]:
    """The texts of the orderVersion `props` events until the socket falls quiet."""
    texts: set[str] = set()
    ws.settimeout(1.0)
    while True:
        try:
            frame = str(ws.recv())
        except websocket.WebSocketTimeoutException:
            return texts
        if not frame.startswith("a"):
            continue
        for message in json.loads(frame[1:]):
            data = message.get("d")
            props = message.get("e") == "props" and data["entityType"] == "orderVersion"
            if props and "text" in data["entity"]:
                texts.add(data["entity"]["text"])


def test_a_flatten_liquidates_every_holding_and_cancels_every_working_order(
    sessions, ctx, shared, broker
):
    # Given both traders in with brackets: the liquidation takes their contracts and brackets
    both_enter(sessions, ctx, shared)
    assert send(sessions, ctx, shared, None, "flatten", "sell", 0).status == "accepted"
    assert net_position(broker) == 0 and working(broker) == []


def test_a_flatten_of_a_flat_account_still_cancels_a_resting_entry(sessions, ctx, shared, broker):
    # Given no position, only a limit buy resting below the market (no liquidation would touch it)
    resting = send(
        sessions, ctx, shared, None, "entry", "buy", 1, order_type="limit", limit_price=D("25500")
    )
    assert resting.status == "accepted" and len(working(broker)) == 1

    # When the account is flattened (the kill switch, or its risk desk), the order goes too
    flattened = send(sessions, ctx, shared, None, "flatten", "sell", 0)
    assert flattened.status == "accepted" and working(broker) == []
