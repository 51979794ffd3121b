"""Tradovate accounts as stored here: connect (credentials or OAuth), subaccounts, and the token.

Tokens and credentials are encrypted at rest. A token is renewed from its `expirationTime`, before
it expires, by one owner at a time (a Redis lock per account): never a login per request. When
renewal is no longer possible, credentials accounts log in again; OAuth accounts must reconnect.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import redis
import requests
from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import Settings
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import Account, Subaccount
from libs.common.tradovate.client import (
    JSON,
    AccessToken,
    AuthFailed,
    TradovateClient,
    TradovateError,
)

log = logging.getLogger("tradovate")

RENEW_BEFORE = timedelta(minutes=10)
APP_VERSION = "1.0"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    app_id: str
    app_version: str
    cid: str
    sec: str
    # stable per account, so Tradovate sees one device (docs/outside/tradovate.md §2.6)
    device_id: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, …)"


class AccountUnusable(Exception):
    """The account cannot trade until the user acts (reconnect, new credentials); says why."""


def base_url(settings: Settings, environment: str | None) -> str:
    return settings.tradovate_live_url if environment == "live" else settings.tradovate_demo_url


def risk_status(risk: JSON | None) -> str:
    """Tradovate's AccountRiskStatus → normal | liquidate_only | locked."""
    if not risk:
        return "normal"
    action = (risk.get("adminAction") or "").lower()
    if "lock" in action or risk.get("tradingLocked"):
        return "locked"
    # "liq", not "liquidate": AutoLiq's action is spelled AgreedOnLiqOnlyModeByAutoLiq.
    if risk.get("liquidateOnly") or risk.get("userTriggeredLiqOnly") or "liq" in action:
        return "liquidate_only"
    return "normal"


def store_token(box: SecretBox, account: Account, token: AccessToken) -> None:
    account.access_token_encrypted = box.encrypt(token.access_token)
    account.md_access_token_encrypted = (
        box.encrypt(token.md_access_token) if token.md_access_token else None
    )
    account.token_expires_at = token.expiration_time
    if token.user_id:
        account.broker_user_id = token.user_id
    account.status, account.status_message = "connected", None


def login(
    settings: Settings,
    environment: str | None,
    creds: Credentials,
    http: requests.Session | None = None,
) -> tuple[TradovateClient, AccessToken]:
    client = TradovateClient(base_url(settings, environment), http=http)
    # cid is an integer in Tradovate's model (§2.1); it is stored as text.
    cid = int(creds.cid) if creds.cid.isdigit() else creds.cid
    token = client.access_token_request(
        creds.username,
        creds.password,
        creds.app_id,
        creds.app_version,
        cid,
        creds.sec,
        creds.device_id,
    )
    return client, token


def new_credentials(
    username: str, password: str, app_id: str, app_version: str | None, cid: str, sec: str
) -> Credentials:
    return Credentials(
        username, password, app_id, app_version or APP_VERSION, cid, sec, str(uuid.uuid4())
    )


def seal_credentials(box: SecretBox, creds: Credentials) -> str:
    return box.encrypt(json.dumps(creds.__dict__))


def open_credentials(box: SecretBox, account: Account) -> Credentials | None:
    if not account.credentials_encrypted:
        return None
    return Credentials(**json.loads(box.decrypt(account.credentials_encrypted)))


def sync_subaccounts(
    session: Session, account: Account, client: TradovateClient
) -> list[Subaccount]:
    """Bring the subaccounts in line with `account/list` and their risk status."""
    risks = {r.get("accountId", r.get("id")): r for r in client.account_risk_status_list()}
    known = {s.broker_account_id: s for s in account.subaccounts}
    now = datetime.now(UTC)
    seen = set()
    for item in client.account_list():
        broker_id = int(item["id"])
        seen.add(broker_id)
        sub = known.get(broker_id)
        if sub is None:
            sub = Subaccount(account_id=account.id, broker_account_id=broker_id, name=item["name"])
            session.add(sub)
            account.subaccounts.append(sub)
        sub.name = item["name"]
        sub.active = (
            bool(item.get("active", True)) and not item.get("closed") and not item.get("archived")
        )
        sub.risk_status = risk_status(risks.get(broker_id))
        sub.refreshed_at = now
    for broker_id, sub in known.items():
        if broker_id not in seen:
            sub.active = False  # gone at the broker: keep the history, send nothing
    return list(account.subaccounts)


