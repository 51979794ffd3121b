"""Notification destinations of the signed-in user (§4e): made with their target checked (a
private address is refused unless the operator allows its host), listed with the last delivery,
changed (enabled, events), removed, and tried with the test button. Targets and secrets are
stored encrypted and never answered back: the list shows a masked form, and a webhook's signing
secret is answered once, when it is made."""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select

from libs.common.notify import rules
from libs.common.notify.delivery import deliver_now
from libs.common.notify.targets import TargetRefused, read_target
from libs.common.security import SecretBox
from libs.common.serialize import iso
from libs.common.storage.models import NotificationDestination
from services.ui.api.recorders import MAX_ID
from services.ui.api.schemas import json_object, parse
from services.ui.context import db, settings, user_id
from services.ui.errors import NotFound, ValidationFailed

bp = Blueprint("notifications", __name__, url_prefix="/api/notifications")

MAX_DESTINATIONS = 20  # per user


class DestinationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "discord", "telegram", "email"]
    target: Any = Field(
        description="webhook: an https URL; discord: its webhook URL; telegram: "
        "{bot_token, chat_id}; email: {to}"
    )
    events: list[rules.Event] = Field(min_length=1, max_length=len(rules.EVENTS))
    enabled: StrictBool = True


class DestinationUpdate(BaseModel):
    """Only the fields present in the body change."""

    model_config = ConfigDict(extra="forbid")

    events: list[rules.Event] | None = Field(None, min_length=1, max_length=len(rules.EVENTS))
    enabled: StrictBool | None = None


def destination_dict(d: NotificationDestination) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind,
        "target": d.target_masked,
        "events": list(d.events),
        "enabled": d.enabled,
        "created_at": iso(d.created_at),
        "last_delivery": None
        if d.last_delivery_at is None
        else {
            "at": iso(d.last_delivery_at),
            "event": d.last_delivery_event,
            "ok": d.last_delivery_ok,
            "error": d.last_delivery_error,
        },
        "deliveries_ok": d.deliveries_ok,
        "deliveries_failed": d.deliveries_failed,
    }


def owned_destination(destination_id: int) -> NotificationDestination:
    dest = (
        db().get(NotificationDestination, destination_id) if 0 < destination_id <= MAX_ID else None
    )
    if dest is None or dest.user_id != user_id():
        raise NotFound("Notification destination not found.")
    return dest


def _unique(events: list[str]) -> list[str]:
    return [e for e in rules.EVENTS if e in events]


@bp.get("")
def list_destinations() -> ResponseReturnValue:
    rows = db().scalars(
        select(NotificationDestination)
        .where(NotificationDestination.user_id == user_id())
        .order_by(NotificationDestination.id)
    )
    return jsonify(ok=True, destinations=[destination_dict(d) for d in rows], events=rules.EVENTS)


@bp.post("")
def create_destination() -> ResponseReturnValue:
    body = parse(DestinationCreate, json_object())
    session = db()
    count = len(
        session.scalars(
            select(NotificationDestination.id).where(NotificationDestination.user_id == user_id())
        ).all()
    )
    if count >= MAX_DESTINATIONS:
        raise ValidationFailed(f"At most {MAX_DESTINATIONS} notification destinations per user.")
    try:
        target = read_target(body.kind, body.target, settings().notify_allowed_hosts)
    except TargetRefused as exc:
        raise ValidationFailed(str(exc)[0].upper() + str(exc)[1:] + ".") from None
    box = SecretBox(settings().encryption_key)
    secret = secrets.token_hex(32) if body.kind == "webhook" else None
    dest = NotificationDestination(
        user_id=user_id(),
        kind=body.kind,
        target_sealed=box.encrypt(json.dumps(target.value)),
        target_masked=target.masked,
        secret_sealed=box.encrypt(secret) if secret else None,
        events=_unique(list(body.events)),
        enabled=body.enabled,
        deliveries_ok=0,
        deliveries_failed=0,
    )
    session.add(dest)
    session.commit()
    extra = {"secret": secret} if secret else {}
    return jsonify(ok=True, **destination_dict(dest), **extra), 201


@bp.put("/<int:destination_id>")
def update_destination(destination_id: int) -> ResponseReturnValue:
    dest = owned_destination(destination_id)
    body = parse(DestinationUpdate, json_object())
    if body.events is not None:
        dest.events = _unique(list(body.events))
    if body.enabled is not None:
        dest.enabled = body.enabled
    db().commit()
    return jsonify(ok=True, **destination_dict(dest))


@bp.delete("/<int:destination_id>")
def delete_destination(destination_id: int) -> ResponseReturnValue:
    dest = owned_destination(destination_id)
    db().delete(dest)
    db().commit()
    return jsonify(ok=True, id=destination_id)


@bp.post("/<int:destination_id>/test")
def test_destination(destination_id: int) -> ResponseReturnValue:
    """Send a test message now (not queued: the user is waiting for the answer) and record it as
    the last delivery; 200 either way, with `delivered` and the error."""
    dest = owned_destination(destination_id)
    data = {"message": "Test notification", "destination_id": dest.id}
    error = deliver_now(settings(), db(), dest, rules.TEST, data)
    db().commit()
    return jsonify(ok=True, delivered=error is None, error=error, **destination_dict(dest))
