"""Signal routes: what became of each webhook call (applied, ignored, rejected, or still pending),
and its timeline: every hop from the gateway to the broker's last word, with its time.

A signal is in PostgreSQL once the engine has applied it; before that the gateway's
`signal_pending:<id>` key in Redis is the only trace, and it is enough to answer `pending`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, select, tuple_

from libs.common import streams
from libs.common.serialize import iso, num, signal_dict
from libs.common.storage.models import Account, OrderIntent, Recorder, Signal, Subaccount
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
    found = _owned_signal(signal_id)
    return jsonify(ok=True, **(signal_dict(found) if isinstance(found, Signal) else found))


def _owned_signal(signal_id: str) -> Signal | dict[str, Any]:
    """The user's stored signal, or the `pending` answer for one only the gateway's marker knows;
    NotFound for anything else (an unknown id, another user's)."""
    parsed = _parse_uuid(signal_id)
    if parsed is None:
        raise NotFound("Signal not found.")
    stored = _owned_signals().where(Signal.id == parsed)
    if (signal := db().scalar(stored)) is not None:
        return signal
    recorder_id = _pending_recorder_id(str(parsed))
    if recorder_id is None:
        # The engine deletes the pending key only after its commit: a signal applied between
        # the two reads above is in PostgreSQL now, so look there once more before a 404.
        if (signal := db().scalar(stored)) is not None:
            return signal
        raise NotFound("Signal not found.")
    owned = db().scalar(
        select(Recorder.id).where(Recorder.id == recorder_id, Recorder.user_id == user_id())
    )
    if not owned:
        raise NotFound("Signal not found.")
    return {
        "id": str(parsed),
        "signal_id": str(parsed),
        "status": "pending",
        "reason": None,
        "position_id": None,
        "recorder_id": recorder_id,
    }


def _pending_recorder_id(signal_id: str) -> int | None:
    """The recorder id the gateway stored at `signal_pending:<id>` (in the recorder's engine
    partition, which the id alone does not tell) when it accepted the signal."""
    client = redis_client()
    for key in settings().all_partition_keys(streams.SIGNAL_PENDING + signal_id):
        try:
            value = client.get(key)
        except redis.ResponseError:  # a key of another type is not the gateway's marker
            continue
        text = value.decode() if isinstance(value, bytes) else (value or "")
        if text.strip().isdigit() and 0 < int(text) < 2**31:
            return int(text)
    return None


# ---- the timeline: one signal hop by hop, from the gateway to the broker's last word ----

PENDING_DETAIL = "received by the gateway; the engine has not applied it yet"
MAX_COPY_DEPTH = 4  # copies of copies: a follower may lead another group


@bp.get("/<signal_id>/timeline")
def signal_timeline(signal_id: str) -> ResponseReturnValue:
    found = _owned_signal(signal_id)
    if not isinstance(found, Signal):
        hop = _hop("pending", None, PENDING_DETAIL)
        return jsonify(
            ok=True, signal=found, hops=[{**hop, "ms_since_previous": None}], total_ms=None
        )
    intents = _intents_of(found.id)
    hops = timeline_hops(found, intents, _account_names(intents))
    times = [h["at"] for h in hops if h["at"] is not None]
    total_ms = _ms(times[0], max(times)) if len(times) > 1 else None
    return jsonify(
        ok=True,
        signal=signal_dict(found),
        hops=[{**h, "at": iso(h["at"])} for h in hops],
        total_ms=total_ms,
    )


def _intents_of(signal_id: uuid.UUID) -> list[OrderIntent]:
    """The signal's order intents and the copies made of them for followers, in send order."""
    found = {
        i.id: i
        for i in db().scalars(
            select(OrderIntent).where(
                OrderIntent.signal_id == signal_id, OrderIntent.user_id == user_id()
            )
        )
    }
    parents = set(found)
    for _ in range(MAX_COPY_DEPTH):
        if not parents:
            break
        copies = (
            db()
            .scalars(
                select(OrderIntent).where(
                    OrderIntent.parent_id.in_(parents), OrderIntent.user_id == user_id()
                )
            )
            .all()
        )
        parents = {c.id for c in copies if c.id not in found}
        found.update((c.id, c) for c in copies)
    return sorted(found.values(), key=lambda i: i.sequence)


def _account_names(intents: list[OrderIntent]) -> dict[int, str]:
    """The "account / subaccount" name of each subaccount the intents go to."""
    if not intents:
        return {}
    rows = db().execute(
        select(Subaccount.id, Account.name, Subaccount.name)
        .join(Account, Account.id == Subaccount.account_id)
        .where(Subaccount.id.in_({i.subaccount_id for i in intents}))
    )
    return {sub_id: f"{account} / {sub}" for sub_id, account, sub in rows}


def timeline_hops(
    signal: Signal, intents: list[OrderIntent], accounts: dict[int, str]
) -> list[dict[str, Any]]:
    """Every hop with a time, each intent's hops together; `ms_since_previous` is measured from
    the hop before (an intent's first hop: from the engine's)."""
    outcome = _engine_hop(signal)  # processed_at: when the engine decided, before any intent
    head = [_received_hop(signal), _stream_hop(signal), outcome]
    hops = _timed([h for h in head if h["at"] is not None], None)
    for intent in intents:
        hops += _timed(_intent_hops(intent, accounts.get(intent.subaccount_id)), outcome["at"])
    return hops


def _timed(hops: list[dict[str, Any]], start: datetime | None) -> list[dict[str, Any]]:
    previous, out = start, []
    for hop in hops:
        at = hop["at"]
        ms = None if at is None or previous is None else _ms(previous, at)
        out.append({**hop, "ms_since_previous": ms})
        previous = at if at is not None else previous
    return out


def _ms(start: datetime, end: datetime) -> int:
    return round((end - start).total_seconds() * 1000)


def _hop(
    hop: str,
    at: datetime | None,
    detail: str,
    intent: OrderIntent | None = None,
    account: str | None = None,
    fill_price: Decimal | None = None,
) -> dict[str, Any]:
    return {
        "hop": hop,
        "at": at,
        "detail": detail,
        "intent_id": str(intent.id) if intent else None,
        "trader_id": intent.trader_id if intent else None,
        "account": account,
        "fill_price": num(fill_price),
    }


def _received_hop(s: Signal) -> dict[str, Any]:
    what = " ".join(
        str(part)
        for part in (
            s.action or s.market_position,
            num(s.qty if s.action else s.position_size),
            s.ticker,
        )
        if part is not None
    )
    at_price = f" @ {num(s.price)}" if s.price is not None else ""
    return _hop("received", s.received_at, f"The gateway accepted {what or 'the alert'}{at_price}.")


def _stream_hop(s: Signal) -> dict[str, Any]:
    """The stream id's first part is the Redis server's clock in ms when it took the entry."""
    millis = (s.stream_id or "").partition("-")[0]
    if not millis.isdigit():
        return _hop("stream", None, "")
    at = datetime.fromtimestamp(int(millis) / 1000, UTC)
    return _hop("stream", at, f"Entry {s.stream_id} of the signal stream.")


def _engine_hop(s: Signal) -> dict[str, Any]:
    if s.status == "applied":
        where = f" to position #{s.position_id}" if s.position_id else ""
        detail = f"The engine applied it{where}." + (f" {_sentence(s.reason)}" if s.reason else "")
    else:
        detail = f"The engine {s.status} it: {_sentence(s.reason or 'no reason given')}"
    return _hop(s.status, s.processed_at, detail)


def _intent_hops(i: OrderIntent, account: str | None) -> list[dict[str, Any]]:
    where = account or f"subaccount #{i.subaccount_id}"
    contract = i.contract or i.ticker or i.symbol
    copy = " (a follower's copy)" if i.source == "copy" else ""
    queued = f"{i.side} {num(i.quantity)} {contract}, {i.kind}, for {where}{copy}."
    hops = [_hop("queued", i.created_at, queued[0].upper() + queued[1:], i, account)]
    if i.sent_at is not None:
        tries = f" (attempt {i.attempts})" if i.attempts > 1 else ""
        hops.append(_hop("sent", i.sent_at, f"Sent to the broker{tries}.", i, account))
    if i.accepted_at is not None:
        order = f" as order {i.broker_order_id}" if i.broker_order_id else ""
        hops.append(_hop("accepted", i.accepted_at, f"The broker accepted it{order}.", i, account))
    if i.finished_at is not None and i.status not in ("accepted", "sending", "queued"):
        hops.append(_hop(i.status, i.finished_at, _final_detail(i), i, account, i.fill_price))
    return hops


def _final_detail(i: OrderIntent) -> str:
    if i.status == "filled":
        done = f"Filled at {num(i.fill_price)}." if i.fill_price is not None else "Done."
        return f"{done} {_sentence(i.error)}" if i.error else done
    return f"{i.status.capitalize()}: {_sentence(i.error or 'no reason given')}"


def _sentence(text: str) -> str:
    """A reason as the end of a sentence: one full stop, whether or not it had one."""
    return text.rstrip().rstrip(".") + "."
