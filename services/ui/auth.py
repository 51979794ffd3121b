"""Who is calling: browser sessions (Flask-Login, CSRF-protected) and `Authorization: Bearer` API
keys.

An API-key request needs no CSRF token: a browser never attaches that header by itself, so a
forged cross-site request cannot carry it. A session request that changes state must.

A browser session is a row of `login_sessions` (services/ui/login_sessions.py): the signed cookie
holds a random login id, and the cookie counts only while that login is live, so logout, a
password change and "log out everywhere" end it for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
)
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect, generate_csrf
from sqlalchemy import func, or_, select, update

from libs.common.security import hash_api_key, hash_password, verify_password
from libs.common.storage.db import transaction
from libs.common.storage.models import ApiKey, User, utcnow
from services.ui import context, live, login_sessions
from services.ui.errors import BadRequest, NotAuthenticated, TooManyRequests, ValidationFailed
from services.ui.login_throttle import LoginLimits, LoginThrottle, TooManyLogins

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LAST_USED_EVERY = timedelta(minutes=1)  # one write a minute per key, not one per request
WRONG_LOGIN = "The email or password is incorrect."
# Endpoints under /api that answer without a login.
PUBLIC_API_ENDPOINTS = frozenset({"auth.csrf_token", "openapi.document"})

login_manager = LoginManager()
csrf = CSRFProtect()
bp = Blueprint("auth", __name__)


@dataclass(frozen=True)
class CurrentUser(UserMixin):
    id: int
    email: str
    via: str  # "session" or "api_key"
    login_id: str | None = None  # a session's login id: what the signed cookie carries

    def get_id(self) -> str:
        # Flask-Login puts this in the cookie and hands it back to `load_session_user`.
        return self.login_id if self.login_id is not None else str(self.id)

    @property
    def login_hash(self) -> str | None:
        return None if self.login_id is None else login_sessions.login_hash(self.login_id)


def bearer_key() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


@login_manager.user_loader
def load_session_user(login_id: str) -> CurrentUser | None:
    """The cookie's login, while it is live (not ended, not expired); else anonymous."""
    if bearer_key() is not None:
        return None  # an explicit API key wins over a cookie the client happens to carry
    now = utcnow()
    found = login_sessions.live_login(context.db(), login_id, now)
    if found is None:
        return None
    login, user = found
    if not now - login_sessions.SEEN_EVERY < login.last_seen_at <= now:
        login_sessions.touch_login(context.resources().sessions, login.id_hash, now)
    return CurrentUser(user.id, user.email, "session", login_id)


@login_manager.request_loader
def load_api_key_user(_request: object) -> CurrentUser | None:
    key = bearer_key()
    if key is None:
        return None
    row = (
        context.db()
        .execute(
            select(ApiKey.id, ApiKey.last_used_at, User.id, User.email)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
        )
        .first()
    )
    if row is None:
        return None
    key_id, last_used_at, uid, email = row
    now = utcnow()
    if last_used_at is None or now - last_used_at >= LAST_USED_EVERY:
        _touch_api_key(key_id, now)
    return CurrentUser(uid, email, "api_key")


def _touch_api_key(key_id: int, now: datetime) -> None:
    # The WHERE clause keeps concurrent requests of one key to a single write a minute.
    with transaction(context.resources().sessions) as s:
        s.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_EVERY))
            .values(last_used_at=now)
        )


def guard() -> None:
    """Runs before every view: 401 for anonymous /api calls, CSRF for session writes."""
    if request.routing_exception is not None:
        return  # let routing answer 404/405
    authenticated = current_user.is_authenticated
    protected = request.path.startswith("/api/") and request.endpoint not in PUBLIC_API_ENDPOINTS
    if protected and not authenticated:
        if bearer_key() is not None:
            raise NotAuthenticated("The API key is not valid or has been revoked.")
        raise NotAuthenticated("Log in or send an API key as 'Authorization: Bearer <key>'.")
    if request.method not in UNSAFE_METHODS or (authenticated and current_user.via == "api_key"):
        return
    if request.endpoint == "auth.login" and request.is_json:
        # A cross-site page cannot send application/json without a CORS preflight we never allow.
        return
    csrf.protect()


