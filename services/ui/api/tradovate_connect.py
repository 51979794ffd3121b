"""Tradovate connections: API credentials, the OAuth sign-in under /oauth/tradovate, subaccount
refresh.

Tradovate's failures become plain sentences here, in one place; no answer or log line carries a
token, a password or an API secret.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import urlencode

from cryptography.fernet import InvalidToken
from flask import Blueprint, redirect, request
from flask import session as cookie_session
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.config import Settings
from libs.common.security import SecretBox, tokens_equal
from libs.common.storage.models import Account
from libs.common.tradovate.accounts import (
    AccountUnusable,
    TokenKeeper,
    base_url,
    login,
    new_credentials,
    open_credentials,
    seal_credentials,
    store_token,
    sync_subaccounts,
)
from libs.common.tradovate.client import (
    AccessToken,
    AuthFailed,
    PenaltyTicket,
    RateLimited,
    TokenExpired,
    TradovateClient,
    TradovateError,
    oauth_exchange,
)
from services.ui.api.execution_schemas import TradovateAccountCreate
from services.ui.context import db, redis_client, resources, settings, user_id
from services.ui.errors import ApiError, BadRequest, NotAuthenticated, ValidationFailed

log = logging.getLogger(__name__)
bp = Blueprint("tradovate_connect", __name__, url_prefix="/oauth/tradovate")

CALLBACK_PATH = "/oauth/tradovate/callback"
# Where the browser lands once connected, until the Accounts page of the web UI exists.
CONNECTED_URL = "/accounts?connected={id}"
OAUTH_KEY = "tradovate_oauth"  # the Flask session's entry for a sign-in under way
OAUTH_MAX_AGE_S = 900  # a consent page left open longer than this starts again
# Each state is also kept server-side until its callback uses it: the cookie alone could be saved
# and sent again with the same state, so the single use must not depend on the browser.
OAUTH_STATE_KEY = "oauth_state:"
NOT_CONFIGURED = (
    "Tradovate sign-in is not set up on this server: set TRADOVATE_OAUTH_CLIENT_ID and "
    "TRADOVATE_OAUTH_CLIENT_SECRET (from your Tradovate OAuth app) and UI_PUBLIC_URL (the address "
    "Tradovate sends the browser back to), then restart. API credentials work without them."
)


class AccountNeedsAction(ApiError):
    status = 409


class BrokerDown(ApiError):
    status = 502


class BrokerBusy(ApiError):
    status = 503


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


@contextmanager
def broker_errors(
    refused: str, *, refused_as: type[ApiError] = ValidationFailed, attempt: str = "login"
) -> Iterator[None]:
    """Tradovate's exceptions as API errors; `refused` opens the sentence of a refusal."""
    try:
        yield
    except AccountUnusable as exc:
        raise AccountNeedsAction(_sentence(str(exc))) from None
    except AuthFailed as exc:
        raise refused_as(_sentence(f"{refused}: {exc.message}")) from None
    except PenaltyTicket as exc:
        raise BrokerBusy(
            f"Tradovate asks to wait {exc.wait_s:g} seconds before another {attempt} "
            "(too many attempts)."
        ) from None
    except RateLimited:
        raise BrokerBusy(
            "Tradovate has locked this user out for a while (HTTP 429); try again in an hour."
        ) from None
    except TradovateError as exc:
        raise BrokerDown(_sentence(f"Tradovate did not answer: {exc}")) from None


# -- storing a connection ------------------------------------------------------------------------


def _account_for(
    session: Session, owner: int, environment: str, broker_user_id: int | None
) -> tuple[Account, bool]:
    """The owner's account of this Tradovate user, or a new one: connecting again (new password,
    expired OAuth) renews the connection and keeps its subaccounts and traders."""
    if broker_user_id is not None:
        existing = session.scalar(
            select(Account)
            .where(
                Account.user_id == owner,
                Account.broker == "tradovate",
                Account.environment == environment,
                Account.broker_user_id == broker_user_id,
            )
            .order_by(Account.id)
        )
        if existing is not None:
            return existing, False
    account = Account(user_id=owner, broker="tradovate", environment=environment)
    session.add(account)
    return account, True


