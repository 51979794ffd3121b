"""Recorder routes: create, list, change, delete, rotate the webhook token, alert templates.

Every change is committed to PostgreSQL first, then mirrored into the gateway's Redis token map
(libs.common.recorder_tokens), so the gateway never knows a token the database does not.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, func, select

from libs.common import recorder_tokens
from libs.common.security import new_webhook_token
from libs.common.serialize import recorder_dict
from libs.common.storage.models import Position, Recorder, Signal
from services.ui import alert_templates
from services.ui.api.schemas import RecorderCreate, RecorderUpdate, json_object, parse
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import NotFound

bp = Blueprint("recorders", __name__, url_prefix="/api/recorders")

MAX_ID = 2**31 - 1  # ids are INTEGER columns; a bigger number cannot exist


def owned_recorder(recorder_id: int) -> Recorder:
    """The caller's recorder; anyone else's answers exactly like a missing one."""
    recorder = None
    if 0 < recorder_id <= MAX_ID:
        recorder = db().scalar(
            select(Recorder).where(Recorder.id == recorder_id, Recorder.user_id == user_id())
        )
    if recorder is None:
        raise NotFound("Recorder not found.")
    return recorder


def _open_positions(recorder_ids: list[int]) -> dict[int, int]:
    if not recorder_ids:
        return {}
    rows = db().execute(
        select(Position.recorder_id, func.count())
        .where(Position.recorder_id.in_(recorder_ids), Position.status == "open")
        .group_by(Position.recorder_id)
    )
    return {rid: count for rid, count in rows}


def recorder_view(recorder: Recorder, open_positions: int | None = None) -> dict:
    if open_positions is None:
        open_positions = _open_positions([recorder.id]).get(recorder.id, 0)
    return {**recorder_dict(recorder, settings().public_url), "open_positions": open_positions}


def _cache(recorder: Recorder, old_token: str | None = None) -> None:
    recorder_tokens.put(redis_client(), settings().stream_prefix, recorder, old_token=old_token)


@bp.post("")
def create_recorder() -> ResponseReturnValue:
    body = parse(RecorderCreate, json_object())
    recorder = Recorder(user_id=user_id(), webhook_token=new_webhook_token(), **body.model_dump())
    session = db()
    session.add(recorder)
    session.commit()
    _cache(recorder)
    return jsonify(ok=True, **recorder_view(recorder, 0)), 201


@bp.get("")
def list_recorders() -> ResponseReturnValue:
    recorders = (
        db()
        .scalars(select(Recorder).where(Recorder.user_id == user_id()).order_by(Recorder.id))
        .all()
    )
    counts = _open_positions([r.id for r in recorders])
    return jsonify(ok=True, recorders=[recorder_view(r, counts.get(r.id, 0)) for r in recorders])


@bp.get("/<int:recorder_id>")
def get_recorder(recorder_id: int) -> ResponseReturnValue:
    return jsonify(ok=True, **recorder_view(owned_recorder(recorder_id)))


@bp.put("/<int:recorder_id>")
def update_recorder(recorder_id: int) -> ResponseReturnValue:
    body = parse(RecorderUpdate, json_object())
    recorder = owned_recorder(recorder_id)
    for field in body.model_fields_set:
        setattr(recorder, field, getattr(body, field))
    db().commit()
    _cache(recorder)  # the gateway's entry carries the name and the enabled flag
    return jsonify(ok=True, **recorder_view(recorder))


@bp.delete("/<int:recorder_id>")
def delete_recorder(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    token = recorder.webhook_token
    session = db()
    session.delete(recorder)  # signals, positions and fills go by ON DELETE CASCADE
    session.commit()
    recorder_tokens.remove(redis_client(), settings().stream_prefix, token)
    return jsonify(ok=True, id=recorder_id)


@bp.post("/<int:recorder_id>/rotate-token")
def rotate_token(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    old_token = recorder.webhook_token
    recorder.webhook_token = new_webhook_token()
    db().commit()
    _cache(recorder, old_token=old_token)
    return jsonify(ok=True, **recorder_view(recorder))


@bp.get("/<int:recorder_id>/webhook")
def webhook_setup(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    return jsonify(
        ok=True,
        recorder_id=recorder.id,
        webhook_url=f"{settings().public_url}/webhook/{recorder.webhook_token}",
        templates={
            "indicator": alert_templates.indicator_template(recorder.name),
            "strategy": alert_templates.strategy_template(recorder.name),
        },
        how_to=alert_templates.HOW_TO,
    )


@bp.post("/<int:recorder_id>/reset-history")
def reset_history(recorder_id: int) -> ResponseReturnValue:
    """Forget closed trades and signals; an open position is live state and stays."""
    recorder = owned_recorder(recorder_id)
    session = db()
    signals = session.execute(delete(Signal).where(Signal.recorder_id == recorder.id)).rowcount
    positions = session.execute(
        delete(Position).where(Position.recorder_id == recorder.id, Position.status == "closed")
    ).rowcount
    session.commit()
    return jsonify(ok=True, id=recorder.id, deleted_signals=signals, deleted_positions=positions)
