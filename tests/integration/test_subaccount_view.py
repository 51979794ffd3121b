"""GET /api/subaccounts/<id>: a paper subaccount from the paper broker's rows, and a Tradovate one
from the snapshot the executor's account socket keeps in Redis (simulator, real sync)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from libs.common import orders, streams
from libs.common.account_figures import trade_date_start
from libs.common.futures.exchange_calendar import trade_date
from libs.common.storage import db
from libs.common.storage.models import PaperFill, PaperOrder, PaperPosition, Trader
from services.executor.risk_desk import RiskDesk
from tests.integration.test_account_sync import signal
from tests.integration.tradovate_support import FRONT
from tests.polling import wait_for


def set_last_price(redis_client, settings, price: str, symbol: str = "MNQ") -> None:
    redis_client.hset(settings.stream(streams.LAST_PRICE), symbol, price)


# -- paper ------------------------------------------------------------------------------------


@pytest.fixture
def paper_book(paper, sessions):
    """Long 2 MNQ at 25000 after a round trip today (+$20) and one yesterday (+$100); a target and
    a stop working for trader 7, a limit entry for no trader, and an order already cancelled."""
    sub_id = paper["id"]
    start = trade_date_start(trade_date(datetime.now(UTC)))
    contract = FRONT
    with db.transaction(sessions) as s:
        s.add(
            PaperPosition(
                subaccount_id=sub_id,
                contract=contract,
                symbol="MNQ",
                net_qty=Decimal(2),
                avg_price=Decimal("25000"),
                realized_pnl=Decimal("120"),
            )
        )
        fills = [
            (start - timedelta(minutes=5), "buy", 1, "24900", "0"),  # yesterday's round trip
            (start - timedelta(minutes=4), "sell", 1, "24950", "100"),
            (start + timedelta(minutes=1), "buy", 1, "24990", "0"),  # today's: trade 1
            (start + timedelta(minutes=2), "sell", 1, "25000", "20"),
            (start + timedelta(minutes=3), "buy", 1, "25000", "0"),  # trade 2
            (start + timedelta(minutes=4), "buy", 1, "25000", "0"),  # an add: no new trade
        ]
        for at, side, qty, price, realized in fills:
            s.add(
                PaperFill(
                    subaccount_id=sub_id,
                    contract=contract,
                    symbol="MNQ",
                    side=side,
                    quantity=Decimal(qty),
                    price=Decimal(price),
                    realized_pnl=Decimal(realized),
                    filled_at=at,
                )
            )
        orders = [
            ("target", "sell", "limit", "25020", 7, "working"),
            ("stop", "sell", "stop", "24980", 7, "working"),
            ("entry", "buy", "limit", "24950", None, "working"),
            ("stop", "sell", "stop", "24970", 7, "cancelled"),
        ]
        for role, side, order_type, price, trader_id, status in orders:
            s.add(
                PaperOrder(
                    subaccount_id=sub_id,
                    contract=contract,
                    symbol="MNQ",
                    trader_id=trader_id,
                    role=role,
                    side=side,
                    quantity=Decimal(2) if role != "entry" else Decimal(1),
                    order_type=order_type,
                    price=Decimal(price),
                    oco_group="g1" if role != "entry" else None,
                    status=status,
                )
            )
    return sub_id


def test_a_paper_subaccount_shows_its_position_open_pnl_today_and_working_orders(
    client, alice, paper_book, redis_client, settings
):
    set_last_price(redis_client, settings, "25010.25")
    answer = client.get(f"/api/subaccounts/{paper_book}", headers=alice[1])
    assert answer.status_code == 200, answer.get_json()
    view = answer.get_json()
    assert view["broker"] == "paper" and view["risk_status"] == "normal"
    assert view["positions"] == [
        {
            "contract": FRONT,
            "symbol": "MNQ",
            "net_qty": 2,
            "avg_price": 25000,
            "last_price": 25010.25,
            "open_pnl": 41.0,  # 10.25 points × 2 contracts × $2
        }
    ]
    assert view["open_pnl"] == 41.0
    assert view["realized_pnl_today"] == 20.0  # yesterday's $100 belongs to yesterday
    assert view["broker_cash"] is None  # the paper broker has no word of its own
    assert view["trades_today"] == 2
    working = {(o["role"], o["price"]): o for o in view["working_orders"]}
    assert set(working) == {("target", 25020), ("stop", 24980), ("entry", 24950)}
    assert working["target", 25020]["trader_id"] == 7
    assert working["entry", 24950]["trader_id"] is None
    assert (
        working["stop", 24980]["order_type"] == "stop" and working["stop", 24980]["quantity"] == 2
    )

    set_last_price(redis_client, settings, "24995")  # the feed moves: so does the open PnL
    moved = client.get(f"/api/subaccounts/{paper_book}", headers=alice[1]).get_json()
    assert moved["open_pnl"] == -20.0 and moved["positions"][0]["open_pnl"] == -20.0


def test_a_paper_position_without_a_price_has_no_open_pnl_rather_than_a_guess(
    client, alice, paper_book
):
    view = client.get(f"/api/subaccounts/{paper_book}", headers=alice[1]).get_json()
    assert view["positions"][0]["last_price"] is None
    assert view["positions"][0]["open_pnl"] is None and view["open_pnl"] is None


def test_another_users_subaccount_and_an_unknown_id_are_not_found(client, bob, paper):
    for path in (f"/api/subaccounts/{paper['id']}", "/api/subaccounts/999999"):
        answer = client.get(path, headers=bob[1])
        assert answer.status_code == 404
        assert answer.get_json() == {"ok": False, "error": "Subaccount not found."}


# -- Tradovate, through the executor's account socket ----------------------------------------


def view_of(client, alice, subaccount_id: int) -> dict:
    answer = client.get(f"/api/subaccounts/{subaccount_id}", headers=alice[1])
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_a_tradovate_subaccount_waits_for_the_socket_instead_of_inventing_numbers(
    client, alice, tradovate
):
    view = view_of(client, alice, tradovate.subaccount_id)
    assert view["broker"] == "tradovate"
    assert view["broker_view"] == "waiting for the account socket"
    assert view["positions"] == [] and view["open_pnl"] is None and view["trades_today"] is None
    assert view["broker_cash"] is None


def test_a_tradovate_position_with_its_bracket_shows_from_the_account_socket(
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
    recorder = make_recorder(user=alice[0], tp_ticks=20, sl_ticks=40)
    with db.transaction(sessions) as s:
        trader = Trader(
            user_id=alice[0].id,
            recorder_id=recorder.id,
            subaccount_id=tradovate.subaccount_id,
            multiplier=Decimal(1),
        )
        s.add(trader)
        s.flush()
        trader_id = trader.id
    signal(tv_settings, redis_client, sessions, recorder, "buy", "25640")
    ctx.sender.drain(tradovate.subaccount_id)
    set_last_price(redis_client, tv_settings, "25642.50")

    def held() -> dict | None:
        view = view_of(client, alice, tradovate.subaccount_id)
        ok = view["positions"] and view["positions"][0]["contract"] == FRONT
        return view if ok and len(view["working_orders"]) == 2 else None

    view = wait_for(held)
    assert view["positions"] == [
        {
            "contract": FRONT,
            "symbol": "MNQ",
            "net_qty": 1,
            "avg_price": 25640,
            "last_price": 25642.5,
            "open_pnl": 5.0,  # 2.5 points × $2
        }
    ]
    bracket = {o["role"]: o for o in view["working_orders"]}
    assert bracket["target"]["price"] == 25645 and bracket["target"]["order_type"] == "limit"
    assert bracket["stop"]["price"] == 25630 and bracket["stop"]["order_type"] == "stop"
    assert {o["side"] for o in bracket.values()} == {"sell"}
    assert {o["trader_id"] for o in bracket.values()} == {trader_id}
    assert view["trades_today"] == 1 and view["realized_pnl_today"] == 0.0
    assert view["updated_at"] is not None and "broker_view" not in view

    broker.set_price(FRONT, "25645.00")  # the take-profit fills at the broker

    def flat() -> dict | None:
        v = view_of(client, alice, tradovate.subaccount_id)
        return v if not v["positions"] and not v["working_orders"] else None

    done = wait_for(flat)
    assert done["realized_pnl_today"] == 10.0  # 5 points × $2, paired first in, first out
    assert done["trades_today"] == 1 and done["open_pnl"] == 0.0
    assert [f["side"] for f in done["fills"]] == ["buy", "sell"]


def test_the_brokers_cash_balance_shows_from_the_sync_snapshot_and_follows_a_closing_fill(
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
    today = trade_date(datetime.now(UTC)).isoformat()
    synced_view = wait_for(
        lambda: (v := view_of(client, alice, tradovate.subaccount_id)) and v["broker_cash"] and v
    )
    # the sync snapshot's `cashBalances`: the simulator's account starts with $50,000
    assert synced_view["broker_cash"] == {"amount": 50_000.0, "realized_pnl": 0.0, "as_of": today}

    recorder = make_recorder(user=alice[0], tp_ticks=20, sl_ticks=40)
    with db.transaction(sessions) as s:
        s.add(
            Trader(
                user_id=alice[0].id,
                recorder_id=recorder.id,
                subaccount_id=tradovate.subaccount_id,
                multiplier=Decimal(1),
            )
        )
    signal(tv_settings, redis_client, sessions, recorder, "buy", "25640")
    ctx.sender.drain(tradovate.subaccount_id)
    wait_for(lambda: len(view_of(client, alice, tradovate.subaccount_id)["working_orders"]) == 2)
    broker.set_price(FRONT, "25645.00")  # the take-profit fills: +5 points × $2

    def cashed() -> dict | None:
        v = view_of(client, alice, tradovate.subaccount_id)
        return v if v["broker_cash"]["realized_pnl"] == 10.0 else None

    view = wait_for(cashed)  # the `cashBalance` props event after the closing fill
    assert view["broker_cash"] == {"amount": 50_010.0, "realized_pnl": 10.0, "as_of": today}
    assert view["realized_pnl_today"] == 10.0  # ours, beside the broker's
    stored = json.loads(
        redis_client.get(tv_settings.stream(f"broker_view:{tradovate.subaccount_id}"))
    )
    assert stored["broker_cash"] == view["broker_cash"]


def test_the_executor_keeps_one_snapshot_per_subaccount_in_redis(
    tradovate, synced, redis_client, tv_settings
):
    key = tv_settings.stream(f"broker_view:{tradovate.subaccount_id}")
    wait_for(lambda: redis_client.get(key))
    assert 0 < redis_client.ttl(key) <= 90  # a stopped executor's view goes away by itself


def test_the_risk_desk_locks_and_flattens_a_tradovate_account_on_its_open_loss(
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
    recorder = make_recorder(user=alice[0], tp_ticks=400, sl_ticks=400)
    with db.transaction(sessions) as s:
        s.add(
            Trader(
                user_id=alice[0].id,
                recorder_id=recorder.id,
                subaccount_id=tradovate.subaccount_id,
                multiplier=Decimal(2),
            )
        )
    risk = client.put(
        f"/api/subaccounts/{tradovate.subaccount_id}/risk",
        json={"daily_loss_limit": 40},
        headers=alice[1],
    )
    assert risk.status_code == 200, risk.get_json()
    signal(tv_settings, redis_client, sessions, recorder, "buy", "25640")
    ctx.sender.drain(tradovate.subaccount_id)
    set_last_price(redis_client, tv_settings, "25635")  # 2 × 5 points × $2 = -$20: inside
    wait_for(lambda: view_of(client, alice, tradovate.subaccount_id)["positions"])
    desk = RiskDesk(ctx, orders.rq_connection(tv_settings.redis_url))
    assert desk.check_all() == []

    broker.set_price(FRONT, "25630.00")  # the market the liquidation will meet
    set_last_price(redis_client, tv_settings, "25630")  # -$40 of open loss: the limit
    [lock] = desk.check_all()
    assert (lock.event["rule"], lock.event["flattened"]) == ("daily_loss_limit", True)
    ctx.sender.drain(tradovate.subaccount_id)  # the flatten: liquidated, brackets cancelled

    def flat() -> dict | None:
        v = view_of(client, alice, tradovate.subaccount_id)
        return v if not v["positions"] and not v["working_orders"] else None

    view = wait_for(flat)
    assert view["locked"] and "daily loss limit of $40.00" in view["lock_reason"]
    assert view["realized_pnl_today"] == -40.0  # sold at 25630: 2 × 10 points × $2
    assert (
        client.post(
            f"/api/subaccounts/{tradovate.subaccount_id}/unlock", headers=alice[1]
        ).status_code
        == 409
    )
