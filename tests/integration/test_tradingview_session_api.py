"""Storing TradingView session cookies: encrypted at rest, never answered back, per user."""

from __future__ import annotations

import json

from sqlalchemy import select

from libs.common import streams
from libs.common.security import SecretBox
from libs.common.storage.models import TradingViewSession

COOKIES = {"sessionid": "abc123secretvalue", "sessionid_sign": "v2:signature+/="}


def test_cookies_are_stored_encrypted_and_never_returned(client, alice, sessions, settings):
    _, key = alice
    saved = client.post("/api/tradingview/session", json=COOKIES, headers=key)
    assert saved.status_code == 200
    assert saved.get_json()["configured"] is True
    shown = client.get("/api/tradingview/session", headers=key)
    body = shown.get_data(as_text=True)
    assert shown.get_json()["configured"] is True
    assert "abc123secretvalue" not in body and "signature" not in body

    with sessions() as s:
        row = s.scalar(select(TradingViewSession))
    assert "abc123secretvalue" not in row.cookies_encrypted
    assert json.loads(SecretBox(settings.encryption_key).decrypt(row.cookies_encrypted)) == COOKIES


def test_a_user_without_cookies_is_told_how_to_get_them(client, alice):
    view = client.get("/api/tradingview/session", headers=alice[1]).get_json()
    assert view["configured"] is False
    assert "sessionid_sign" in view["how_to_refresh"]


def test_bad_cookie_values_are_refused_naming_the_field_and_change_nothing(client, alice, sessions):
    for body in (
        {"sessionid": ""},
        {"sessionid": "a b"},
        {"sessionid": "x;y"},
        {"sessionid": 5},
        {"sessionid": "ok", "extra": 1},
    ):
        answer = client.post("/api/tradingview/session", json=body, headers=alice[1])
        assert answer.status_code == 422, body
        assert answer.get_json()["ok"] is False
    with sessions() as s:
        assert s.scalar(select(TradingViewSession)) is None


def test_new_cookies_replace_the_old_ones_and_delete_forgets_them(
    client, alice, sessions, settings
):
    _, key = alice
    client.post("/api/tradingview/session", json=COOKIES, headers=key)
    client.post("/api/tradingview/session", json={"sessionid": "fresh"}, headers=key)
    with sessions() as s:
        rows = s.scalars(select(TradingViewSession)).all()
    assert len(rows) == 1
    assert (
        json.loads(SecretBox(settings.encryption_key).decrypt(rows[0].cookies_encrypted))[
            "sessionid"
        ]
        == "fresh"
    )
    assert client.delete("/api/tradingview/session", headers=key).get_json()["configured"] is False


def test_feed_state_is_shown_only_to_the_user_whose_cookies_it_uses(
    client, alice, bob, redis_client, settings
):
    user, key = alice
    client.post("/api/tradingview/session", json=COOKIES, headers=key)
    redis_client.set(
        settings.stream(streams.PRICE_FEED_STATUS),
        json.dumps(
            {
                "connected": True,
                "tradingview_session": {
                    "user_id": user.id,
                    "authenticated": False,
                    "token_expires_at": None,
                    "error": "TradingView did not accept the stored session cookies",
                },
            }
        ),
    )
    mine = client.get("/api/tradingview/session", headers=key).get_json()
    assert (mine["in_use"], mine["authenticated"]) == (True, False)
    assert "did not accept" in mine["error"] and "how_to_refresh" in mine
    theirs = client.get("/api/tradingview/session", headers=bob[1]).get_json()
    assert theirs["in_use"] is False and theirs["error"] is None


def test_session_requires_login(client):
    assert client.get("/api/tradingview/session").status_code == 401
