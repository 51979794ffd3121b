"""Two strategies on one Tradovate subaccount (§4b) through the real engine and executor, against
the broker simulator: each trader trades only its own part of the MNQ position — its close sells
exactly its contracts and cancels its brackets, a reverse leaves the net at the sum of theirs."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from libs.common import streams
from libs.common.streams import SignalMessage
from services.executor.jobs import ExecutorContext
from services.position_engine.engine import PositionEngine
from tests.integration.tradovate_support import FRONT, connect_demo_account


@pytest.fixture
def desk(client, alice, tv_settings, sessions, redis_client, broker):
    """Recorders "fast" (TP/SL 40 ticks) and "slow" (80), a trader each on ONE Tradovate
    subaccount; the engine and the executor."""
    user, key = alice
    tradovate = connect_demo_account(tv_settings, sessions, user.id)
    recorders = {}
    for name, ticks in (("fast", 40), ("slow", 80)):
        recorder = client.post(
            "/api/recorders",
            json={"name": name, "tp_ticks": ticks, "sl_ticks": ticks},
            headers=key,
        ).get_json()
        trader = client.post(
            "/api/traders",
            json={"recorder_id": recorder["id"], "subaccount_id": tradovate.subaccount_id},
            headers=key,
        )
        assert trader.status_code == 201, trader.get_json()
        recorders[name] = (recorder["id"], trader.get_json()["id"])
    engine = PositionEngine(tv_settings, sessions, redis_client, consumer="engine-shared-tv")
    engine.prepare()
    return recorders, tradovate.subaccount_id, engine, ExecutorContext(tv_settings)


def signal(desk, settings, redis_client, name: str, action: str, qty: int = 1) -> None:
    recorders, subaccount_id, engine, ctx = desk
    message = SignalMessage(
        str(uuid.uuid4()),
        recorders[name][0],
        action,
        "MNQ1!",
        "MNQ",
        D(25640),
        D(qty),
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), message.to_fields())
    while engine.step(block_ms=None):
        pass
    ctx.sender.drain(subaccount_id)


def net(broker) -> int:
    with broker.lock:
        return sum(p.net_pos for p in broker.book.positions.values())


def working(broker, trader_id: int) -> list[tuple[str, int, D]]:
    with broker.lock:
        orders = [o for o in broker.book.orders.values() if o.status == "Working"]
    return sorted(
        (o.spec.order_type, o.spec.qty, o.spec.stop_price or o.spec.price)
        for o in orders
        if o.spec.text == f"jt:t{trader_id}"
    )


def requests_to(broker, route: str) -> int:
    return sum(1 for _, r in broker.requests_per_user.get("jdoe", []) if r == route)


def test_each_strategy_trades_only_its_own_part_of_the_contract(
    desk, tv_settings, redis_client, broker
):
    recorders, _, _, _ = desk
    fast, slow = recorders["fast"][1], recorders["slow"][1]
    broker.set_price(FRONT, "25640")
    signal(desk, tv_settings, redis_client, "fast", "buy", 2)
    signal(desk, tv_settings, redis_client, "slow", "buy", 1)
    assert net(broker) == 3
    assert working(broker, fast) == [("Limit", 2, D("25650")), ("Stop", 2, D("25630"))]
    assert working(broker, slow) == [("Limit", 1, D("25660")), ("Stop", 1, D("25620"))]

    # "fast" closes: exactly its 2 contracts are sold, no liquidation; "slow" keeps its bracket
    signal(desk, tv_settings, redis_client, "fast", "close")
    assert net(broker) == 1 and requests_to(broker, "order/liquidateposition") == 0
    assert working(broker, fast) == []
    assert working(broker, slow) == [("Limit", 1, D("25660")), ("Stop", 1, D("25620"))]

    # "fast" goes short 2 while "slow" is long 1: the net is the sum, -1
    signal(desk, tv_settings, redis_client, "fast", "sell", 2)
    assert net(broker) == -1
    assert working(broker, fast) == [("Limit", 2, D("25630")), ("Stop", 2, D("25650"))]
    assert working(broker, slow) == [("Limit", 1, D("25660")), ("Stop", 1, D("25620"))]

    # "slow" reverses to short 1: its own long 1 out, then its entry; the net is -3
    signal(desk, tv_settings, redis_client, "slow", "sell", 1)
    assert net(broker) == -3 and requests_to(broker, "order/liquidateposition") == 0
    assert working(broker, slow) == [("Limit", 1, D("25620")), ("Stop", 1, D("25660"))]
