"""The feed's TradingView session renewing itself: when a sign-in with the stored credentials may
happen (`RenewalSchedule`, pure arithmetic) and the sign-in with its outcome remembered
(`SessionRenewer`), so the feed never signs in more often than needed and never loops on a
captcha or a refused code."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.price_feed.tradingview.auth import SessionCookies
from services.price_feed.tradingview.signin import (
    Credentials,
    SignInDeferred,
    SignInStopped,
    sign_in,
)

log = logging.getLogger("price_feed")

HOUR_S = 3600.0
MAX_ATTEMPTS_PER_HOUR = 4  # successful or not
BACKOFF_FIRST_S = 300.0  # after a failure worth retrying: 5, 10, 20, 40, then 60 minutes
BACKOFF_MAX_S = 3600.0
RATE_LIMITED_WAIT_S = 3600.0  # TradingView said "slow down": an hour


@dataclass
class RenewalSchedule:
    """When the next sign-in may start: at most `per_hour` attempts in any hour, and a growing
    wait after each failure worth retrying. Times are unix seconds."""

    per_hour: int = MAX_ATTEMPTS_PER_HOUR
    backoff_first_s: float = BACKOFF_FIRST_S
    backoff_max_s: float = BACKOFF_MAX_S
    rate_limited_wait_s: float = RATE_LIMITED_WAIT_S
    attempts: list[float] = field(default_factory=list)
    failures: int = 0  # failures worth retrying since the last success
    not_before: float = 0.0

    def next_allowed(self, now: float) -> float:
        recent = [t for t in self.attempts if now - t < HOUR_S]
        self.attempts = recent
        earliest = self.not_before
        if len(recent) >= self.per_hour:
            earliest = max(earliest, recent[-self.per_hour] + HOUR_S)
        return earliest

    def allows(self, now: float) -> bool:
        return now >= self.next_allowed(now)

    def attempted(self, now: float) -> None:
        self.attempts.append(now)

    def failed(self, now: float, *, rate_limited: bool = False) -> None:
        self.failures += 1
        wait = self.backoff_first_s * 2 ** (self.failures - 1)
        if rate_limited:
            wait = max(wait, self.rate_limited_wait_s)
        self.not_before = now + min(wait, max(self.backoff_max_s, self.rate_limited_wait_s))

    def succeeded(self) -> None:
        self.failures, self.not_before = 0, 0.0

    def fresh_credentials(self) -> None:
        """New credentials deserve a try at once; the hourly cap still counts earlier attempts."""
        self.succeeded()


@dataclass(frozen=True)
class StoredCredentials:
    """The credentials the feed signs in with and what is recorded of their last sign-in."""

    user_id: int
    credentials: Credentials
    renewals_stopped: bool = False
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    renewed_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What one sign-in did, to be recorded beside the credentials it used."""

    attempted_at: datetime
    error: str | None
    stopped: bool
    renewed_at: datetime | None


class RenewalStore(Protocol):
    def credentials(self) -> StoredCredentials | None: ...

    def save_session(self, user_id: int, cookies: SessionCookies) -> None: ...

    def record(self, stored: StoredCredentials, outcome: Outcome) -> None: ...


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