def _known_device(
    session: Session, box: SecretBox, owner: int, environment: str, username: str
) -> str | None:
    """The device id already used for this login: live may require approving each new one (§2.6)."""
    accounts = session.scalars(
        select(Account).where(
            Account.user_id == owner,
            Account.broker == "tradovate",
            Account.environment == environment,
            Account.credentials_encrypted.is_not(None),
        )
    )
    for account in accounts:
        try:
            creds = open_credentials(box, account)
        except InvalidToken:
            continue  # sealed under an earlier ENCRYPTION_KEY: unreadable, a new device then
        if creds is not None and creds.username.lower() == username.lower():
            return creds.device_id
    return None


def _sync_new(session: Session, account: Account, client: TradovateClient) -> None:
    session.flush()  # the account's id, for its subaccounts
    try:
        sync_subaccounts(session, account, client)
    except TokenExpired:
        # A fresh token refused: the API key lacks permissions, new keys have none (§2.6).
        raise ValidationFailed(
            "Tradovate accepted the login but refused to list the accounts (HTTP 401); give the "
            "API key permission to read accounts in Tradovate's API Access settings."
        ) from None


def _connected(account: Account, created: bool) -> None:
    kv = {
        "account_id": account.id,
        "environment": account.environment,
        "auth_method": account.auth_method,
        "subaccounts": len(account.subaccounts),
        "created": created,
    }
    log.info("tradovate account connected", extra={"kv": kv})


def connect_with_credentials(fields: TradovateAccountCreate) -> tuple[Account, bool]:
    """Log in, then store the account and its subaccounts; (account, created).

    Nothing is stored unless Tradovate accepted the credentials and listed the accounts.
    """
    cfg, session, owner = settings(), db(), user_id()
    box = SecretBox(cfg.encryption_key)
    creds = new_credentials(
        fields.username,
        fields.password,
        fields.app_id,
        fields.app_version,
        str(fields.cid),
        fields.sec,
    )
    device_id = _known_device(session, box, owner, fields.environment, fields.username)
    if device_id:
        creds = replace(creds, device_id=device_id)
    with broker_errors("Tradovate refused the credentials"):
        client, token = login(cfg, fields.environment, creds)
        account, created = _account_for(session, owner, fields.environment, token.user_id)
        if fields.name or created:
            account.name = fields.name or f"{fields.username}@{fields.environment}"
        account.auth_method = "credentials"
        account.credentials_encrypted = seal_credentials(box, creds)
        store_token(box, account, token)
        _sync_new(session, account, client)
    session.commit()
    _connected(account, created)
    return account, created


def _who(client: TradovateClient, token: AccessToken) -> tuple[int | None, str | None]:
    """The Tradovate user behind a token; OAuth answers name nobody, so ask `/auth/me`."""
    if token.user_id is not None:
        return token.user_id, token.name
    try:
        me: dict[str, Any] = client.me()
    except TradovateError as exc:
        # /auth/me can lag behind a fresh OAuth token (§2.4); the account works without the id.
        log.warning("tradovate me failed", extra={"kv": {"error": type(exc).__name__}})
        return None, None
    user = me.get("userId")
    return (int(user) if user is not None else None), me.get("name")


def connect_with_oauth(code: str, wanted: str) -> tuple[Account, bool]:
    """Exchange the code, the requested environment's host first, and store the account."""
    cfg, session, owner = settings(), db(), user_id()
    urls = {"live": cfg.tradovate_live_url, "demo": cfg.tradovate_demo_url}
    other = "demo" if wanted == "live" else "live"
    with broker_errors("Tradovate refused the sign-in", refused_as=BadRequest):
        # One host after the other, never both at once: the code is single-use (§2.5).
        token, first = oauth_exchange(
            urls[wanted],
            urls[other],
            code,
            cfg.tradovate_oauth_client_id,
            cfg.tradovate_oauth_client_secret,
            redirect_uri(cfg),
        )
        # oauth_exchange calls its first host "live", whichever it was.
        environment = wanted if first == "live" else other
        client = TradovateClient(base_url(cfg, environment), token.access_token)
        broker_user_id, name = _who(client, token)
        account, created = _account_for(session, owner, environment, broker_user_id)
        if created:
            account.name = f"{name or 'Tradovate'}@{environment}"
        account.auth_method, account.credentials_encrypted = "oauth", None
        store_token(SecretBox(cfg.encryption_key), account, token)
        account.broker_user_id = broker_user_id or account.broker_user_id
        _sync_new(session, account, client)
    session.commit()
    _connected(account, created)
    return account, created


