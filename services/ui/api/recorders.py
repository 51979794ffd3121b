"""Recorder routes: create, list, change, delete, rotate the webhook token (the webhook as
TradingView meets it — setup, refusals, a test alert — is in recorder_webhook.py).

Every change is committed to PostgreSQL first, then mirrored into the gateway's Redis token map
(libs.common.recorder_tokens), so the gateway never knows a token the database does not. A
recorder's signals and positions are the engine's to write: deleting it or resetting its history
is a command on `jt:engine_commands` (the recorder's engine partition's), answered on `jt:events`.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import redis
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from libs.common import events, recorder_tokens, streams
from libs.common.exit_plans import ExitPlanError, parse_exit_plan
from libs.common.security import new_webhook_token
from libs.common.serialize import num, recorder_dict
from libs.common.storage.models import Position, Recorder
from services.ui.api.schemas import RecorderCreate, RecorderUpdate, json_object, parse
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import NotFound, ValidationFailed

bp = Blueprint("recorders", __name__, url_prefix="/api/recorders")

MAX_ID = 2**31 - 1  # ids are INTEGER columns; a bigger number cannot exist
ENGINE_ANSWER_WAIT_S = 5.0  # then 202: the command stays in its stream for the engine
ENGINE_ANSWERS = (events.RECORDER_DELETED, events.RECORDER_HISTORY_RESET)
# XREAD on the UI's client, which decodes replies (redis-py's types cannot tell).


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
    return {
        **recorder_dict(recorder, settings().public_url),
        "max_qty": num(recorder.max_qty),
        "open_positions": open_positions,
    }


def _check_sizes(default_qty: Decimal, max_qty: Decimal) -> None:
    """max_qty within the platform's cap, and the size a signal gets by default within max_qty;
    else a 422 naming the field and the limit."""
    cap = settings().max_signal_qty
    if max_qty > cap:
        raise ValidationFailed(
            f"max_qty must be at most {cap}, the most contracts one signal may carry on this "
            "platform (MAX_SIGNAL_QTY).",
            field="max_qty",
        )
    if default_qty > max_qty:
        raise ValidationFailed(
            f"default_qty must be at most max_qty ({max_qty.normalize():f}): the gateway "
            "refuses a signal larger than max_qty.",
            field="default_qty",
        )


def _cache(recorder: Recorder, old_token: str | None = None) -> None:
    recorder_tokens.put(redis_client(), settings(), recorder, old_token=old_token)


def checked_exits(exits: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plan as stored (normalized), or a 422 naming the field and the rule it breaks."""
    if exits is None:
        return None
    try:
        return parse_exit_plan(exits).to_json()
    except ExitPlanError as exc:
        raise ValidationFailed(f"{exc.field}: {exc.rule}.") from None