class TokenKeeper:
    """The access token of a Tradovate account, renewed before expiry by one owner at a time."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        http: requests.Session | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sessions: sessionmaker[Session] | None = None,
    ):
        self.settings = settings
        self.redis = client
        # Renewal commits in a session of its own: callers are often inside their own transaction.
        self.sessions = sessions or db.make_sessionmaker(
            db.make_engine(settings.database_url, pool_size=1)
        )
        self.box = SecretBox(settings.encryption_key)
        self.http = http
        self.clock = clock

    def client_for(self, session: Session, account: Account) -> TradovateClient:
        """A client holding a valid token, renewed (or logged in again) first when needed."""
        token = self.token(session, account)
        return TradovateClient(base_url(self.settings, account.environment), token, http=self.http)

    def token(self, session: Session | None, account: Account) -> str:
        """The account's access token; `account` may be stale, the database is asked when it looks
        near expiry. `session` is the caller's and is left alone."""
        return self._fresh(account)[0]

    def md_token(self, session: Session | None, account: Account) -> str | None:
        access, md = self._fresh(account)
        return md or access

    def _fresh(self, account: Account) -> tuple[str, str | None]:
        if not self._expiring(account):
            return self._tokens(account)
        lock = self.redis.lock(
            f"{self.settings.stream_prefix}tradovate:renew:{account.id}",
            timeout=30,
            blocking_timeout=30,
        )
        with lock, self.sessions() as own:
            # Read again: another owner may have renewed it meanwhile.
            current = own.get_one(Account, account.id)
            if self._expiring(current):
                try:
                    self._renew(own, current)
                finally:
                    own.commit()  # the new token, or the account marked unusable with why
            return self._tokens(current)

    def _tokens(self, account: Account) -> tuple[str, str | None]:
        access, md = account.access_token_encrypted, account.md_access_token_encrypted
        if access is None:  # _fresh renews first, and a renewal that cannot store one raises
            raise AccountUnusable("the account has no access token; connect it again")
        return self.box.decrypt(access), (self.box.decrypt(md) if md else None)

    def _expiring(self, account: Account) -> bool:
        if not account.access_token_encrypted or account.token_expires_at is None:
            return True
        return account.token_expires_at - self.clock() < RENEW_BEFORE

    def _renew(self, session: Session, account: Account) -> None:
        url = base_url(self.settings, account.environment)
        if (
            account.access_token_encrypted
            and account.token_expires_at
            and account.token_expires_at > self.clock()
        ):
            try:
                client = TradovateClient(
                    url, self.box.decrypt(account.access_token_encrypted), http=self.http
                )
                store_token(self.box, account, client.renew_access_token())
                log.info("tradovate token renewed", extra={"kv": {"account_id": account.id}})
                return
            except AuthFailed:
                pass  # the session ended at the broker: log in again below, if we can
        creds = open_credentials(self.box, account)
        if creds is None:
            self._unusable(
                account, "the Tradovate authorization has expired; connect the account again"
            )
        try:
            _, token = login(self.settings, account.environment, creds, self.http)
        except AuthFailed as exc:
            self._unusable(account, f"Tradovate refused the stored credentials: {exc}")
        except TradovateError as exc:
            raise AccountUnusable(f"Tradovate did not answer the login: {exc}") from exc
        store_token(self.box, account, token)
        log.info("tradovate logged in again", extra={"kv": {"account_id": account.id}})

    def _unusable(self, account: Account, message: str) -> NoReturn:
        account.status, account.status_message = "error", message
        raise AccountUnusable(message)


def limiter_user(account: Account) -> str:
    """The rate limiter's key for an account: Tradovate limits per user, so subaccounts of one
    login share a budget (the executor counts by it; the Control Center shows it)."""
    return f"tradovate:{account.environment}:{account.broker_user_id or f'account{account.id}'}"
