"""Manual trades and the kill switch: intents written here, handed to the executor (copy groups:
copy_groups.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import CursorResult, select, update

from libs.common import orders, streams
from libs.common.copy_trading import broker_holdings, copies_of
from libs.common.futures.instruments import TickerError, contract_spec, parse_ticker, round_to_tick
from libs.common.serialize import intent_dict
from libs.common.storage.models import Account, OrderIntent, Subaccount, Trader, User
from services.ui.api.accounts import owned_subaccount
from services.ui.api.execution_schemas import ManualTrade
from services.ui.api.schemas import json_object, parse
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import ValidationFailed

bp = Blueprint("trading", __name__, url_prefix="/api")


def _intent(subaccount_id: int, **fields: Any) -> OrderIntent:
    """A queued intent of the logged-in user (fields as orders.new_intent takes them)."""
    return orders.new_intent(user_id=user_id(), subaccount_id=subaccount_id, **fields)


def hand_over(rows: list[OrderIntent]) -> None:
    """Commit, then tell the executor; the executor's sweep covers a crash in between."""
    session = db()
    session.commit()
    conn = orders.rq_connection(settings().queue_url)
    try:
        orders.enqueue(
            conn,
            settings().stream_prefix,
            [orders.QueuedIntent(r.id, r.subaccount_id, r.priority) for r in rows],
        )
    finally:
        conn.close()


def _levels(trade: ManualTrade, symbol: str, side: str) -> tuple[Decimal | None, Decimal | None]:
    if trade.tp_ticks is None and trade.sl_ticks is None:
        return None, None
    base = trade.limit_price
    if base is None:
        # The UI's client decodes replies: a field is a str.
        last = cast(
            "str | None", redis_client().hget(settings().stream(streams.LAST_PRICE), symbol)
        )
        if last is None:
            raise ValidationFailed(
                f"tp_ticks and sl_ticks need a price: there is no last price of {symbol} yet."
            )
        base = Decimal(last)
    tick = contract_spec(symbol).tick_size
    up = 1 if side == "buy" else -1
    tp = round_to_tick(base + up * trade.tp_ticks * tick, tick) if trade.tp_ticks else None
    sl = round_to_tick(base - up * trade.sl_ticks * tick, tick) if trade.sl_ticks else None
    return tp, sl


def _check_confirmed(trade: ManualTrade) -> None:
    """A fat finger's guard: above the user's own size, the ticket must say it is meant."""
    user = db().get(User, user_id())
    limit = user.manual_confirm_above if user is not None else 1
    if trade.quantity > limit and not trade.confirm:
        raise ValidationFailed(
            f"confirm: this order is for {trade.quantity} contracts, more than the "
            f"{limit} above which you asked to confirm; send it again with "
            '"confirm": true, or change the size in PUT /api/me (manual_confirm_above).'
        )


@bp.post("/manual-trade")
def manual_trade() -> ResponseReturnValue:
    trade = parse(ManualTrade, json_object())
    subaccount = owned_subaccount(trade.subaccount_id)
    if trade.action == "flatten":
        row = orders.flatten_intent(user_id(), subaccount.id, "manual")
    else:
        if not trade.ticker:
            raise ValidationFailed("ticker is required to buy, sell or close.", field="ticker")
        try:
            symbol = parse_ticker(trade.ticker).root
        except TickerError:
            raise ValidationFailed(
                "ticker must name a contract, such as MNQ1! or MNQZ6.", field="ticker"
            ) from None
        if trade.order_type == "limit" and trade.limit_price is None:
            raise ValidationFailed(
                "limit_price is required for a limit order.", field="limit_price"
            )
        if trade.action == "close":
            row = _intent(
                subaccount.id,
                source="manual",
                kind="close",
                side="sell",
                symbol=symbol,
                ticker=trade.ticker,
                quantity=Decimal(0),
                priority="exit",
            )
        else:
            _check_confirmed(trade)
            tp, sl = _levels(trade, symbol, trade.action)
            row = _intent(
                subaccount.id,
                source="manual",
                kind="entry",
                side=trade.action,
                symbol=symbol,
                ticker=trade.ticker,
                quantity=Decimal(trade.quantity),
                priority="entry",
                order_type=trade.order_type,
                limit_price=trade.limit_price,
                tp_price=tp,
                sl_price=sl,
            )
    session = db()
    session.add(row)
    session.flush()
    copies = []
    if trade.copy_to_followers:
        held = broker_holdings(session, redis_client(), settings())
        copies = copies_of(session, row, holdings=held)
    rows = [row, *copies]
    hand_over(rows)
    return jsonify(ok=True, order=intent_dict(row), copies=[intent_dict(r) for r in rows[1:]]), 202


@bp.post("/control/flatten-all")
def flatten_all() -> ResponseReturnValue:
    """The kill switch: every trader off, then a flatten for every subaccount."""
    session = db()
    # An UPDATE's result is a CursorResult, which Session.execute's types do not say.
    switched = cast(
        CursorResult[Any],
        session.execute(
            update(Trader)
            .where(Trader.user_id == user_id(), Trader.enabled.is_(True))
            .values(enabled=False)
        ),
    ).rowcount
    # Flattened: switched on again, a trader sends no exit for what its recorder holds now.
    session.execute(
        update(Trader).where(Trader.user_id == user_id()).values(flat_since=datetime.now(UTC))
    )
    subaccounts = session.scalars(
        select(Subaccount)
        .join(Account, Account.id == Subaccount.account_id)
        .where(Account.user_id == user_id(), Subaccount.active.is_(True))
        .order_by(Subaccount.id)
    ).all()
    rows = [orders.flatten_intent(user_id(), s.id, "flatten") for s in subaccounts]
    session.add_all(rows)
    hand_over(rows)
    return jsonify(
        ok=True, traders_switched_off=switched, flatten_orders=[intent_dict(r) for r in rows]
    ), 202
