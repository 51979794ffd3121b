"""Signal routes: what became of each webhook call (applied, ignored, rejected, or still pending).

A signal is in PostgreSQL once the engine has applied it; before that the gateway's
`signal_pending:<id>` key in Redis is the only trace, and it is enough to answer `pending`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import redis
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select, tuple_

from libs.common import streams
from libs.common.serialize import signal_dict
from libs.common.storage.models import Recorder, Signal
from services.ui.api.params import choice_arg, int_arg
from services.ui.api.recorders import owned_recorder
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import NotFound, ValidationFailed

bp = Blueprint("signals", __name__, url_prefix="/api/signals")

STATUSES = ("applied", "ignored", "rejected")


def _parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _owned_signals() -> Select[Signal]:
    return (
        select(Signal)
        .join(Recorder, Recorder.id == Signal.recorder_id)
        .where(Recorder.user_id == user_id())
    )


def _before(query: Select[Signal]) -> Select[Signal]:
    """`before` is the id of the last signal of the previous page, or an ISO-8601 time."""
    raw = request.args.get("before", "").strip()
    if not raw:
        return query
    signal_id = _parse_uuid(raw)
    if signal_id is not None:
        cursor = (
            db()
            .execute(
                _owned_signals()
                .with_only_columns(Signal.received_at, Signal.id)
                .where(Signal.id == signal_id)
            )
            .first()
        )
        if cursor is None:
            raise NotFound("Signal not found.")
        return query.where(tuple_(Signal.received_at, Signal.id) < tuple_(*cursor))
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            "before must be a signal id or a time like 2026-11-24T14:30:00Z."
        ) from None
    return query.where(Signal.received_at < moment)


@bp.get("")
def list_signals() -> ResponseReturnValue:
    limit = int_arg("limit", default=50, low=1, high=500)
    query = _owned_signals()
    recorder_id = int_arg("recorder_id")
    if recorder_id is not None:
        query = query.where(Signal.recorder_id == owned_recorder(recorder_id).id)
    status = choice_arg("status", STATUSES)
    if status:
        query = query.where(Signal.status == status)
    query = _before(query).order_by(Signal.received_at.desc(), Signal.id.desc()).limit(limit)
    signals = db().scalars(query).all()
    next_before = str(signals[-1].id) if len(signals) == limit else None
    return jsonify(ok=True, signals=[signal_dict(s) for s in signals], next_before=next_before)


@bp.get("/<signal_id>")
def get_signal(signal_id: str) -> ResponseReturnValue:
    parsed = _parse_uuid(signal_id)
    if parsed is None:
        raise NotFound("Signal not found.")
    stored = _owned_signals().where(Signal.id == parsed)
    if (signal := db().scalar(stored)) is not None:
        return jsonify(ok=True, **signal_dict(signal))
    recorder_id = _pending_recorder_id(str(parsed))
    if recorder_id is None:
        # The engine deletes the pending key only after its commit: a signal applied between
        # the two reads above is in PostgreSQL now, so look there once more before a 404.
        if (signal := db().scalar(stored)) is not None:
            return jsonify(ok=True, **signal_dict(signal))
        raise NotFound("Signal not found.")
    owned = db().scalar(
        select(Recorder.id).where(Recorder.id == recorder_id, Recorder.user_id == user_id())
    )
    if not owned:
        raise NotFound("Signal not found.")
    return jsonify(
        ok=True,
        id=str(parsed),
        signal_id=str(parsed),
        status="pending",
        reason=None,
        position_id=None,
        recorder_id=recorder_id,
    )


def _pending_recorder_id(signal_id: str) -> int | None:
    """The recorder id the gateway stored at `signal_pending:<id>` when it accepted the signal."""
    try:
        value = redis_client().get(settings().stream(streams.SIGNAL_PENDING + signal_id))
    except redis.ResponseError:  # a key of another type is not the gateway's marker
        return None
    text = value.decode() if isinstance(value, bytes) else (value or "")
    return int(text) if text.strip().isdigit() and 0 < int(text) < 2**31 else None
