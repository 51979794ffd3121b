"""The price feed's TradingView session over the API: an operator setting (one login serves every
user), stored encrypted, never answered back, and never changed by someone else."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from libs.common import streams
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import TradingViewSession, User

COOKIES = {"sessionid": "abc123secretvalue", "sessionid_sign": "v2:signature+/="}


def make_operator(sessions, user) -> None:
    """What `justtrades user admin EMAIL` does."""
    with db.transaction(sessions) as s:
        s.execute(update(User).where(User.id == user.id).values(is_admin=True))


def store_directly(sessions, settings, user, cookies) -> None:
    """Cookies a user saved before the session became an operator setting."""
    sealed = SecretBox(settings.encryption_key).encrypt(json.dumps(cookies))
    with db.transaction(sessions) as s:
        s.add(TradingViewSession(user_id=user.id, cookies_encrypted=sealed))


def stored(sessions, settings) -> dict[int, dict]:
    box = SecretBox(settings.encryption_key)
    with sessions() as s:
        rows = s.scalars(select(TradingViewSession)).all()
        return {r.user_id: json.loads(box.decrypt(r.cookies_encrypted)) for r in rows}


def test_cookies_are_stored_encrypted_and_never_returned(client, alice, sessions, settings):
    user, key = alice
    make_operator(sessions, user)
    saved = client.post("/api/tradingview/session", json=COOKIES, headers=key)
    assert saved.status_code == 200
    assert saved.get_json()["configured"] is True
    shown = client.get("/api/tradingview/session", headers=key)
    body = shown.get_data(as_text=True)
    assert shown.get_json()["configured"] is True and shown.get_json()["can_edit"] is True
    assert "abc123secretvalue" not in body and "signature" not in body

    with sessions() as s:
        row = s.scalar(select(TradingViewSession))
    assert "abc123secretvalue" not in row.cookies_encrypted
    assert stored(sessions, settings) == {user.id: COOKIES}


def test_an_operator_without_cookies_is_told_how_to_get_them(client, alice, sessions):
    make_operator(sessions, alice[0])
    view = client.get("/api/tradingview/session", headers=alice[1]).get_json()
    assert view["configured"] is False and view["can_edit"] is True
    assert "sessionid_sign" in view["how_to_refresh"]


def test_a_user_is_told_the_operator_sets_the_feeds_session(client, alice):
    view = client.get("/api/tradingview/session", headers=alice[1]).get_json()
    assert view["configured"] is False and view["can_edit"] is False
    assert "operator" in view["how_to_refresh"]
    assert "justtrades user admin EMAIL" in view["how_to_refresh"]


def test_a_user_cannot_set_or_forget_the_feeds_session_and_nothing_changes(
    client, alice, bob, sessions, settings
):
    operator, key = alice
    make_operator(sessions, operator)
    client.post("/api/tradingview/session", json=COOKIES, headers=key)

    refused = client.post("/api/tradingview/session", json={"sessionid": "expired"}, headers=bob[1])
    assert refused.status_code == 403
    assert refused.get_json()["ok"] is False
    assert "operator" in refused.get_json()["error"]
    assert "justtrades user admin EMAIL" in refused.get_json()["error"]
    assert client.delete("/api/tradingview/session", headers=bob[1]).status_code == 403
    assert stored(sessions, settings) == {operator.id: COOKIES}


def test_every_user_sees_that_an_operator_set_the_session_but_not_whose_it_is(
    client, alice, bob, sessions
):
    operator, key = alice
    make_operator(sessions, operator)
    client.post("/api/tradingview/session", json=COOKIES, headers=key)
    shown = client.get("/api/tradingview/session", headers=bob[1])
    view = shown.get_json()
    assert (view["configured"], view["set_by_operator"], view["can_edit"]) == (True, True, False)
    assert view["updated_at"]
    assert "how_to_refresh" not in view
    body = shown.get_data(as_text=True)
    assert "alice" not in body and "user_id" not in body and "abc123secretvalue" not in body


def test_a_user_may_delete_cookies_of_their_own_that_the_feed_ignores(
    client, bob, sessions, settings
):
    user, key = bob
    store_directly(sessions, settings, user, COOKIES)
    view = client.get("/api/tradingview/session", headers=key).get_json()
    assert view["own_cookies_ignored"] is True and view["configured"] is False

    forgotten = client.delete("/api/tradingview/session", headers=key)
    assert forgotten.status_code == 200
    assert forgotten.get_json()["own_cookies_ignored"] is False
    assert stored(sessions, settings) == {}


def test_new_cookies_replace_the_old_ones_and_delete_forgets_every_operators(
    client, alice, bob, sessions, settings
):
    for user, _ in (alice, bob):
        make_operator(sessions, user)
    client.post("/api/tradingview/session", json=COOKIES, headers=bob[1])
    client.post("/api/tradingview/session", json=COOKIES, headers=alice[1])
    client.post("/api/tradingview/session", json={"sessionid": "fresh"}, headers=alice[1])
    assert stored(sessions, settings)[alice[0].id] == {"sessionid": "fresh", "sessionid_sign": None}

    # Forgetting the feed's session must not hand the feed to an older operator's cookies.
    view = client.delete("/api/tradingview/session", headers=alice[1]).get_json()
    assert view["configured"] is False
    assert stored(sessions, settings) == {}


def test_bad_cookie_values_are_refused_naming_the_field_and_change_nothing(client, alice, sessions):
    make_operator(sessions, alice[0])
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


def test_every_user_sees_how_the_feed_is_doing(
    client, alice, bob, sessions, redis_client, settings
):
    operator, key = alice
    make_operator(sessions, operator)
    client.post("/api/tradingview/session", json=COOKIES, headers=key)
    redis_client.set(
        settings.stream(streams.PRICE_FEED_STATUS),
        json.dumps(
            {
                "connected": True,
                "source": "tradingview",
                "authenticated": False,
                "delayed_symbols": ["MNQ"],
                "tradingview_session": {
                    "user_id": operator.id,
                    "configured": True,
                    "authenticated": False,
                    "token_expires_at": None,
                    "error": "TradingView did not accept the stored session cookies",
                },
            }
        ),
    )
    mine = client.get("/api/tradingview/session", headers=key).get_json()
    assert (mine["in_use"], mine["authenticated"], mine["quotes"]) == (True, False, "delayed")
    assert "did not accept" in mine["error"] and "sessionid_sign" in mine["how_to_refresh"]
    shown = client.get("/api/tradingview/session", headers=bob[1])
    theirs = shown.get_json()
    assert (theirs["connected"], theirs["in_use"], theirs["quotes"]) == (True, True, "delayed")
    assert "did not accept" in theirs["error"]
    assert "justtrades user admin EMAIL" in theirs["how_to_refresh"]
    assert "user_id" not in shown.get_data(as_text=True)


def test_session_requires_login(client):
    assert client.get("/api/tradingview/session").status_code == 401
