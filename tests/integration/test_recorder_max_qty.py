"""A recorder's `max_qty` through the API: set, returned, bounded by MAX_SIGNAL_QTY, and carried
to the gateway, which refuses a larger signal."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from libs.common import recorder_tokens
from libs.common.storage.models import Recorder
from services.gateway.app import create_app as create_gateway
from services.ui.app import create_app
from tests.integration.test_api import count


def test_a_new_recorder_allows_100_contracts_per_signal_and_returns_it(client, alice):
    created = client.post("/api/recorders", json={"name": "MNQ"}, headers=alice[1])

    assert created.status_code == 201
    assert created.get_json()["max_qty"] == 100
    listed = client.get("/api/recorders", headers=alice[1]).get_json()["recorders"]
    assert listed[0]["max_qty"] == 100


def test_max_qty_set_through_the_api_is_what_the_gateway_enforces(
    client, alice, settings, redis_client
):
    # Given a recorder whose max_qty is lowered to 3
    created = client.post("/api/recorders", json={"name": "MNQ"}, headers=alice[1]).get_json()
    changed = client.put(
        f"/api/recorders/{created['id']}", json={"max_qty": 3}, headers=alice[1]
    ).get_json()
    assert changed["max_qty"] == 3

    # When webhooks ask for 4 and then 3 contracts
    gateway = create_gateway(settings, redis_client=redis_client).test_client()
    url = f"/webhook/{created['webhook_token']}"
    over = gateway.post(url, json={"action": "buy", "ticker": "MNQ1!", "qty": 4})
    within = gateway.post(url, json={"action": "buy", "ticker": "MNQ1!", "qty": 3})

    # Then the larger one is refused naming the limit, and the other accepted
    assert over.status_code == 422 and "max_qty of 3" in over.get_json()["error"]
    assert within.status_code == 202
    ref = recorder_tokens.lookup(redis_client, settings, created["webhook_token"])
    assert ref is not None and ref.max_qty == Decimal(3)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"name": "x", "max_qty": 0}, "max_qty must be a positive number"),
        ({"name": "x", "max_qty": "many"}, "max_qty must be a positive number"),
        ({"name": "x", "max_qty": 1001}, "max_qty must be at most 1000"),
        ({"name": "x", "max_qty": 2, "default_qty": 3}, "default_qty must be at most max_qty (2)"),
    ],
)
def test_a_max_qty_out_of_bounds_is_a_422_naming_it_and_creates_nothing(
    client, alice, sessions, payload, says
):
    answer = client.post("/api/recorders", json=payload, headers=alice[1])

    assert answer.status_code == 422
    assert says in answer.get_json()["error"]
    assert count(sessions, Recorder) == 0


def test_max_qty_is_bounded_by_the_platform_setting(settings, sessions, redis_client, alice):
    client = create_app(
        replace(settings, max_signal_qty=20), sessions=sessions, redis_client=redis_client
    ).test_client()
    created = client.post("/api/recorders", json={"name": "MNQ", "max_qty": 20}, headers=alice[1])

    raised = client.put(
        f"/api/recorders/{created.get_json()['id']}", json={"max_qty": 21}, headers=alice[1]
    )

    assert created.status_code == 201
    assert raised.status_code == 422
    assert "max_qty must be at most 20" in raised.get_json()["error"]