class SessionRenewer:
    """Signs in with the stored credentials when the keeper asks and the schedule allows."""

    def __init__(
        self,
        site_url: str,
        store: RenewalStore,
        *,
        schedule: RenewalSchedule | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10,
    ) -> None:
        self.site_url = site_url
        self.store = store
        self.schedule = schedule or RenewalSchedule()
        self.clock = clock
        self.timeout = timeout
        self._lock = threading.Lock()
        self._for: tuple[int, str] | None = None  # (owner, saved_at) the fields below describe
        self._stopped = False
        self._error: str | None = None
        self._attempt_at: datetime | None = None
        self._renewed_at: datetime | None = None

    def renew(self, reason: str) -> SessionCookies | None:
        """New session cookies, or None: no credentials, renewals stopped, not yet allowed, or
        the sign-in failed (the reason is kept for `state`)."""
        stored = self._current()
        if stored is None:
            return None
        now = self.clock()
        with self._lock:
            if self._stopped or not self.schedule.allows(now):
                return None
            self.schedule.attempted(now)
            self._attempt_at = datetime.fromtimestamp(now, UTC)
        log.info("tradingview signing in", extra={"kv": {"reason": reason}})
        try:
            cookies = sign_in(self.site_url, stored.credentials, timeout=self.timeout)
        except SignInStopped as exc:
            self._finish(stored, error=str(exc), stopped=True)
            log.warning("tradingview sign-in refused; renewals stopped until credentials change")
            return None
        except SignInDeferred as exc:
            with self._lock:
                self.schedule.failed(now, rate_limited=exc.rate_limited)
                retry = datetime.fromtimestamp(self.schedule.next_allowed(now), UTC)
            self._finish(stored, error=str(exc), stopped=False)
            log.warning(
                "tradingview sign-in failed",
                extra={"kv": {"error": str(exc), "retry_at": retry.isoformat()}},
            )
            return None
        with self._lock:
            self.schedule.succeeded()
        self._finish(stored, error=None, stopped=False, renewed=True)
        try:
            self.store.save_session(stored.user_id, cookies)
        except Exception as exc:  # the cookies still work in memory; the next renewal saves
            log.warning("signed-in session not saved", extra={"kv": {"error": type(exc).__name__}})
        log.info("tradingview signed in; session renewed")
        return cookies

    def state(self) -> dict[str, Any]:
        stored = self._current()
        with self._lock:
            now = self.clock()
            next_at = self.schedule.next_allowed(now) if stored and not self._stopped else 0.0
            waiting = datetime.fromtimestamp(next_at, UTC) if next_at > now else None
            return {
                "credentials": stored is not None,
                "renewals_stopped": bool(stored and self._stopped),
                "last_error": self._error if stored else None,
                "last_attempt_at": _iso(self._attempt_at) if stored else None,
                "renewed_at": _iso(self._renewed_at) if stored else None,
                "next_attempt_at": _iso(waiting),
            }

    # --- internals ------------------------------------------------------------------

    def _current(self) -> StoredCredentials | None:
        try:
            stored = self.store.credentials()
        except Exception as exc:  # a broken store must not take the feed down
            log.warning(
                "tradingview credentials unreadable", extra={"kv": {"error": type(exc).__name__}}
            )
            return None
        if stored is not None:
            self._follow(stored)
        return stored

    def _follow(self, stored: StoredCredentials) -> None:
        """Take over what is recorded of credentials the first time they are seen: a restart
        keeps a stop and the spacing of attempts; new credentials start afresh."""
        key = (stored.user_id, stored.credentials.saved_at)
        with self._lock:
            if key == self._for:
                return
            self._for = key
            self._stopped = stored.renewals_stopped
            self._error = stored.last_error
            self._attempt_at = stored.last_attempt_at
            self._renewed_at = stored.renewed_at
            self.schedule.fresh_credentials()
            if stored.last_attempt_at is not None:
                at = stored.last_attempt_at.timestamp()
                if at not in self.schedule.attempts:
                    self.schedule.attempted(at)
                if stored.last_error and not stored.renewals_stopped:
                    self.schedule.failed(at)  # a failure before a restart still counts

    def _finish(
        self, stored: StoredCredentials, *, error: str | None, stopped: bool, renewed: bool = False
    ) -> None:
        with self._lock:
            self._error, self._stopped = error, stopped
            if renewed:
                self._renewed_at = self._attempt_at
            outcome = Outcome(
                self._attempt_at or datetime.now(UTC), error, stopped, self._renewed_at
            )
        try:
            self.store.record(stored, outcome)
        except Exception as exc:
            log.warning("sign-in outcome not saved", extra={"kv": {"error": type(exc).__name__}})
