"""Stored TradingView session cookies → the auth token of the quote socket
(docs/outside/tradingview.md C.2–C.5),
and `AuthTokenKeeper`, which keeps one such token fresh for the socket source."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urljoin

import requests

log = logging.getLogger("price_feed")

BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
MAX_REDIRECTS = 5
UNAUTHORIZED = "unauthorized_user_token"
REJECTED_MESSAGE = (
    "TradingView did not accept the stored session cookies; they have expired or were signed out"
    " — copy fresh sessionid and sessionid_sign cookies from a logged-in browser"
)
_AUTH_TOKEN = re.compile(r'"auth_token"\s*:\s*"([^"\\]*)"')


class AuthError(Exception):
    """No token could be obtained; the message is one plain sentence for the status page."""


class CookiesRejected(AuthError):
    """The site answered, but not as a logged-in user: the cookies are invalid or expired."""

    def __init__(self, message: str = REJECTED_MESSAGE) -> None:
        super().__init__(message)


class AuthUnavailable(AuthError):
    """The site could not be asked (network, HTTP error, redirect loop); worth retrying later."""


@dataclass(frozen=True)
class SessionCookies:
    sessionid: str
    sessionid_sign: str | None = None

    def __repr__(self) -> str:
        sign = "set" if self.sessionid_sign else "none"
        return f"SessionCookies(sessionid=<hidden>, sessionid_sign=<{sign}>)"

    __str__ = __repr__

    def header(self) -> str:
        """The `Cookie` header value; `sessionid_sign` goes along whenever the user gave it
        (C.1)."""
        parts = [f"sessionid={self.sessionid}"]
        if self.sessionid_sign:
            parts.append(f"sessionid_sign={self.sessionid_sign}")
        return "; ".join(parts)


def token_expiry(value: str) -> datetime | None:
    """`exp` of a JWT (payload read without checking the signature), or None for any token that
    is not a JWT carrying a numeric `exp` — the format has changed before (C.3)."""
    parts = value.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        return datetime.fromtimestamp(exp, UTC)
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        return None


@dataclass(frozen=True)
class AuthToken:
    value: str = field(repr=False)
    expires_at: datetime | None

    @classmethod
    def parse(cls, value: str) -> AuthToken:
        return cls(value, token_expiry(value))

    def __repr__(self) -> str:
        expires = self.expires_at.isoformat() if self.expires_at else None
        return f"AuthToken(value=<hidden>, expires_at={expires})"

    __str__ = __repr__


def extract_auth_token(html: str) -> str | None:
    """The `"auth_token":"…"` value embedded in a site page (C.2 step 3), or None."""
    match = _AUTH_TOKEN.search(html)
    return match.group(1) if match else None


def token_from_page(html: str) -> AuthToken:
    """The token of a logged-in page; a signed-out page means the cookies were rejected (C.2.4)."""
    value = extract_auth_token(html)
    if not value or value == UNAUTHORIZED:
        raise CookiesRejected()
    return AuthToken.parse(value)


def fetch_auth_token(
    site_url: str,
    cookies: SessionCookies,
    *,
    http: requests.Session | None = None,
    timeout: float = 10,
) -> AuthToken:
    """Load the site's home page as the cookies' user and take the socket token from it."""
    session = http or requests.Session()
    headers = {"Cookie": cookies.header(), "User-Agent": BROWSER_USER_AGENT}
    url = site_url.rstrip("/") + "/"
    seen = {url}
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # Redirects are followed by hand: requests drops a hand-set Cookie header when the
            # host changes, and the regional site needs the same cookies (C.2 step 2).
            response = session.get(url, headers=headers, allow_redirects=False, timeout=timeout)
            if not response.is_redirect:
                break
            url = urljoin(url, response.headers["Location"])
            if url in seen:
                raise AuthUnavailable("TradingView redirected in a loop; try again later")
            seen.add(url)
        else:
            raise AuthUnavailable(f"TradingView redirected more than {MAX_REDIRECTS} times")
    except requests.RequestException as exc:
        raise AuthUnavailable(f"TradingView could not be reached ({type(exc).__name__})") from None
    finally:
        if http is None:
            session.close()
    if response.status_code != 200:
        raise AuthUnavailable(f"TradingView answered HTTP {response.status_code} to the home page")
    return token_from_page(response.text)


class Renewer(Protocol):
    """Signs in again for new cookies (renewal.SessionRenewer), or says None."""

    def renew(self, reason: str) -> SessionCookies | None: ...


class AuthTokenKeeper:
    """Hands the socket a valid token: cached, fetched again shortly before it expires or when
    the stored cookies change, and not asked for again with cookies the site has rejected.

    With a `renewer` it gets new cookies by signing in when there are none, when the site
    rejects them, and when the site keeps serving a token about to expire; the renewer decides
    whether a sign-in may happen now."""

    def __init__(
        self,
        site_url: str,
        cookie_provider: Callable[[], SessionCookies | None],
        *,
        renewer: Renewer | None = None,
        refresh_margin_s: float = 300,
        clock: Callable[[], float] = time.time,
        http: requests.Session | None = None,
        timeout: float = 10,
        retry_after_s: float = 30,
    ) -> None:
        self.site_url = site_url
        self.cookie_provider = cookie_provider
        self.renewer = renewer
        self.refresh_margin_s = refresh_margin_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.timeout = timeout
        self._http = http or requests.Session()
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._cookies: SessionCookies | None = None  # the cookies the fields below belong to
        self._token: AuthToken | None = None
        self._rejected = False
        self._error: str | None = None
        self._retry_at = 0.0

    def token(self) -> str | None:
        """The token to authenticate the socket with, or None to stream anonymously."""
        # One fetch at a time; `_lock` is only held briefly so `state()` never waits on the site.
        with self._fetch_lock:
            # Read inside the fetch lock: cookies read before another caller's sign-in would
            # bring back the refused ones and sign in twice.
            cookies = self._current_cookies()
            with self._lock:
                self._follow(cookies)
                now = self.clock()
                usable = cookies is not None and not self._rejected
                if usable and self._token is not None and not self._due(self._token, now):
                    return self._token.value
                if usable and now < self._retry_at:
                    return self._usable_token(now)
            if cookies is not None and usable:
                outcome = self._fetch(cookies)
                with self._lock:
                    self._record(outcome, now)
            reason = self._renewal_reason(cookies, now)
            if reason is not None and self.renewer is not None:
                self._renew(reason, now)
            with self._lock:
                return self._usable_token(now)

    def renew_if_needed(self) -> None:
        """For the feed's housekeeping: sign in when the session needs it even while nothing
        asks for a token (the socket streaming anonymously after a refusal, a backoff that has
        passed, credentials saved anew); the renewer decides whether it may happen now."""
        # Never wait behind a fetch or sign-in under way: the feed's loop calls this.
        if self.renewer is None or not self._fetch_lock.acquire(blocking=False):
            return
        try:
            cookies = self._current_cookies()
            with self._lock:
                self._follow(cookies)
            needed = self._renewal_reason(cookies, self.clock()) is not None
        finally:
            self._fetch_lock.release()
        if needed:
            self.token()

    def _renewal_reason(self, cookies: SessionCookies | None, now: float) -> str | None:
        """Why new cookies are needed, or None while the ones stored work (or the site is down,
        when signing in would not work either)."""
        with self._lock:
            if cookies is None:
                return "no cookies stored"
            if self._rejected:
                return "cookies refused"
            if self._token is not None and self._due(self._token, now):
                return "auth token about to expire"
            return None

    def _renew(self, reason: str, now: float) -> None:
        assert self.renewer is not None
        renewed = self.renewer.renew(reason)
        if renewed is None:
            return
        outcome = self._fetch(renewed)
        with self._lock:
            self._follow(renewed)
            self._record(outcome, now)

    def invalidate(self) -> None:
        """The socket refused the token: fetch a new one on the next call."""
        with self._lock:
            self._token = None
            self._retry_at = 0.0

    def state(self) -> dict:
        """For the status endpoint: are cookies stored, did the site accept them, until when."""
        cookies = self._current_cookies()
        with self._lock:
            same = cookies is not None and cookies == self._cookies
            authenticated: bool | None
            if cookies is None:
                authenticated = False
            elif not same:
                authenticated = None  # new cookies, not tried yet
            elif self._rejected:
                authenticated = False
            else:
                usable = self._usable_token(self.clock()) is not None
                authenticated = True if usable else None  # None: not fetched yet, or site down
            token = self._token if same else None
            expires_at = token.expires_at if token else None
            return {
                "configured": cookies is not None,
                "authenticated": authenticated,
                "token_expires_at": expires_at.isoformat() if expires_at else None,
                "error": self._error if same else None,
            }

    # --- internals ------------------------------------------------------------------

    def _current_cookies(self) -> SessionCookies | None:
        try:
            return self.cookie_provider()
        except Exception as exc:  # a broken store must not take the socket down with it
            log.warning(
                "tradingview cookies unreadable", extra={"kv": {"error": type(exc).__name__}}
            )
            return None

    def _follow(self, cookies: SessionCookies | None) -> None:
        """Forget everything learned about the previous cookies when the user stores new ones."""
        if cookies == self._cookies:
            return
        self._cookies = cookies
        self._token = None
        self._rejected = False
        self._error = None
        self._retry_at = 0.0

    def _due(self, token: AuthToken, now: float) -> bool:
        if token.expires_at is None:
            return False  # opaque token: kept until the socket refuses it (`invalidate`)
        return token.expires_at.timestamp() - now <= self.refresh_margin_s

    def _usable_token(self, now: float) -> str | None:
        # A token inside the refresh margin still works: better than anonymous while the site
        # is down.
        token = self._token
        if token is None or (token.expires_at is not None and token.expires_at.timestamp() <= now):
            return None
        return token.value

    def _fetch(self, cookies: SessionCookies) -> AuthToken | AuthError:
        try:
            return fetch_auth_token(self.site_url, cookies, http=self._http, timeout=self.timeout)
        except AuthError as exc:
            return exc

    def _record(self, outcome: AuthToken | AuthError, now: float) -> None:
        if isinstance(outcome, AuthToken):
            self._token, self._error = outcome, None
            if self._due(outcome, now):
                # The site keeps serving a token about to expire: do not ask again on every call.
                self._retry_at = now + self.retry_after_s
            expires = outcome.expires_at.isoformat() if outcome.expires_at else None
            log.info("tradingview auth token fetched", extra={"kv": {"expires_at": expires}})
        elif isinstance(outcome, CookiesRejected):
            # Remembered until the cookies change: asking again would only annoy the site.
            self._token, self._rejected, self._error = None, True, str(outcome)
            log.warning("tradingview cookies rejected")
        else:
            self._error = str(outcome)
            self._retry_at = now + self.retry_after_s
            log.warning("tradingview auth token unavailable", extra={"kv": {"error": str(outcome)}})