def init_auth(app: Flask) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_CHECK_DEFAULT=False,  # `guard` decides which requests need the token
        WTF_CSRF_TIME_LIMIT=None,  # valid for the life of the session
    )
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    app.before_request(guard)
    app.register_blueprint(bp)


@cache
def _dummy_hash() -> str:
    return hash_password("not a real password")


def authenticate(email: str, password: str) -> User | None:
    user = context.db().scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        verify_password(_dummy_hash(), password)  # same work either way: no telling who exists
        return None
    return user if verify_password(user.password_hash, password) else None


def _credentials() -> tuple[str, str]:
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("The request body is not valid JSON.")
    else:
        body = request.form
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise ValidationFailed("email and password are required.")
    return email, password


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect after login is a phishing aid. Browsers drop
    tabs and newlines from a Location (`/\t/evil.com` becomes `//evil.com`) and read `\\` as `/`,
    so anything with those, or anything a URL parser sees a scheme or a host in, goes home."""
    if not target or not target.startswith("/"):
        return "/"
    if any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return "/"
    return target


def login_form(error: str | None, next_page: str, email: str = "") -> str:
    return render_template("login.html", error=error, next=next_page, email=email)


@bp.get("/login")
def login_page() -> ResponseReturnValue:
    next_page = _safe_next(request.args.get("next"))
    if current_user.is_authenticated and current_user.via == "session":
        return redirect(next_page)
    return login_form(None, next_page)


def login_throttle() -> LoginThrottle:
    s = context.settings()
    limits = LoginLimits(
        s.login_max_failures,
        s.login_max_failures_per_address,
        s.login_window_s,
        s.login_max_failures_per_email,
    )
    return LoginThrottle(context.redis_client(), s.stream_prefix, limits)


@bp.post("/login")
def login() -> ResponseReturnValue:
    try:
        email, password = _credentials()
    except ValidationFailed:
        if request.is_json:
            raise
        return login_form(
            "Enter your email and password.", _safe_next(request.form.get("next"))
        ), 422
    throttle, address = login_throttle(), request.remote_addr or "-"
    try:
        throttle.check(email, address)
    except TooManyLogins as exc:
        if request.is_json:
            raise TooManyRequests(str(exc), exc.retry_after_s) from None
        page = login_form(str(exc), _safe_next(request.form.get("next")), email)
        return page, 429, {"Retry-After": str(exc.retry_after_s)}
    user = authenticate(email, password)
    if user is None:
        throttle.failed(email, address)
        if request.is_json:
            raise NotAuthenticated(WRONG_LOGIN)
        return login_form(WRONG_LOGIN, _safe_next(request.form.get("next")), email), 401
    throttle.succeeded(email, address)
    if current_user.is_authenticated and current_user.via == "session":
        end_logins(current_user.id, login_sessions.REPLACED, only=current_user.login_hash)
    session.clear()  # a fresh session (and CSRF token) at every login
    with transaction(context.resources().sessions) as s:
        login_id = login_sessions.start_login(
            s, user.id, request.user_agent.string, address, utcnow()
        )
    login_user(CurrentUser(user.id, user.email, "session", login_id))
    if not request.is_json:
        return redirect(_safe_next(request.form.get("next")))
    return jsonify(ok=True, user={"id": user.id, "email": user.email}, csrf_token=generate_csrf())


def end_logins(
    user_id: int, reason: str, *, only: str | None = None, keep: str | None = None
) -> int:
    """End the user's live logins (see `login_sessions.end_logins`) and close their sockets;
    returns how many ended."""
    with transaction(context.resources().sessions) as s:
        ended = login_sessions.end_logins(s, user_id, reason, utcnow(), only=only, keep=keep)
    live.close_login_sockets(current_app.extensions["socketio"], ended)
    return len(ended)


def forget_this_login() -> None:
    """Drop the login from this browser's cookie (its row has been ended)."""
    logout_user()
    session.clear()


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated and current_user.via == "session":
        end_logins(current_user.id, login_sessions.LOGOUT, only=current_user.login_hash)
    forget_this_login()
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return redirect("/login")
    return jsonify(ok=True)


@bp.get("/api/csrf-token")
def csrf_token() -> ResponseReturnValue:
    return jsonify(ok=True, csrf_token=generate_csrf())
