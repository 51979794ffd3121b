"""Trader routes (a recorder linked to a subaccount, scaled and guarded) and their orders."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from libs.common.serialize import intent_dict, iso, num, usd
from libs.common.storage.models import OrderIntent, Trader
from services.ui.api.accounts import owned_subaccount
from services.ui.api.execution_schemas import TraderCreate, TraderUpdate
from services.ui.api.params import choice_arg, int_arg
from services.ui.api.recorders import MAX_ID, owned_recorder
from services.ui.api.schemas import json_object, parse
from services.ui.context import db, user_id
from services.ui.errors import ApiError, NotFound

bp = Blueprint("traders", __name__, url_prefix="/api")


class Conflict(ApiError):
    status = 409


def trader_dict(t: Trader) -> dict[str, Any]:
    window = None
    if t.window_start and t.window_end:
        window = {"start": t.window_start, "end": t.window_end, "tz": t.window_tz}
    return {
        "id": t.id,
        "recorder_id": t.recorder_id,
        "subaccount_id": t.subaccount_id,
        "multiplier": num(t.multiplier),
        "enabled": t.enabled,
        "max_contracts": t.max_contracts,
        "daily_loss_limit": usd(t.daily_loss_limit),
        "window": window,
        "paused_until": t.disabled_until.isoformat() if t.disabled_until else None,
        "paused_reason": t.disabled_reason,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def owned_trader(trader_id: int) -> Trader:
    trader = db().get(Trader, trader_id) if 0 < trader_id <= MAX_ID else None
    if trader is None or trader.user_id != user_id():
        raise NotFound("Trader not found.")
    return trader


def _apply(trader: Trader, fields: dict[str, Any]) -> None:
    if "window" in fields:
        window = fields.pop("window")
        trader.window_start = window["start"] if window else None
        trader.window_end = window["end"] if window else None
        trader.window_tz = window["tz"] if window else "America/New_York"
    for name, value in fields.items():
        setattr(trader, name, value)


@bp.post("/traders")
def create_trader() -> ResponseReturnValue:
    body = parse(TraderCreate, json_object())
    recorder = owned_recorder(body.recorder_id)
    subaccount = owned_subaccount(body.subaccount_id)
    trader = Trader(user_id=user_id(), recorder_id=recorder.id, subaccount_id=subaccount.id)
    _apply(trader, body.model_dump(exclude={"recorder_id", "subaccount_id"}))
    session = db()
    session.add(trader)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("This recorder is already linked to this subaccount.") from None
    return jsonify(ok=True, **trader_dict(trader)), 201


@bp.get("/traders")
def list_traders() -> ResponseReturnValue:
    query = select(Trader).where(Trader.user_id == user_id()).order_by(Trader.id)
    recorder_id = int_arg("recorder_id")
    if recorder_id is not None:
        query = query.where(Trader.recorder_id == owned_recorder(recorder_id).id)
    return jsonify(ok=True, traders=[trader_dict(t) for t in db().scalars(query)])


@bp.get("/traders/<int:trader_id>")
def get_trader(trader_id: int) -> ResponseReturnValue:
    return jsonify(ok=True, **trader_dict(owned_trader(trader_id)))


@bp.put("/traders/<int:trader_id>")
def update_trader(trader_id: int) -> ResponseReturnValue:
    trader = owned_trader(trader_id)
    body = parse(TraderUpdate, json_object())
    fields = body.model_dump(include=body.model_fields_set)
    if fields.get("enabled"):
        trader.disabled_until = trader.disabled_reason = None  # switching on clears a pause
    _apply(trader, fields)
    db().commit()
    return jsonify(ok=True, **trader_dict(trader))


@bp.delete("/traders/<int:trader_id>")
def delete_trader(trader_id: int) -> ResponseReturnValue:
    session = db()
    session.delete(owned_trader(trader_id))
    session.commit()
    return jsonify(ok=True, id=trader_id)


@bp.get("/orders")
def list_orders() -> ResponseReturnValue:
    query = select(OrderIntent).where(OrderIntent.user_id == user_id())
    trader_id = int_arg("trader_id")
    if trader_id is not None:
        query = query.where(OrderIntent.trader_id == owned_trader(trader_id).id)
    subaccount_id = int_arg("subaccount_id")
    if subaccount_id is not None:
        query = query.where(OrderIntent.subaccount_id == owned_subaccount(subaccount_id).id)
    status = choice_arg("status", ("queued", "sending", "accepted", "filled", "rejected", "failed"))
    if status:
        query = query.where(OrderIntent.status == status)
    limit = int_arg("limit", default=200, low=1, high=2000)
    intents = db().scalars(query.order_by(OrderIntent.sequence.desc()).limit(limit))
    return jsonify(ok=True, orders=[intent_dict(i) for i in intents])


@bp.get("/orders/<order_id>")
def get_order(order_id: str) -> ResponseReturnValue:
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        raise NotFound("Order not found.") from None
    intent = db().get(OrderIntent, key)
    if intent is None or intent.user_id != user_id():
        raise NotFound("Order not found.")
    return jsonify(ok=True, **intent_dict(intent))
