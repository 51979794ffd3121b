"""The signed-in user and their own preferences (`GET|PUT /api/me`): the manual ticket's
confirmation size and the time zone the pages, the calendar and the CSV show times in."""

from __future__ import annotations

from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from sqlalchemy import select

from libs.common.futures.instruments import MAX_ORDER_CONTRACTS
from libs.common.storage.models import User
from services.ui.api.schemas import FIELD_RULES, json_object, parse
from services.ui.context import db, user_id

bp = Blueprint("me", __name__, url_prefix="/api/me")

# A futures trader thinks in exchange time: the CME's session days are cut in Chicago.
DEFAULT_TIME_ZONE = "America/Chicago"

FIELD_RULES.update(
    {
        "manual_confirm_above": "manual_confirm_above must be a whole number of contracts "
        f"from 1 to {MAX_ORDER_CONTRACTS}",
        "time_zone": "time_zone must be an IANA time zone such as America/Chicago, "
        "America/New_York or Europe/London",
    }
)


@cache
def _known_zones() -> frozenset[str]:
    # "localtime" is this host's zone, not a name a browser or a script would mean.
    return frozenset(available_timezones() - {"localtime"} | {"UTC"})


def _known(name: str) -> str:
    if name not in _known_zones():
        raise ValueError("unknown time zone")
    return name


TimeZoneName = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_known),
]


class Preferences(BaseModel):
    """Only the fields present in the body change."""

    model_config = ConfigDict(extra="forbid")

    manual_confirm_above: Annotated[StrictInt, Field(ge=1, le=MAX_ORDER_CONTRACTS)] = 5
    time_zone: TimeZoneName = Field(
        DEFAULT_TIME_ZONE,
        description="IANA zone the pages, the dashboard's days and its CSV use; "
        "the API's timestamps stay UTC",
        examples=["America/Chicago", "America/New_York", "UTC"],
    )


def zone_named(name: str | None) -> ZoneInfo:
    """The zone of a stored name; the exchange's zone for a name this host no longer knows."""
    return ZoneInfo(name if name and name in _known_zones() else DEFAULT_TIME_ZONE)


def user_time_zone() -> ZoneInfo:
    """The signed-in user's zone, for cutting days and showing times."""
    return zone_named(db().scalar(select(User.time_zone).where(User.id == user_id())))


def me_dict(user: User) -> dict:
    return {
        "id": user.id,
        "email": user.email,
        "is_admin": user.is_admin,
        "manual_confirm_above": user.manual_confirm_above,
        "time_zone": zone_named(user.time_zone).key,
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
    for field in body.model_fields_set:
        setattr(user, field, getattr(body, field))
    db().commit()
    return jsonify(ok=True, **me_dict(user))
