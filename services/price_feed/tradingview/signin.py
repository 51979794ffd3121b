"""Signing in to TradingView with a password and the authenticator code (docs/outside/
tradingview.md C.4): username and password, `2FA_required`, then the current TOTP code with the
first step's provisional cookies; the answer's cookies are a full session like a browser's.

Each failure is a class saying what the feed should do next: stop until the credentials change
(`SignInStopped`: refused password or code, captcha) or try again later (`SignInDeferred`).
Messages are plain sentences for the status page; none carries a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from libs.common.authenticator import current_code
from services.price_feed.tradingview.auth import BROWSER_USER_AGENT, SessionCookies

log = logging.getLogger("price_feed")

SIGNIN_PATH = "/accounts/signin/"
TOTP_PATH = "/accounts/two-factor/signin/totp/"
PASTE_COOKIES = (
    "Until then the feed uses delayed quotes: sign in to TradingView in a browser (solving the "
    "captcha if one is shown), then either save the credentials again to let the feed retry, or "
    "paste the sessionid and sessionid_sign cookies on the Accounts page."
)


@dataclass(frozen=True)
class Credentials:
    """What the operator stored; `saved_at` tells one saving from the next."""

    username: str
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)
    saved_at: str = ""  # ISO time the operator saved them


class SignInError(Exception):
    """The sign-in did not give a session; the message is one plain sentence."""


class SignInStopped(SignInError):
    """Asking again with the same credentials would fail again (or lock the account, or be
    taken for a bot): renewals stop until the credentials change."""


class SignInDeferred(SignInError):
    """The site could not be asked or asked us to slow down: worth trying again later."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reason(body: dict[str, Any]) -> str:
    return str(body.get("code") or body.get("error") or "")


def _check(step: str, response: requests.Response) -> dict[str, Any]:
    """The answer's JSON, or the failure it means for the feed."""
    body = _body(response)
    reason = _reason(body)
    if response.status_code == 429 or reason == "rate_limit":
        raise SignInDeferred(
            "TradingView limits sign-in attempts right now; the feed waits before trying again",
            rate_limited=True,
        )
    if "recaptcha" in reason.lower():
        raise SignInStopped(
            "TradingView asked for a captcha, which only a person can solve. " + PASTE_COOKIES
        )
    if step == "code" and response.status_code == 401:
        raise SignInStopped(
            "TradingView refused the authenticator code: the stored authenticator key is not this "
            "account's. " + PASTE_COOKIES
        )
    failed = response.status_code >= 500 or (response.status_code != 200 and not body)
    if failed or (step == "code" and response.status_code != 200):
        raise SignInDeferred(f"TradingView answered HTTP {response.status_code} to the sign-in")
    return body


def _cookies(response: requests.Response) -> SessionCookies | None:
    found = {c.name: c.value for c in response.cookies if c.value}
    sessionid = found.get("sessionid")
    return SessionCookies(sessionid, found.get("sessionid_sign")) if sessionid else None


def sign_in(
    site_url: str,
    credentials: Credentials,
    *,
    timeout: float = 10,
    code: Callable[[str], str] = current_code,
) -> SessionCookies:
    """A new TradingView session for `credentials`; raises a SignInError subclass otherwise."""
    base = site_url.rstrip("/")
    headers = {"Referer": base, "Origin": base, "User-Agent": BROWSER_USER_AGENT}
    # Its own HTTP session: the provisional cookies must never reach another request.
    with requests.Session() as http:
        try:
            first = http.post(
                base + SIGNIN_PATH,
                data={
                    "username": credentials.username,
                    "password": credentials.password,
                    "remember": "on",
                },
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
            body = _check("password", first)
            if _reason(body) != "2FA_required":
                return _session_or_refusal("password", first, body)
            provisional = _cookies(first)
            if provisional is None:
                raise SignInDeferred("TradingView asked for the code but set no session cookie")
            second = http.post(
                base + TOTP_PATH,
                data={"code": code(credentials.totp_secret)},
                headers={**headers, "Cookie": provisional.header()},
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise SignInDeferred(
                f"TradingView could not be reached to sign in ({type(exc).__name__})"
            ) from None
        return _session_or_refusal("code", second, _check("code", second))


def _session_or_refusal(
    step: str, response: requests.Response, body: dict[str, Any]
) -> SessionCookies:
    if body.get("error"):
        # How the site words a wrong password is unverified; whatever it says, asking again with
        # the same password could lock the account.
        what = "the username or password" if step == "password" else "the sign-in"
        raise SignInStopped(
            f"TradingView refused {what}. Save the right credentials on the Accounts page. "
            + PASTE_COOKIES
        )
    cookies = _cookies(response)
    if cookies is None:
        raise SignInDeferred("TradingView accepted the sign-in but set no session cookie")
    return cookies
