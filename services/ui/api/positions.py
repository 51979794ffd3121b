"""Position routes: the recorders' open and closed positions, and one position with its fills."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select

from libs.common import streams
from libs.common.futures.instruments import TickerError, canonical_symbol, contract_spec
from libs.common.serialize import iso, num, position_dict, usd
from libs.common.storage.models import Fill, Position, Recorder, StopMove
from services.ui.api.params import choice_arg, int_arg
from services.ui.api.recorders import MAX_ID, owned_recorder
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import NotFound, ValidationFailed

bp = Blueprint("positions", __name__, url_prefix="/api/positions")


def owned_positions() -> Select[Position]:
    return (
        select(Position)
        .join(Recorder, Recorder.id == Position.recorder_id)
        .where(Recorder.user_id == user_id())
    )


def fill_dict(f: Fill) -> dict[str, Any]:
    return {
        "id": f.id,
        "signal_id": None if f.signal_id is None else str(f.signal_id),
        "kind": f.kind,
        "side": f.side,
        "quantity": num(f.quantity),
        "price": num(f.price),
        "realized_pnl": usd(f.realized_pnl),
        "reason": f.reason,
        "filled_at": iso(f.filled_at),
    }


def _last_prices(symbols: set[str]) -> dict[str, Decimal]:
    """The feed's last price of each symbol (jt:last_price); a symbol without one is left out."""
    if not symbols:
        return {}
    names = sorted(symbols)
    values = redis_client().hmget(settings().stream(streams.LAST_PRICE), names)
    return {
        name: Decimal(value if isinstance(value, str) else value.decode())
        for name, value in zip(names, values, strict=True)
        if value is not None
    }


def marked_dict(p: Position, last: Decimal | None) -> dict[str, Any]:
    """An open position with `last_price` and `unrealized_pnl` (null without a price)."""
    view = position_dict(p)
    if p.status != "open":
        return view
    unrealized = None
    if last is not None:
        direction = 1 if p.side == "long" else -1
        unrealized = (
            (last - p.avg_entry_price)
            * direction
            * p.quantity
            * contract_spec(p.symbol).point_value
        )
    view["last_price"] = num(last)
    view["unrealized_pnl"] = usd(unrealized)
    return view


def _symbol_arg() -> str | None:
    raw = request.args.get("symbol", "").strip()
    if not raw:
        return None
    try:
        return canonical_symbol(raw)  # `MNQ1!` or `CME_MINI:MNQZ2025` find MNQ positions
    except TickerError:
        raise ValidationFailed("symbol must be a ticker such as MNQ or MNQ1!.") from None


@bp.get("")
def list_positions() -> ResponseReturnValue:
    query = owned_positions()
    recorder_id = int_arg("recorder_id")
    if recorder_id is not None:
        query = query.where(Position.recorder_id == owned_recorder(recorder_id).id)
    status = choice_arg("status", ("open", "closed"))
    if status:
        query = query.where(Position.status == status)
    symbol = _symbol_arg()
    if symbol:
        query = query.where(Position.symbol == symbol)
    limit = int_arg("limit", default=500, low=1, high=5000)
    query = query.order_by(Position.opened_at.desc(), Position.id.desc()).limit(limit)
    positions = list(db().scalars(query))
    prices = _last_prices({p.symbol for p in positions if p.status == "open"})
    return jsonify(ok=True, positions=[marked_dict(p, prices.get(p.symbol)) for p in positions])


@bp.get("/<int:position_id>")
def get_position(position_id: int) -> ResponseReturnValue:
    position = None
    if 0 < position_id <= MAX_ID:
        position = db().scalar(owned_positions().where(Position.id == position_id))
    if position is None:
        raise NotFound("Position not found.")
    return jsonify(
        ok=True,
        **position_dict(position),
        fills=[fill_dict(f) for f in position.fills],
        stop_moves=[
            {"stop_price": num(m.stop_price), "reason": m.reason, "moved_at": iso(m.moved_at)}
            for m in db().scalars(
                select(StopMove)
                .where(StopMove.position_id == position.id)
                .order_by(StopMove.moved_at, StopMove.id)
            )
        ],
        excursions=_excursions(position),
        held_seconds=_held_seconds(position),
    )


def _excursions(p: Position) -> dict[str, dict[str, Any]]:
    """MFE and MAE in points, ticks and dollars per contract (docs/contract.md §3)."""
    spec = contract_spec(p.symbol)
    return {
        name: {
            "points": num(points),
            "ticks": num((points / spec.tick_size).normalize()),
            "usd": usd(points * spec.point_value),
        }
        for name, points in (("max_favorable", p.max_favorable), ("max_adverse", p.max_adverse))
    }


def _held_seconds(p: Position) -> float | None:
    end = p.closed_at or datetime.now(UTC)
    return round((end - p.opened_at).total_seconds(), 3)
