"""Per-user isolation on every API route: another user's ids answer 404 and change nothing.

The sweep reads the routes from the app itself, so a new route that takes an id fails this test
until it is listed here with the object it needs.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from libs.common import streams
from libs.common.streams import SignalMessage
from services.position_engine.engine import PositionEngine

# Path parameter → what alice owns that fills it.
PARAMETERS = {
    "account_id",
    "key_id",
    "destination_id",
    "group_id",
    "order_id",
    "position_id",
    "recorder_id",
    "signal_id",
    "subaccount_id",
    "trader_id",
}
BODIES = {
    ("PUT", "/api/recorders/<int:recorder_id>"): {"name": "taken over"},
    ("PUT", "/api/traders/<int:trader_id>"): {"enabled": False},
    ("PUT", "/api/copy-groups/<int:group_id>"): {"realign": True},
    ("PUT", "/api/subaccounts/<int:subaccount_id>/risk"): {"daily_loss_limit": 1},
    ("PUT", "/api/notifications/<int:destination_id>"): {"enabled": False},
}
# Every id-taking route and method the sweep calls; it must equal what the app has.
COVERED = {
    ("GET", "/api/accounts/<int:account_id>"),
    ("DELETE", "/api/accounts/<int:account_id>"),
    ("POST", "/api/accounts/<int:account_id>/refresh"),
    ("DELETE", "/api/api-keys/<int:key_id>"),
    ("PUT", "/api/notifications/<int:destination_id>"),
    ("DELETE", "/api/notifications/<int:destination_id>"),
    ("POST", "/api/notifications/<int:destination_id>/test"),
    ("GET", "/api/copy-groups/<int:group_id>"),
    ("PUT", "/api/copy-groups/<int:group_id>"),
    ("DELETE", "/api/copy-groups/<int:group_id>"),
    ("POST", "/api/copy-groups/<int:group_id>/realign"),
    ("GET", "/api/orders/<order_id>"),
    ("GET", "/api/positions/<int:position_id>"),
    ("GET", "/api/recorders/<int:recorder_id>"),
    ("PUT", "/api/recorders/<int:recorder_id>"),
    ("DELETE", "/api/recorders/<int:recorder_id>"),
    ("POST", "/api/recorders/<int:recorder_id>/reset-history"),
    ("POST", "/api/recorders/<int:recorder_id>/rotate-token"),
    ("GET", "/api/recorders/<int:recorder_id>/webhook"),
    ("GET", "/api/recorders/<int:recorder_id>/refused"),
    ("DELETE", "/api/recorders/<int:recorder_id>/refused"),
    ("POST", "/api/recorders/<int:recorder_id>/test-alert"),
    ("GET", "/api/signals/<signal_id>"),
    ("GET", "/api/signals/<signal_id>/timeline"),
    ("GET", "/api/traders/<int:trader_id>"),
    ("PUT", "/api/traders/<int:trader_id>"),
    ("DELETE", "/api/traders/<int:trader_id>"),
    ("GET", "/api/subaccounts/<int:subaccount_id>"),
    ("GET", "/api/subaccounts/<int:subaccount_id>/risk"),
    ("PUT", "/api/subaccounts/<int:subaccount_id>/risk"),
    ("POST", "/api/subaccounts/<int:subaccount_id>/unlock"),
}
# What alice can read about her own objects: all of it must be the same after bob's attempts.
ALICE_VIEWS = (
    "/api/recorders",
    "/api/traders",
    "/api/accounts",
    "/api/copy-groups",
    "/api/api-keys",
    "/api/notifications",
    "/api/positions",
    "/api/signals",
    "/api/orders",
)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def alices_world(client, alice, settings, sessions, redis_client) -> dict[str, str]:
    """Alice's recorder with a signal and an open position, two paper accounts, a trader, a copy
    group, an order and a second API key; the ids by parameter name."""
    _, key = alice
    recorder = ok(client.post("/api/recorders", json={"name": "Alice's"}, headers=key), 201)
    first = ok(
        client.post("/api/accounts", json={"broker": "paper", "name": "A"}, headers=key), 201
    )
    second = ok(
        client.post("/api/accounts", json={"broker": "paper", "name": "B"}, headers=key), 201
    )
    sub, other_sub = first["subaccounts"][0]["id"], second["subaccounts"][0]["id"]
    trader = ok(
        client.post(
            "/api/traders", json={"recorder_id": recorder["id"], "subaccount_id": sub}, headers=key
        ),
        201,
    )
    group = ok(
        client.post(
            "/api/copy-groups",
            json={
                "leader_subaccount_id": sub,
                "followers": [{"subaccount_id": other_sub, "multiplier": 1}],
            },
            headers=key,
        ),
        201,
    )
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "25640")
    order = ok(
        client.post(
            "/api/manual-trade",
            json={"subaccount_id": sub, "action": "buy", "ticker": "MNQ1!"},
            headers=key,
        ),
        202,
    )["order"]
    api_key = ok(client.post("/api/api-keys", json={"name": "second"}, headers=key), 201)
    destination = ok(
        client.post(
            "/api/notifications",
            json={"kind": "email", "target": {"to": "alice@example.com"}, "events": ["fill"]},
            headers=key,
        ),
        201,
    )
    signal_id = str(uuid.uuid4())
    redis_client.xadd(
        settings.stream(streams.SIGNALS),
        SignalMessage(
            signal_id,
            recorder["id"],
            "buy",
            "MNQ1!",
            "MNQ",
            Decimal("25640"),
            None,
            None,
            None,
            streams.now_ms(),
            "{}",
        ).to_fields(),
    )
    engine = PositionEngine(settings, sessions, redis_client, consumer="isolation")
    engine.prepare()
    while engine.step(block_ms=None):
        pass
    [position] = ok(client.get("/api/positions", headers=key))["positions"]
    return {
        "account_id": first["id"],
        "key_id": api_key["id"],
        "destination_id": destination["id"],
        "group_id": group["id"],
        "order_id": order["id"],
        "position_id": position["id"],
        "recorder_id": recorder["id"],
        "signal_id": signal_id,
        "subaccount_id": sub,
        "trader_id": trader["id"],
    }


def id_taking_routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.arguments
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def snapshot(client, key) -> dict[str, dict]:
    return {path: ok(client.get(path, headers=key)) for path in ALICE_VIEWS}


def test_every_route_that_takes_an_id_answers_404_for_another_users_object(
    app, client, alice, bob, alices_world
):
    # Given everything alice owns, and the routes of the app
    _, alice_key = alice
    _, bob_key = bob
    assert id_taking_routes(app) == COVERED, (
        "a route takes an id: add it to COVERED and to the sweep"
    )
    before = snapshot(client, alice_key)

    # When bob calls each of them with alice's ids
    answers = {}
    for method, rule in sorted(COVERED):
        path = rule
        for name in PARAMETERS:
            path = path.replace(f"<int:{name}>", str(alices_world[name])).replace(
                f"<{name}>", str(alices_world[name])
            )
        response = client.open(
            path, method=method, json=BODIES.get((method, rule), {}), headers=bob_key
        )
        answers[(method, rule)] = (response.status_code, response.get_json())

    # Then every answer is a 404 with a sentence, as if the object did not exist
    assert {k: v[0] for k, v in answers.items()} == dict.fromkeys(COVERED, 404)
    assert all(body["ok"] is False and body["error"] for _, body in answers.values())
    # And nothing of alice's changed: her recorder, token, trader, accounts, keys, orders
    assert snapshot(client, alice_key) == before


def test_ids_in_queries_and_bodies_are_checked_too(client, alice, bob, alices_world):
    _, alice_key = alice
    _, bob_key = bob
    before = snapshot(client, alice_key)
    mine = ok(client.post("/api/accounts", json={"broker": "paper"}, headers=bob_key), 201)[
        "subaccounts"
    ][0]["id"]
    theirs = alices_world

    # Filters naming alice's objects
    for path, params in (
        ("/api/positions", {"recorder_id": theirs["recorder_id"]}),
        ("/api/signals", {"recorder_id": theirs["recorder_id"]}),
        ("/api/traders", {"recorder_id": theirs["recorder_id"]}),
        ("/api/orders", {"trader_id": theirs["trader_id"]}),
        ("/api/orders", {"subaccount_id": theirs["subaccount_id"]}),
        ("/api/dashboard/metrics", {"recorder_id": theirs["recorder_id"]}),
        ("/api/dashboard/trade-history", {"recorder_id": theirs["recorder_id"]}),
        ("/api/dashboard/chart-data", {"recorder_id": theirs["recorder_id"]}),
        ("/api/dashboard/calendar", {"recorder_id": theirs["recorder_id"]}),
    ):
        response = client.get(path, query_string=params, headers=bob_key)
        assert response.status_code == 404, (
            path,
            params,
            response.status_code,
            response.get_data(as_text=True),
        )

    # Bodies naming alice's objects
    for path, body in (
        ("/api/traders", {"recorder_id": theirs["recorder_id"], "subaccount_id": mine}),
        ("/api/manual-trade", {"subaccount_id": theirs["subaccount_id"], "action": "flatten"}),
        ("/api/copy-groups", {"leader_subaccount_id": theirs["subaccount_id"]}),
        (
            "/api/copy-groups",
            {
                "leader_subaccount_id": mine,
                "followers": [{"subaccount_id": theirs["subaccount_id"], "multiplier": 1}],
            },
        ),
    ):
        response = client.post(path, json=body, headers=bob_key)
        assert response.status_code in (404, 422), (path, body, response.get_data(as_text=True))
        assert response.get_json()["ok"] is False

    # And bob's own lists show nothing of alice's; alice's objects are as they were
    for path in (
        "/api/recorders",
        "/api/traders",
        "/api/positions",
        "/api/signals",
        "/api/orders",
        "/api/copy-groups",
    ):
        listed = ok(client.get(path, headers=bob_key))
        assert all(not v for k, v in listed.items() if isinstance(v, list)), (path, listed)
    assert snapshot(client, alice_key) == before


def test_deleting_an_account_removes_its_subaccounts_traders_and_orders(
    client, alice, alices_world
):
    # Found by the API fuzz: this answered 500 (the ORM nulled the subaccounts' account_id)
    _, key = alice
    deleted = client.delete(f"/api/accounts/{alices_world['account_id']}", headers=key)
    assert deleted.status_code == 200, deleted.get_data(as_text=True)
    assert client.get(f"/api/accounts/{alices_world['account_id']}", headers=key).status_code == 404
    assert client.get(f"/api/traders/{alices_world['trader_id']}", headers=key).status_code == 404
    assert client.get(f"/api/orders/{alices_world['order_id']}", headers=key).status_code == 404
    assert [a["name"] for a in ok(client.get("/api/accounts", headers=key))["accounts"]] == ["B"]
