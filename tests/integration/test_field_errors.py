"""A 422 about body fields names each one in `fields` (one sentence per field, for a form to show
beside its input) while `error` stays the whole sentence; and a simulated or replayed feed is
never called real-time."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from libs.common import streams
from libs.common.storage.models import Recorder, Trader


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_bad_recorder_answers_each_field_with_its_own_sentence(client, alice, sessions):
    # Given a recorder with a take-profit of half a tick and a blank name
    resp = client.post(
        "/api/recorders", json={"name": " ", "tp_ticks": 1.5, "colour": "red"}, headers=alice[1]
    )

    # Then the answer names each field with its own sentence, beside the whole one
    body = resp.get_json()
    assert resp.status_code == 422 and body["ok"] is False
    assert body["fields"] == {
        "name": "name must be text of 1 to 100 characters, not blank.",
        "tp_ticks": body["fields"]["tp_ticks"],
        "colour": "unknown field: colour.",
    }
    assert body["fields"]["tp_ticks"].startswith("tp_ticks must be null")
    assert body["error"] == (
        "unknown field: colour; name must be text of 1 to 100 characters, not blank; "
        + body["fields"]["tp_ticks"]
    )
    assert count(sessions, Recorder) == 0


def test_a_size_above_the_recorders_maximum_names_that_field(client, alice):
    resp = client.post(
        "/api/recorders", json={"name": "A", "default_qty": 5, "max_qty": 2}, headers=alice[1]
    )
    body = resp.get_json()
    assert resp.status_code == 422
    assert list(body["fields"]) == ["default_qty"]
    assert body["fields"]["default_qty"] == body["error"]
    assert body["error"].startswith("default_qty must be at most max_qty (2)")


def test_a_bad_trader_and_a_bad_manual_order_name_their_fields(client, alice, paper, sessions):
    recorder = client.post("/api/recorders", json={"name": "A"}, headers=alice[1]).get_json()
    bad_trader = client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": paper["id"], "multiplier": 0},
        headers=alice[1],
    )
    assert bad_trader.status_code == 422
    assert list(bad_trader.get_json()["fields"]) == ["multiplier"]
    assert count(sessions, Trader) == 0

    no_limit = client.post(
        "/api/manual-trade",
        json={
            "subaccount_id": paper["id"],
            "action": "buy",
            "ticker": "MNQ1!",
            "order_type": "limit",
        },
        headers=alice[1],
    )
    assert no_limit.status_code == 422
    assert no_limit.get_json()["fields"] == {
        "limit_price": "limit_price is required for a limit order."
    }


def test_an_error_about_no_field_has_no_fields(client, alice):
    resp = client.get("/api/signals?status=bogus", headers=alice[1])
    assert resp.status_code == 422 and "fields" not in resp.get_json()


def test_a_wrong_current_password_is_about_that_field(client, alice):
    resp = client.post(
        "/api/password",
        json={"current_password": "not it", "new_password": "a long new passphrase here"},
        headers=alice[1],
    )
    assert resp.status_code == 403
    assert list(resp.get_json()["fields"]) == ["current_password"]


@pytest.mark.parametrize(
    ("status", "quotes"),
    [
        ({"connected": True, "source": "sim", "active_source": "sim"}, "simulated"),
        ({"connected": True, "source": "replay", "active_source": "replay"}, "replay"),
        ({"connected": True, "source": "tradovate", "active_source": "tradovate"}, "real-time"),
    ],
)
def test_the_session_says_what_the_feeds_quotes_are(
    client, alice, redis_client, settings, status, quotes
):
    redis_client.set(settings.stream(streams.PRICE_FEED_STATUS), json.dumps(status))
    view = client.get("/api/tradingview/session", headers=alice[1]).get_json()
    assert view["quotes"] == quotes
