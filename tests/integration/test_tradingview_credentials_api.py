"""The feed's TradingView sign-in over the API: an operator setting, checked at once, stored
encrypted and never answered back."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import TradingViewCredentials
from tests.integration.test_tradingview_session_api import make_operator

SECRET = "JBSW Y3DP EHPK 3PXP KRUG S4TF"  # as an authenticator app shows it, grouped
PASSWORD = "correct horse battery staple 7"
GOOD = {"username": "trader@example.com", "password": PASSWORD, "totp_secret": SECRET}


def stored(sessions, settings) -> dict[int, dict]:
    box = SecretBox(settings.encryption_key)
    with sessions() as s:
        rows = s.scalars(select(TradingViewCredentials)).all()
        return {r.user_id: json.loads(box.decrypt(r.secrets_encrypted)) for r in rows}


def rows(sessions) -> list[tuple]:
    with sessions() as s:
        return [
            (r.user_id, r.secrets_encrypted, r.saved_at, r.username_hint)
            for r in s.scalars(select(TradingViewCredentials)).all()
        ]


def test_credentials_are_stored_encrypted_and_only_a_hint_is_shown(
    client, alice, sessions, settings
):
    user, key = alice
    make_operator(sessions, user)
    saved = client.post("/api/tradingview/credentials", json=GOOD, headers=key)
    assert saved.status_code == 200, saved.get_json()
    shown = client.get("/api/tradingview/session", headers=key)
    view = shown.get_json()
    assert view["credentials"]["username_hint"] == "tr…" and view["credentials"]["saved_at"]
    assert (view["renewals_stopped"], view["last_error"], view["renewed_at"]) == (False, None, None)
    for answer in (saved, shown):
        body = answer.get_data(as_text=True)
        assert PASSWORD not in body and "JBSW" not in body and "trader@" not in body
    [(_, sealed, _, _)] = rows(sessions)
    assert PASSWORD not in sealed and "JBSW" not in sealed
    # The key is kept the way codes are computed from it: no spaces, upper case.
    assert stored(sessions, settings) == {
        user.id: {**GOOD, "totp_secret": "JBSWY3DPEHPK3PXPKRUGS4TF"}
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"totp_secret": "not base32 at all 0189!"}, "totp_secret"),
        ({"totp_secret": "JBSWY3DP"}, "totp_secret"),  # a truncated paste
        ({"totp_secret": "   "}, "totp_secret"),
        ({"password": ""}, "password"),
        ({"password": "   "}, "password"),
        ({"username": ""}, "username"),
        ({"username": "  "}, "username"),
    ],
)
def test_bad_credentials_are_refused_naming_the_field_and_change_nothing(
    client, alice, sessions, change, field
):
    user, key = alice
    make_operator(sessions, user)
    client.post("/api/tradingview/credentials", json=GOOD, headers=key)
    before = rows(sessions)
    refused = client.post("/api/tradingview/credentials", json={**GOOD, **change}, headers=key)
    assert refused.status_code == 422
    body = refused.get_json()
    assert list(body["fields"]) == [field] and body["error"].startswith(field)
    assert PASSWORD not in refused.get_data(as_text=True)
    assert rows(sessions) == before


def test_a_user_cannot_set_or_forget_the_feeds_sign_in_and_nothing_changes(
    client, alice, bob, sessions
):
    operator, key = alice
    make_operator(sessions, operator)
    client.post("/api/tradingview/credentials", json=GOOD, headers=key)
    before = rows(sessions)
    for answer in (
        client.post("/api/tradingview/credentials", json=GOOD, headers=bob[1]),
        client.delete("/api/tradingview/credentials", headers=bob[1]),
    ):
        assert answer.status_code == 403 and "operator" in answer.get_json()["error"]
    assert rows(sessions) == before
    # and what bob sees of the operator's sign-in is that there is one, not whose it is
    view = client.get("/api/tradingview/session", headers=bob[1]).get_json()
    assert view["credentials"]["username_hint"] is None and view["can_edit"] is False


def test_saving_again_clears_a_stop_and_forgetting_removes_the_sign_in(client, alice, sessions):
    user, key = alice
    make_operator(sessions, user)
    client.post("/api/tradingview/credentials", json=GOOD, headers=key)
    with db.transaction(sessions) as s:  # what the feed records after a captcha
        row = s.get(TradingViewCredentials, user.id)
        row.renewals_stopped, row.last_error = True, "TradingView asked for a captcha."
    stopped = client.get("/api/tradingview/session", headers=key).get_json()
    assert stopped["renewals_stopped"] is True and "captcha" in stopped["last_error"]
    assert "sessionid_sign" in stopped["how_to_refresh"]  # the steps to paste cookies instead

    again = client.post("/api/tradingview/credentials", json=GOOD, headers=key).get_json()
    assert (again["renewals_stopped"], again["last_error"]) == (False, None)

    forgotten = client.delete("/api/tradingview/credentials", headers=key)
    assert forgotten.status_code == 200 and forgotten.get_json()["credentials"] is None
    assert rows(sessions) == []