def rediscover(account: Account) -> None:
    """Subaccounts and their risk status again, the token renewed (or a new login) when needed."""
    session = db()
    keeper = TokenKeeper(settings(), redis_client(), sessions=resources().sessions)
    with broker_errors(
        "Tradovate refused the account's token", refused_as=AccountNeedsAction, attempt="request"
    ):
        try:
            sync_subaccounts(session, account, keeper.client_for(session, account))
        except TokenExpired:
            # The session ended before its expiry (a newer login elsewhere, a password change):
            # mark the token spent, so the keeper logs in again or says the user must reconnect.
            account.token_expires_at = datetime.now(UTC)
            session.commit()  # the keeper reads the account in a session of its own
            sync_subaccounts(session, account, keeper.client_for(session, account))
    session.commit()
    session.refresh(account)  # the token's expiry and status as the keeper left them


# -- the OAuth sign-in (docs/outside/tradovate.md §2.5) --------------------------------------------


def redirect_uri(cfg: Settings) -> str:
    return cfg.ui_public_url.rstrip("/") + CALLBACK_PATH


def _state_key(state: str) -> str:
    return settings().stream(OAUTH_STATE_KEY + hashlib.sha256(state.encode()).hexdigest())


def _state_ok(started: object, given: str) -> TypeGuard[dict[str, Any]]:
    if not isinstance(started, dict) or not given:
        return False
    return (
        tokens_equal(str(started.get("state", "")), given)
        and started.get("user_id") == user_id()
        and time.time() - float(started.get("at", 0)) < OAUTH_MAX_AGE_S
        # GETDEL: of two callbacks with one state, only the first finds it.
        and redis_client().getdel(_state_key(given)) == str(user_id())
    )


@bp.get("/start")
def start() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}))
    cfg = settings()
    if not (cfg.tradovate_oauth_client_id and cfg.tradovate_oauth_client_secret):
        raise BadRequest(NOT_CONFIGURED)
    environment = request.args.get("environment", "live")
    if environment not in ("live", "demo"):
        raise ValidationFailed('environment must be "live" or "demo".')
    state = secrets.token_urlsafe(24)
    redis_client().set(_state_key(state), str(user_id()), ex=OAUTH_MAX_AGE_S)
    # The state ties the callback to this browser and user: a code sent by anyone else is refused.
    cookie_session[OAUTH_KEY] = {
        "state": state,
        "environment": environment,
        "user_id": user_id(),
        "at": int(time.time()),
    }
    query = urlencode(
        {
            "response_type": "code",
            "client_id": cfg.tradovate_oauth_client_id,
            "redirect_uri": redirect_uri(cfg),
            "state": state,
        }
    )
    joiner = "&" if "?" in cfg.tradovate_oauth_url else "?"
    return redirect(f"{cfg.tradovate_oauth_url}{joiner}{query}")


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        raise NotAuthenticated("Log in, then connect the Tradovate account again.")
    started = cookie_session.get(OAUTH_KEY)
    if not _state_ok(started, request.args.get("state", "")):
        raise BadRequest("The sign-in link is stale or not yours; start again.")
    cookie_session.pop(OAUTH_KEY)  # single use: a replayed callback is stale
    if request.args.get("error"):
        reason = request.args.get("error_description") or request.args["error"]
        raise BadRequest(_sentence(f"Tradovate did not authorize the connection: {reason}"))
    code = request.args.get("code", "")
    if not code:
        raise BadRequest("Tradovate sent no authorization code; start again.")
    account, _ = connect_with_oauth(code, started["environment"])
    return redirect(CONNECTED_URL.format(id=account.id))
