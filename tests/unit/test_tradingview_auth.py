"""Reading the socket token out of site pages and JWTs, without the network."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from services.price_feed.tradingview.auth import (
    AuthToken,
    CookiesRejected,
    SessionCookies,
    extract_auth_token,
    token_expiry,
    token_from_page,
)
from simulators.tradingview.tokens import make_jwt, read_claims

EXP = 1_900_000_000


def _segment(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_jwt_expiry_is_read_from_the_payload():
    token = make_jwt(42, EXP)
    assert token.startswith("eyJ")
    assert token_expiry(token) == datetime.fromtimestamp(EXP, UTC)


def test_simulated_jwt_carries_user_plan_and_times():
    claims = read_claims(make_jwt(42, EXP, plan="pro_premium"))
    assert claims is not None
    assert claims["user_id"] == 42 and claims["plan"] == "pro_premium" and claims["exp"] == EXP
    assert isinstance(claims["iat"], int)


@pytest.mark.parametrize(
    "token",
    [
        "0a1b2c3d4e5f",  # the older opaque format
        "a.b",
        "x.!!!notbase64!!!.y",
        f"h.{_segment(['not', 'a', 'dict'])}.s",
        f"h.{_segment({'user_id': 1})}.s",  # no exp
        f"h.{_segment({'exp': 'tomorrow'})}.s",
        f"h.{_segment({'exp': 10**20})}.s",  # out of range
    ],
)
def test_tokens_without_a_readable_expiry_are_kept_opaque(token):
    assert token_expiry(token) is None
    assert AuthToken.parse(token).expires_at is None


def test_reprs_hide_cookie_and_token_values():
    cookies = SessionCookies("sess-secret-1", "sign-secret-2")
    token = AuthToken.parse(make_jwt(1, EXP))
    for text in (repr(cookies), str(cookies), f"{cookies}", repr(token), str(token)):
        assert "secret" not in text and token.value not in text
    assert "2030" in repr(token)  # the expiry is fine to show


def test_cookie_header_sends_the_signature_only_when_given():
    assert SessionCookies("abc").header() == "sessionid=abc"
    assert SessionCookies("abc", "def").header() == "sessionid=abc; sessionid_sign=def"


def test_cookies_compare_by_value():
    assert SessionCookies("a", "b") == SessionCookies("a", "b")
    assert SessionCookies("a", "b") != SessionCookies("a", "c")


LOGGED_IN = (
    '<script>window.user = {"id": 7, "username": "trader7", '
    '"auth_token": "eyJhbGciOi.eyJ1c2VyX2lk.c2ln",'
    ' "session_hash": "xyz"};</script>'
)
SIGNED_OUT = '<script>window.user = {"auth_token": "unauthorized_user_token"}</script>'
INIT_DATA = (
    '<script>var initData = {"user":{"id":7,"auth_token" : "tok-123","private_channel":"p"}}'
    "</script>"
)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (LOGGED_IN, "eyJhbGciOi.eyJ1c2VyX2lk.c2ln"),
        (INIT_DATA, "tok-123"),
        (SIGNED_OUT, "unauthorized_user_token"),
        ('<script>window.user = {"is_authenticated": false}</script>', None),
        ("", None),
    ],
)
def test_auth_token_is_taken_from_the_page(html, expected):
    assert extract_auth_token(html) == expected


def test_logged_in_page_gives_a_token():
    assert token_from_page(LOGGED_IN).value == "eyJhbGciOi.eyJ1c2VyX2lk.c2ln"


@pytest.mark.parametrize(
    "html",
    [
        '<script>window.user = {"auth_token": "unauthorized_user_token"}</script>',
        '<script>window.user = {"is_authenticated": false}</script>',
        '<script>window.user = {"auth_token": ""}</script>',
    ],
)
def test_signed_out_page_means_the_cookies_were_rejected(html):
    with pytest.raises(CookiesRejected) as caught:
        token_from_page(html)
    message = str(caught.value)
    assert "expired or were signed out" in message
    assert "copy fresh sessionid and sessionid_sign cookies from a logged-in browser" in message
