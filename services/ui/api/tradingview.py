"""The price feed's TradingView session: an operator setting, since one login serves every user.

Only an operator (`users.is_admin`) stores or forgets the cookies and the sign-in credentials
(username, password, authenticator key) with which the feed renews the session by itself; the
feed logs in with the most recently saved operator's cookies. Every user sees whether a session
is set and how the feed is doing, never the cookies nor whose they are. Cookies a user stored
before this was an operator setting are ignored by the feed; their owner may still delete them.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, select

from libs.common import streams
from libs.common.security import SecretBox
from libs.common.serialize import iso
from libs.common.storage.models import (
    TradingViewCredentials,
    TradingViewSession,
    User,
    utcnow,
)
from services.ui.api.schemas import (
    TradingViewCookies,
    TradingViewCredentialsBody,
    json_object,
    parse,
)
from services.ui.context import db, redis_client, settings, user_id
from services.ui.errors import Forbidden

bp = Blueprint("tradingview", __name__, url_prefix="/api/tradingview")

REFRESH_STEPS = (
    "Sign in to TradingView in your browser, open the site's cookies (developer tools → "
    "Application → Cookies → https://www.tradingview.com), copy the values of sessionid and "
    "sessionid_sign, and save them here. Or save the TradingView sign-in below (username, "
    "password and the authenticator key) and the feed renews the session by itself."
)
RENEWALS_STOPPED_STEPS = (
    "The feed stopped signing in by itself and stays on delayed quotes. Sign in to TradingView "
    "in your browser (solve the captcha if one is shown), then either save the sign-in below "
    "again (the feed tries once more), or copy the sessionid and sessionid_sign cookies (developer "
    "tools → Application → Cookies → https://www.tradingview.com) and save them here."
)
SIGNS_IN_ITSELF = (
    "The feed signs in to TradingView with the saved sign-in by itself; nothing to do unless it "
    "reports an error."
)
OPERATOR_SETS_IT = (
    "The price feed's TradingView session is shared by every user, so the operator sets it. "
    "An operator is made on the server with `justtrades user admin EMAIL`."
)
OPERATOR_ONLY = (
    "Only an operator can change the price feed's TradingView session: it is shared by every "
    "user. An operator is made on the server with `justtrades user admin EMAIL`."
)
# Sources whose quotes are delayed while the feed is not signed in to TradingView.
TRADINGVIEW_SOURCES = ("tradingview", "scanner")
# Sources whose prices are not a market's quotes at all: what `quotes` says instead of real-time.
NOT_LIVE_SOURCES = {"sim": "simulated", "replay": "replay"}


class NotOperator(Forbidden):
    """A setting every user shares, asked for by someone who is not an operator."""


def is_operator() -> bool:
    user = db().get(User, user_id())
    return bool(user is not None and user.is_admin)


def require_operator() -> None:
    """Refuse (403) unless the current user is an operator: one user must never change what the
    feed does for everybody (the session here, the sign-in credentials later)."""
    if not is_operator():
        raise NotOperator(OPERATOR_ONLY)


def feed_session() -> TradingViewSession | None:
    """The session the feed logs in with: the most recently saved one of an operator (the same
    choice as the price feed's CookieStore)."""
    return db().scalar(
        select(TradingViewSession)
        .join(User, User.id == TradingViewSession.user_id)
        .where(User.is_admin.is_(True))
        .order_by(TradingViewSession.updated_at.desc())
        .limit(1)
    )


def feed_credentials() -> TradingViewCredentials | None:
    """The sign-in the feed renews its session with: the most recently saved one of an
    operator (the price feed's CredentialStore makes the same choice)."""
    return db().scalar(
        select(TradingViewCredentials)
        .join(User, User.id == TradingViewCredentials.user_id)
        .where(User.is_admin.is_(True))
        .order_by(TradingViewCredentials.saved_at.desc())
        .limit(1)
    )


def username_hint(username: str) -> str:
    """Enough of the username to recognise it, too little to use: its first two characters."""
    return username[:2] + "…"


def _renewal_view(operator: bool) -> dict[str, Any]:
    row = feed_credentials()
    if row is None:
        return {
            "credentials": None,
            "renewed_at": None,
            "last_attempt_at": None,
            "last_error": None,
            "renewals_stopped": False,
        }
    return {
        # Whose TradingView account it is stays with the operators, like the cookies.
        "credentials": {
            "username_hint": row.username_hint if operator else None,
            "saved_at": iso(row.saved_at),
        },
        "renewed_at": iso(row.renewed_at) if row.renewed_at else None,
        "last_attempt_at": iso(row.last_attempt_at) if row.last_attempt_at else None,
        "last_error": row.last_error,
        "renewals_stopped": row.renewals_stopped,
    }


def _quotes(status: dict[str, Any]) -> str | None:
    if not status:
        return None  # the feed is not running (its status expired)
    for source in (status.get("active_source"), status.get("source")):
        if source in NOT_LIVE_SOURCES:
            return NOT_LIVE_SOURCES[source]
    signed_out = status.get("authenticated") is False and status.get("source") in (
        TRADINGVIEW_SOURCES
    )
    if status.get("delayed_symbols") or signed_out:
        return "delayed"
    return "real-time" if status.get("connected") else None


def _feed_view() -> dict[str, Any]:
    raw = redis_client().get(settings().stream(streams.PRICE_FEED_STATUS))
    status = json.loads(raw) if raw else {}
    session = status.get("tradingview_session") or {}
    in_use = bool(session.get("configured"))
    return {
        "connected": bool(status.get("connected")),
        "quotes": _quotes(status),
        "in_use": in_use,
        "authenticated": session.get("authenticated") if in_use else None,
        "token_expires_at": session.get("token_expires_at") if in_use else None,
        "error": session.get("error") if in_use else None,
    }


def session_view() -> dict[str, Any]:
    operator = is_operator()
    row = feed_session()
    own = None if operator else db().get(TradingViewSession, user_id())
    view: dict[str, Any] = {
        "can_edit": operator,
        "configured": row is not None,
        "set_by_operator": row is not None,  # nobody else's cookies are ever used
        "updated_at": iso(row.updated_at) if row else None,
        "source": row.source if row else None,  # "cookies" (pasted) or "sign-in" (the feed's)
        "own_cookies_ignored": own is not None,
    }
    view.update(_feed_view())
    view.update(_renewal_view(operator))
    view["price_source"] = settings().price_source
    if view["renewals_stopped"]:
        view["how_to_refresh"] = RENEWALS_STOPPED_STEPS if operator else OPERATOR_SETS_IT
    elif view["authenticated"] is False or not view["configured"]:
        if not operator:
            view["how_to_refresh"] = OPERATOR_SETS_IT
        else:
            view["how_to_refresh"] = SIGNS_IN_ITSELF if view["credentials"] else REFRESH_STEPS
    return view


@bp.get("/session")
def get_session() -> ResponseReturnValue:
    return jsonify(ok=True, **session_view())


@bp.post("/session")
def save_session() -> ResponseReturnValue:
    require_operator()
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
    """An operator forgets the feed's session (every operator's cookies, so no older one takes
    over); anyone else may only delete cookies of their own that the feed ignores."""
    session = db()
    if is_operator():
        operators = select(User.id).where(User.is_admin.is_(True))
        session.execute(delete(TradingViewSession).where(TradingViewSession.user_id.in_(operators)))
    else:
        own = session.get(TradingViewSession, user_id())
        if own is None:  # nothing of theirs to clean up: they were after the feed's session
            raise NotOperator(OPERATOR_ONLY)
        session.delete(own)
    session.commit()
    return jsonify(ok=True, **session_view())


@bp.post("/credentials")
def save_credentials() -> ResponseReturnValue:
    """The feed's TradingView sign-in: checked at once (422 naming the field, nothing stored),
    kept encrypted and never answered back; new credentials clear a stop of the renewals."""
    require_operator()
    body = parse(TradingViewCredentialsBody, json_object())
    sealed = SecretBox(settings().encryption_key).encrypt(
        json.dumps(
            {"username": body.username, "password": body.password, "totp_secret": body.totp_secret}
        )
    )
    session = db()
    row = session.get(TradingViewCredentials, user_id())
    if row is None:
        row = TradingViewCredentials(user_id=user_id())
        session.add(row)
    row.secrets_encrypted = sealed
    row.username_hint = username_hint(body.username)
    row.saved_at = utcnow()
    row.renewed_at = row.last_attempt_at = row.last_error = None
    row.renewals_stopped = False
    session.commit()
    return jsonify(ok=True, **session_view())


@bp.delete("/credentials")
def delete_credentials() -> ResponseReturnValue:
    """Forget the feed's sign-in (every operator's, so no older one takes over). Cookies it
    obtained stay until they expire or are forgotten too."""
    require_operator()
    session = db()
    operators = select(User.id).where(User.is_admin.is_(True))
    session.execute(
        delete(TradingViewCredentials).where(TradingViewCredentials.user_id.in_(operators))
    )
    session.commit()
    return jsonify(ok=True, **session_view())
