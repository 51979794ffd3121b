"""The signed-in user and their own preferences (`GET|PUT /api/me`)."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from libs.common.futures.instruments import MAX_ORDER_CONTRACTS
from libs.common.storage.models import User
from services.ui.api.schemas import FIELD_RULES, json_object, parse
from services.ui.context import db, user_id

bp = Blueprint("me", __name__, url_prefix="/api/me")

FIELD_RULES.update(
    {
        "manual_confirm_above": "manual_confirm_above must be a whole number of contracts "
        f"from 1 to {MAX_ORDER_CONTRACTS}",
    }
)


class Preferences(BaseModel):
    """Only the fields present in the body change."""

    model_config = ConfigDict(extra="forbid")

    manual_confirm_above: Annotated[StrictInt, Field(ge=1, le=MAX_ORDER_CONTRACTS)] = 5


def me_dict(user: User) -> dict:
    return {
        "id": user.id,
        "email": user.email,
        "is_admin": user.is_admin,
        "manual_confirm_above": user.manual_confirm_above,
    }


def current() -> User:
    user = db().get(User, user_id())
    assert user is not None  # the login loaded this user for this very request
    return user


@bp.get("")
def get_me() -> ResponseReturnValue:
    return jsonify(ok=True, **me_dict(current()))


@bp.put("")
def update_me() -> ResponseReturnValue:
    body = parse(Preferences, json_object())
    user = current()
    if "manual_confirm_above" in body.model_fields_set:
        user.manual_confirm_above = body.manual_confirm_above
    db().commit()
    return jsonify(ok=True, **me_dict(user))
