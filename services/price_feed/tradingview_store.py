"""The feed's TradingView session in PostgreSQL: the operator's cookies it logs in with
(`CookieStore`) and the operator's sign-in credentials with which it renews them
(`CredentialStore`: reads the credentials, saves the cookies a sign-in gave, records how each
sign-in went). Everything secret is read and written through the same SecretBox as the UI's."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from libs.common.security import SecretBox
from libs.common.storage.models import TradingViewCredentials, TradingViewSession, User
from services.price_feed.tradingview.auth import SessionCookies
from services.price_feed.tradingview.renewal import Outcome, StoredCredentials
from services.price_feed.tradingview.signin import Credentials

log = logging.getLogger("price_feed")

T = TypeVar("T")
SIGN_IN = "sign-in"  # tradingview_sessions.source of cookies the feed obtained itself


@dataclass(frozen=True)
class StoredCookies:
    user_id: int
    sessionid: str
    sessionid_sign: str | None
    source: str = "cookies"  # "cookies" (pasted) or "sign-in"


class _Cached(Generic[T]):
    """A value read from PostgreSQL at most every `every_s`; the last good one on errors."""

    def __init__(self, read: Callable[[], T | None], what: str, every_s: float) -> None:
        self._read = read
        self._what = what
        self.every_s = every_s
        self._value: T | None = None
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def get(self) -> T | None:
        with self._lock:
            if time.monotonic() - self._read_at >= self.every_s:
                try:
                    self._value = self._read()
                except Exception as exc:  # a database hiccup must not stop prices
                    log.warning(
                        f"{self._what} not read", extra={"kv": {"error": type(exc).__name__}}
                    )
                self._read_at = time.monotonic()
            return self._value

    def put(self, value: T | None) -> None:
        with self._lock:
            self._value, self._read_at = value, time.monotonic()

    def expire(self) -> None:
        with self._lock:
            self._read_at = -float("inf")


class CookieStore:
    """The TradingView cookies the feed logs in with: the most recently saved ones of an operator
    (one login serves every user, so nobody else may switch it; cookies a user stored before it
    was an operator setting are ignored). Read from PostgreSQL at most every `every_s`, so new
    cookies are taken without a restart."""

    def __init__(self, sessions: sessionmaker[Session], encryption_key: str, every_s: float = 5.0):
        self.sessions = sessions
        self.box = SecretBox(encryption_key)
        self._cache = _Cached(self._read, "stored cookies", every_s)

    @property
    def every_s(self) -> float:
        return self._cache.every_s

    def current(self) -> StoredCookies | None:
        return self._cache.get()

    def replace(self, cookies: StoredCookies) -> None:
        """Cookies just saved by the feed itself: used from now on, without waiting for a read."""
        self._cache.put(cookies)

    def _read(self) -> StoredCookies | None:
        with self.sessions() as s:
            row = s.scalar(
                select(TradingViewSession)
                .join(User, User.id == TradingViewSession.user_id)
                .where(User.is_admin.is_(True))
                .order_by(TradingViewSession.updated_at.desc())
                .limit(1)
            )
            if row is None:
                return None
            values = json.loads(self.box.decrypt(row.cookies_encrypted))
            return StoredCookies(
                row.user_id, values["sessionid"], values.get("sessionid_sign"), row.source
            )


class CredentialStore:
    """The most recently saved operator's TradingView credentials, for `SessionRenewer`."""

    def __init__(self, cookies: CookieStore, every_s: float | None = None) -> None:
        self.cookies = cookies
        self.sessions = cookies.sessions
        self.box = cookies.box
        self._cache = _Cached(
            self._read, "tradingview credentials", cookies.every_s if every_s is None else every_s
        )

    def credentials(self) -> StoredCredentials | None:
        return self._cache.get()

    def save_session(self, user_id: int, cookies: SessionCookies) -> None:
        """The cookies a sign-in gave, stored encrypted like pasted ones and marked `sign-in`."""
        sealed = self.box.encrypt(
            json.dumps({"sessionid": cookies.sessionid, "sessionid_sign": cookies.sessionid_sign})
        )
        try:
            with self.sessions.begin() as s:
                row = s.get(TradingViewSession, user_id)
                if row is None:
                    s.add(
                        TradingViewSession(
                            user_id=user_id, cookies_encrypted=sealed, source=SIGN_IN
                        )
                    )
                else:
                    row.cookies_encrypted, row.source = sealed, SIGN_IN
        finally:
            # After the commit: a read of the table racing it must not bring the old cookies
            # back over the new ones. Used even if the write failed, until the next read.
            self.cookies.replace(
                StoredCookies(user_id, cookies.sessionid, cookies.sessionid_sign, SIGN_IN)
            )

    def record(self, stored: StoredCredentials, outcome: Outcome) -> None:
        """How a sign-in went, beside the credentials it used (not newer ones saved meanwhile)."""
        saved_at = datetime.fromisoformat(stored.credentials.saved_at)
        with self.sessions.begin() as s:
            s.execute(
                update(TradingViewCredentials)
                .where(
                    TradingViewCredentials.user_id == stored.user_id,
                    TradingViewCredentials.saved_at == saved_at,
                )
                .values(
                    last_attempt_at=outcome.attempted_at,
                    last_error=outcome.error,
                    renewals_stopped=outcome.stopped,
                    renewed_at=outcome.renewed_at,
                )
            )
        self._cache.expire()

    def _read(self) -> StoredCredentials | None:
        with self.sessions() as s:
            row = s.scalar(
                select(TradingViewCredentials)
                .join(User, User.id == TradingViewCredentials.user_id)
                .where(User.is_admin.is_(True))
                .order_by(TradingViewCredentials.saved_at.desc())
                .limit(1)
            )
            if row is None:
                return None
            values = json.loads(self.box.decrypt(row.secrets_encrypted))
            credentials = Credentials(
                values["username"],
                values["password"],
                values["totp_secret"],
                row.saved_at.isoformat(),
            )
            return StoredCredentials(
                row.user_id,
                credentials,
                row.renewals_stopped,
                row.last_error,
                row.last_attempt_at,
                row.renewed_at,
            )