def _exit_fields(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """A plan replaces tp_ticks/sl_ticks (its one-leg short form): setting one clears the
    other; a body that sets both is refused."""
    ticks_given = {f for f in ("tp_ticks", "sl_ticks") if f in given and values[f] is not None}
    if "exits" in given and values["exits"] is not None:
        if ticks_given:
            raise ValidationFailed(
                f"Send exits or {' and '.join(sorted(ticks_given))}, not both: tp_ticks and "
                "sl_ticks are the one-leg form of an exit plan."
            )
        return {"exits": checked_exits(values["exits"]), "tp_ticks": None, "sl_ticks": None}
    changed: dict[str, Any] = {
        f: values[f] for f in ("tp_ticks", "sl_ticks", "exits") if f in given
    }
    if ticks_given:
        changed["exits"] = None
    return changed


@bp.post("")
def create_recorder() -> ResponseReturnValue:
    body = parse(RecorderCreate, json_object())
    values = body.model_dump()
    _check_sizes(body.default_qty, body.max_qty)
    values.update(_exit_fields(values, set(body.model_fields_set)))
    recorder = Recorder(user_id=user_id(), webhook_token=new_webhook_token(), **values)
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
    given = set(body.model_fields_set)
    values = {field: getattr(body, field) for field in given}
    if given & {"default_qty", "max_qty"}:
        _check_sizes(
            values.get("default_qty", recorder.default_qty), values.get("max_qty", recorder.max_qty)
        )
    values.update(_exit_fields(body.model_dump(), given))
    for field, value in values.items():
        setattr(recorder, field, value)
    db().commit()
    _cache(recorder)  # the gateway's entry carries the name, the enabled flag and max_qty
    return jsonify(ok=True, **recorder_view(recorder))


@bp.delete("/<int:recorder_id>")
def delete_recorder(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    # The gateway stops taking its signals now; the engine deletes the rows.
    recorder_tokens.remove(redis_client(), settings(), recorder.webhook_token)
    redis_client().delete(settings().stream(f"{streams.WEBHOOK_REFUSED}{recorder.id}"))
    if _ask_engine(streams.DELETE_RECORDER, recorder) is None:
        return _queued(recorder_id, "delete the recorder, its signals and positions")
    return jsonify(ok=True, id=recorder_id)


@bp.post("/<int:recorder_id>/rotate-token")
def rotate_token(recorder_id: int) -> ResponseReturnValue:
    recorder = owned_recorder(recorder_id)
    old_token = recorder.webhook_token
    recorder.webhook_token = new_webhook_token()
    db().commit()
    _cache(recorder, old_token=old_token)
    return jsonify(ok=True, **recorder_view(recorder))


@bp.post("/<int:recorder_id>/reset-history")
def reset_history(recorder_id: int) -> ResponseReturnValue:
    """Forget closed trades and signals; an open position is live state and stays."""
    answer = _ask_engine(streams.RESET_HISTORY, owned_recorder(recorder_id))
    if answer is None:
        return _queued(recorder_id, "delete its closed positions and signals")
    if not answer["found"]:
        raise NotFound("Recorder not found.")
    return jsonify(
        ok=True,
        id=recorder_id,
        deleted_signals=answer["deleted_signals"],
        deleted_positions=answer["deleted_positions"],
    )


CLOCK_MARGIN_MS = 1000


def _queued(recorder_id: int, what: str) -> ResponseReturnValue:
    message = f"The position engine is not answering; it will {what} when it runs."
    return jsonify(ok=True, id=recorder_id, queued=True, message=message), 202


def _ask_engine(kind: str, recorder: Recorder) -> dict[str, Any] | None:
    """Send the engine a command about the recorder and wait (bounded) for its answer; None when
    it does not answer in time."""
    command = streams.EngineCommand(str(uuid.uuid4()), kind, recorder.id, recorder.user_id)
    db().rollback()  # no transaction held open while the engine deletes rows
    client, config = redis_client(), settings()
    partition = config.partition_of(recorder.id)  # the engine that owns the recorder
    commands = config.partition_key(streams.ENGINE_COMMANDS, partition)
    sent = streams.add(client, commands, command.to_fields())
    if not client.exists(config.partition_key(streams.ENGINE_COMMANDS_READER, partition)):
        return None  # no engine reads commands now: no use waiting
    return _answer(client, config.stream(streams.EVENTS), str(sent), command.command_id)


def _answer(
    client: redis.Redis, events_stream: str, sent: str, command_id: str
) -> dict[str, Any] | None:
    """The engine's answer to `command_id` on `jt:events`, written after the command `sent`."""
    ms = int(sent.partition("-")[0])
    # Another stream's ids may share the command's millisecond; on a Redis Cluster the events
    # live on another node, whose clock may be a little behind.
    last = f"{ms - CLOCK_MARGIN_MS}-0"
    deadline = time.monotonic() + ENGINE_ANSWER_WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        reply = client.xread({events_stream: last}, count=1000, block=max(1, int(left * 1000)))
        for entry_id, fields in streams.read_entries(reply):
            last = entry_id
            if fields.get("type") not in ENGINE_ANSWERS:
                continue
            data: dict[str, Any] = json.loads(fields.get("data") or "{}")
            if data.get("command_id") == command_id:
                return data
    return None
