"""The signed-in user's password and browser logins: change the password (every other login
ends), list the live logins, and log out everywhere."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from libs.common.passwords import WeakPassword, check_password
from libs.common.security import hash_password, verify_password
from libs.common.serialize import iso
from libs.common.storage.models import LoginSession, User, utcnow
from services.ui.api.schemas import json_object
from services.ui.auth import end_logins, forget_this_login, login_throttle
from services.ui.context import db, user_id
from services.ui.errors import ApiError, TooManyRequests, ValidationFailed
from services.ui.login_sessions import LOGGED_OUT_EVERYWHERE, PASSWORD_CHANGED, live_logins
from services.ui.login_throttle import TooManyLogins

bp = Blueprint("account_security", __name__, url_prefix="/api")
MAX_PASSWORD_FIELD = 1024  # far above the policy's maximum; only bounds the hashing work


class WrongPassword(ApiError):
    status = 403


def _this_login() -> str | None:
    return current_user.login_hash if current_user.via == "session" else None


def _password_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{name} is required (text).", field=name)
    if len(value) > MAX_PASSWORD_FIELD:
        raise ValidationFailed(
            f"{name} must have at most {MAX_PASSWORD_FIELD} characters.", field=name
        )
    return value


@bp.post("/password")
def change_password() -> ResponseReturnValue:
    body = json_object()
    current, new = (_password_field(body, name) for name in ("current_password", "new_password"))
    user = db().get(User, user_id())
    assert user is not None  # the guard let an authenticated caller in
    # Guessing the current password through this route counts like guessing it at /login.
    throttle, address = login_throttle(), request.remote_addr or "-"
    try:
        throttle.check(user.email, address)
    except TooManyLogins as exc:
        raise TooManyRequests(str(exc), exc.retry_after_s) from None
    if not verify_password(user.password_hash, current):
        throttle.failed(user.email, address)
        raise WrongPassword(
            "current_password is not your current password; nothing changed.",
            field="current_password",
        )
    try:
        check_password(new, user.email)
    except WeakPassword as exc:
        raise ValidationFailed(
            f"new_password {exc.reason} (rule: {exc.rule}).", field="new_password"
        ) from None
    if new == current:
        raise ValidationFailed(
            "new_password must differ from current_password (rule: changed).",
            field="new_password",
        )
    now = utcnow()
    user.password_hash, user.password_changed_at = hash_password(new), now
    db().commit()
    ended = end_logins(user.id, PASSWORD_CHANGED, keep=_this_login())
    return jsonify(ok=True, password_changed_at=iso(now), sessions_ended=ended)


def login_dict(login: LoginSession, this_login: str | None) -> dict[str, object]:
    # Never the id nor its hash: either one names the login to the server.
    return {
        "created_at": iso(login.created_at),
        "last_seen_at": iso(login.last_seen_at),
        "expires_at": iso(login.expires_at),
        "user_agent": login.user_agent,
        "address": login.address,
        "current": login.id_hash == this_login,
    }


@bp.get("/sessions")
def list_sessions() -> ResponseReturnValue:
    this_login = _this_login()
    logins = live_logins(db(), user_id(), utcnow())
    return jsonify(ok=True, sessions=[login_dict(login, this_login) for login in logins])


@bp.post("/sessions/end-all")
def end_all_sessions() -> ResponseReturnValue:
    ended = end_logins(user_id(), LOGGED_OUT_EVERYWHERE)
    if _this_login() is not None:
        forget_this_login()
    return jsonify(ok=True, sessions_ended=ended)
