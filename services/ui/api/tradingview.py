"""The user's TradingView session: cookies stored encrypted, and whether the feed got in with them.

GET never returns the cookies. Whether the last connection was authenticated comes from the price
feed's status in Redis, shown only to the user whose cookies the feed is using.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from libs.common import streams
from libs.common.security import SecretBox
from libs.common.serialize import iso
from libs.common.storage.models import TradingViewSession
from services.ui.api.schemas import TradingViewCookies, json_object, parse
from services.ui.context import db, redis_client, settings, user_id

bp = Blueprint("tradingview", __name__, url_prefix="/api/tradingview")

REFRESH_STEPS = (
    "Sign in to TradingView in your browser, open the site's cookies (developer tools → "
    "Application → Cookies → https://www.tradingview.com), copy the values of sessionid and "
    "sessionid_sign, and save them here. Signing in with a password is not possible: webhook "
    "alerts need two-factor authentication on the account."
)


def _feed_view() -> dict[str, Any]:
    raw = redis_client().get(settings().stream(streams.PRICE_FEED_STATUS))
    status = json.loads(raw) if raw else {}
    session = status.get("tradingview_session") or {}
    if session.get("user_id") != user_id():
        return {"in_use": False, "authenticated": None, "token_expires_at": None, "error": None}
    return {
        "in_use": True,
        "authenticated": session.get("authenticated"),
        "token_expires_at": session.get("token_expires_at"),
        "error": session.get("error"),
    }


def session_view() -> dict[str, Any]:
    row = db().get(TradingViewSession, user_id())
    view = {"configured": row is not None, "updated_at": iso(row.updated_at) if row else None}
    view.update(_feed_view())
    view["price_source"] = settings().price_source
    if view["authenticated"] is False or not view["configured"]:
        view["how_to_refresh"] = REFRESH_STEPS
    return view


@bp.get("/session")
def get_session() -> ResponseReturnValue:
    return jsonify(ok=True, **session_view())


@bp.post("/session")
def save_session() -> ResponseReturnValue:
    cookies = parse(TradingViewCookies, json_object())
    box = SecretBox(settings().encryption_key)
    sealed = box.encrypt(json.dumps(cookies.model_dump()))
    session = db()
    row = session.get(TradingViewSession, user_id())
    if row is None:
        session.add(TradingViewSession(user_id=user_id(), cookies_encrypted=sealed))
    else:
        row.cookies_encrypted = sealed
    session.commit()
    return jsonify(ok=True, **session_view())


@bp.delete("/session")
def delete_session() -> ResponseReturnValue:
    session = db()
    row = session.get(TradingViewSession, user_id())
    if row is not None:
        session.delete(row)
        session.commit()
    return jsonify(ok=True, **session_view())
