"""The account view of one subaccount (docs/contract.md §4c): the broker's positions with open PnL
at the feed's last price, realized PnL and trades of the current trade date, working orders, the
broker's own cash balance (Tradovate), and the risk desk's limits and lock. The figures come from
libs/common/account_figures.py, which the executor's risk desk judges too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import or_, select

from libs.common.account_figures import (
    BrokerFigures,
    broker_figures,
    last_prices,
    open_pnl,
    paper_figures,
    snapshot,
    tradovate_figures,
)
from libs.common.account_risk import in_force, room
from libs.common.futures.exchange_calendar import trade_date
from libs.common.serialize import iso, num, usd
from libs.common.storage.models import OrderIntent, PaperOrder, Subaccount, SubaccountRisk
from services.ui.api.accounts import owned_subaccount
from services.ui.api.subaccount_risk import risk_view
from services.ui.context import db, redis_client, settings

bp = Blueprint("subaccounts", __name__, url_prefix="/api/subaccounts")

WAITING = "waiting for the account socket"


def _positions(figures: BrokerFigures) -> tuple[list[dict[str, Any]], Decimal | None]:
    """Each held contract with its last price and open PnL; the total is None while any held
    contract has no price."""
    prices = last_prices(redis_client(), settings(), {h.symbol for h in figures.positions})
    rows = []
    for h in figures.positions:
        last = prices.get(h.symbol)
        rows.append(
            {
                "contract": h.contract,
                "symbol": h.symbol,
                "net_qty": num(h.net_qty),
                "avg_price": num(h.avg_price),
                "last_price": num(last),
                "open_pnl": usd(open_pnl(h.net_qty, h.avg_price, last, h.symbol)),
            }
        )
    return rows, figures.open_pnl(prices)


def _paper_view(sub: Subaccount, now: datetime) -> dict[str, Any]:
    figures = paper_figures(db(), sub.id, now)
    positions, total = _positions(figures)
    working = db().scalars(
        select(PaperOrder)
        .where(PaperOrder.subaccount_id == sub.id, PaperOrder.status == "working")
        .order_by(PaperOrder.contract, PaperOrder.id)
    )
    return {
        "positions": positions,
        "open_pnl": usd(total),
        "realized_pnl_today": usd(figures.realized_today),
        "trades_today": figures.trades_today,
        "broker_cash": None,  # the paper broker keeps no cash apart from our own figures
        "working_orders": [
            {
                "id": o.id,
                "contract": o.contract,
                "side": o.side,
                "order_type": o.order_type,
                "role": o.role,
                "quantity": num(o.quantity),
                "price": num(o.price),
                "trader_id": o.trader_id,
            }
            for o in working
        ],
        "updated_at": iso(now),
    }


def _tradovate_view(sub: Subaccount) -> dict[str, Any]:
    view = snapshot(redis_client(), settings(), sub.id)
    if view is None:
        return {
            "positions": [],
            "open_pnl": None,
            "realized_pnl_today": None,
            "trades_today": None,
            "broker_cash": None,
            "working_orders": [],
            "updated_at": None,
            "broker_view": WAITING,
        }
    positions, total = _positions(tradovate_figures(view))
    orders = view["working_orders"]
    traders = _traders_of(sub, orders)
    return {
        "positions": positions,
        "open_pnl": usd(total),
        "realized_pnl_today": view["realized_pnl_today"],
        "trades_today": view["trades_today"],
        "broker_cash": view.get("broker_cash"),  # an executor before it kept none: unknown
        "working_orders": [
            {
                "id": o["id"],
                "contract": o["contract"],
                "side": o["side"],
                "order_type": o["order_type"],
                "role": o["role"],
                "quantity": o["quantity"],
                "price": o["price"],
                "trader_id": traders.get(o["cl_ord_id"])
                or traders.get(str(o["id"]))
                or traders.get(str(o["parent_id"])),
                "status": o["status"],
                "text": o["text"],
            }
            for o in orders
        ],
        "fills": view["fills"],
        "updated_at": view["updated_at"],
    }


def _traders_of(sub: Subaccount, orders: list[dict[str, Any]]) -> dict[str, int]:
    """Whose orders they are, from the intents that placed them: by clOrdId, by broker order id,
    or by the OSO entry a bracket belongs to."""
    cl_ids = {o["cl_ord_id"] for o in orders if o.get("cl_ord_id")}
    order_ids = {str(o[k]) for o in orders for k in ("id", "parent_id") if o.get(k)}
    if not cl_ids and not order_ids:
        return {}
    rows = db().execute(
        select(OrderIntent.cl_ord_id, OrderIntent.broker_order_id, OrderIntent.trader_id).where(
            OrderIntent.subaccount_id == sub.id,
            OrderIntent.trader_id.is_not(None),
            or_(OrderIntent.cl_ord_id.in_(cl_ids), OrderIntent.broker_order_id.in_(order_ids)),
        )
    )
    found: dict[str, int] = {}
    for cl_ord_id, broker_order_id, trader_id in rows:
        if trader_id is not None:
            found[cl_ord_id] = trader_id
            if broker_order_id:
                found[broker_order_id] = trader_id
    return found


@bp.get("/<int:subaccount_id>")
def get_subaccount(subaccount_id: int) -> ResponseReturnValue:
    sub = owned_subaccount(subaccount_id)
    account = sub.account
    now = datetime.now(UTC)
    view = _paper_view(sub, now) if account.broker == "paper" else _tradovate_view(sub)
    day = trade_date(now)
    return jsonify(
        room=_room(sub, now, day),
        ok=True,
        id=sub.id,
        name=sub.name,
        account_id=account.id,
        broker=account.broker,
        risk_status=sub.risk_status,
        trade_date=day.isoformat(),
        **view,
        **risk_view(sub, db().get(SubaccountRisk, sub.id), day),
    )


def _room(sub: Subaccount, now: datetime, day: date) -> dict[str, float | int | None] | None:
    """How far each limit in force is from breaching; None while the figures are not known."""
    held = broker_figures(db(), redis_client(), settings(), sub, now)
    if held is None:
        return None
    prices = last_prices(redis_client(), settings(), {h.symbol for h in held.positions})
    figures = held.account_figures(prices, sub.high_balance)
    if figures is None:
        return None
    limits, _, _ = in_force(db().get(SubaccountRisk, sub.id), day)
    return {
        rule: None if left is None else (left if isinstance(left, int) else usd(left))
        for rule, left in room(limits, figures).items()
    }
