"""Refused webhooks are kept per recorder and listed in the UI's API, so a trader can see why an
alert never became a signal: the real gateway app refuses, the real UI app lists."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from libs.common import recorder_tokens
from services.gateway.app import create_app as create_gateway

BUY = {"action": "buy", "ticker": "MNQ1!", "price": 21034.25}


@pytest.fixture
def mine(alice, make_recorder, redis_client, settings):
    """Alice's recorder, in the token map before the gateway copies it."""
    recorder = make_recorder(user=alice[0], name="MNQ Trend")
    recorder_tokens.put(redis_client, settings, recorder)
    return recorder


@pytest.fixture
def gateway(settings, redis_client, mine):
    def make(**overrides):
        app = create_gateway(replace(settings, **overrides), redis_client=redis_client)
        return app.test_client()

    return make


def send(gateway_client, token: str, body: str | bytes):
    return gateway_client.post(f"/webhook/{token}", data=body, content_type="text/plain")


def listed(client, alice, recorder_id: int) -> tuple[dict, str]:
    response = client.get(f"/api/recorders/{recorder_id}/refused", headers=alice[1])
    assert response.status_code == 200, response.get_json()
    return response.get_json(), response.get_data(as_text=True)


def test_an_unrendered_placeholder_is_listed_with_the_reason_and_the_body_without_the_token(
    gateway, mine, client, alice
):
    token = mine.webhook_token
    body = json.dumps({**BUY, "price": "{{close}}", "comment": f"from /webhook/{token} {token}"})

    answer = send(gateway(), token, body)

    assert answer.status_code == 422
    data, text = listed(client, alice, mine.id)
    [refused] = data["refused"]
    assert refused["status"] == 422
    assert refused["error"] == answer.get_json()["error"]
    assert "{{close}}" in refused["error"]
    assert '"price": "{{close}}"' in refused["body"]
    assert "/webhook/<token> <token>" in refused["body"]
    assert refused["unknown_token"] is False
    assert refused["at"].endswith("Z")
    assert refused["remote"] == "127.0.0.1"
    assert data["kept"] == "the last 100, for 7 days"
    assert token not in text


def test_a_body_that_is_not_json_is_listed(gateway, mine, client, alice):
    answer = send(gateway(), mine.webhook_token, f"buy MNQ now {mine.webhook_token}")

    assert answer.status_code == 400
    data, text = listed(client, alice, mine.id)
    [refused] = data["refused"]
    assert (refused["status"], refused["error"]) == (400, answer.get_json()["error"])
    assert refused["body"] == "buy MNQ now <token>"
    assert mine.webhook_token not in text


def test_a_body_over_16_kib_is_listed_without_its_body(gateway, mine, client, alice):
    body = json.dumps({**BUY, "comment": "x" * 16 * 1024})

    assert send(gateway(), mine.webhook_token, body).status_code == 413

    [refused] = listed(client, alice, mine.id)[0]["refused"]
    assert refused["status"] == 413
    assert refused["error"] == "The body is larger than 16 KiB."
    assert refused["body"] == "(body over 16 KiB, not kept)"


def test_too_many_signals_are_listed_and_an_accepted_one_is_not(gateway, mine, client, alice):
    limited = gateway(webhook_rate_limit=1, webhook_rate_window_s=3600)

    statuses = [send(limited, mine.webhook_token, json.dumps(BUY)).status_code for _ in range(2)]

    assert statuses == [202, 429]
    data, text = listed(client, alice, mine.id)
    [refused] = data["refused"]  # the 202 is not there
    assert refused["status"] == 429
    assert refused["error"].startswith("Too many signals for this webhook")
    assert json.loads(refused["body"]) == BUY
    assert mine.webhook_token not in text


def test_newest_first_and_only_the_recorders_own(gateway, mine, make_recorder, client, alice):
    other = make_recorder(user=alice[0], name="ES")
    client_ = gateway()

    send(client_, mine.webhook_token, "first")
    send(client_, mine.webhook_token, json.dumps({"action": "hold", "ticker": "MNQ1!"}))

    errors = [r["status"] for r in listed(client, alice, mine.id)[0]["refused"]]
    assert errors == [422, 400]
    assert listed(client, alice, other.id)[0]["refused"] == []


def test_an_unknown_token_naming_the_recorder_is_listed_as_such(gateway, mine, client, alice):
    old_url_token = "0" * 32  # the alert still uses a URL from before the token was renewed
    body = json.dumps({**BUY, "recorder": "  mnq trend "})

    answer = send(gateway(), old_url_token, body)

    assert answer.status_code == 404
    data, text = listed(client, alice, mine.id)
    [refused] = data["refused"]
    assert refused["unknown_token"] is True
    assert refused["status"] == 404
    assert refused["error"] == "No recorder has this webhook token."
    assert '"recorder": "  mnq trend "' in refused["body"]
    assert old_url_token not in text


@pytest.mark.parametrize(
    "body", [json.dumps({**BUY, "recorder": "Nobody's"}), json.dumps(BUY), "not json"]
)
def test_an_unknown_token_naming_no_recorder_is_kept_nowhere(
    gateway, mine, client, alice, redis_client, body
):
    assert send(gateway(), "0" * 32, body).status_code == 404

    assert listed(client, alice, mine.id)[0]["refused"] == []
    assert redis_client.keys("*webhook_refused*") == []


def test_another_user_can_neither_read_nor_clear_the_list(gateway, mine, client, alice, bob):
    send(gateway(), mine.webhook_token, "not json")

    for method in ("get", "delete"):
        response = getattr(client, method)(f"/api/recorders/{mine.id}/refused", headers=bob[1])
        assert response.status_code == 404
        assert response.get_json() == {"ok": False, "error": "Recorder not found."}
    assert len(listed(client, alice, mine.id)[0]["refused"]) == 1


def test_clear_empties_the_list(gateway, mine, client, alice):
    send(gateway(), mine.webhook_token, "not json")

    cleared = client.delete(f"/api/recorders/{mine.id}/refused", headers=alice[1])

    assert cleared.status_code == 200
    assert listed(client, alice, mine.id)[0]["refused"] == []


def test_deleting_the_recorder_removes_its_list(gateway, mine, client, alice, redis_client):
    send(gateway(), mine.webhook_token, "not json")
    assert redis_client.keys("*webhook_refused*")

    assert client.delete(f"/api/recorders/{mine.id}", headers=alice[1]).status_code in (200, 202)

    assert redis_client.keys("*webhook_refused*") == []


def test_the_list_keeps_the_newest_100_for_7_days(gateway, mine, client, alice, redis_client):
    client_ = gateway()
    for n in range(102):
        send(client_, mine.webhook_token, f"not json {n}")

    refused = listed(client, alice, mine.id)[0]["refused"]

    assert len(refused) == 100
    assert refused[0]["body"] == "not json 101"
    [key] = redis_client.keys("*webhook_refused*")
    assert 7 * 24 * 3600 - 60 < redis_client.ttl(key) <= 7 * 24 * 3600
