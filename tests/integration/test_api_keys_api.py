"""API keys through the JSON API: made once, listed without the key, revoked at once, private."""

from __future__ import annotations

from sqlalchemy import select

from libs.common.security import hash_api_key
from libs.common.storage.models import ApiKey


def test_a_new_key_is_shown_once_stored_hashed_and_works(client, alice, sessions):
    made = client.post("/api/api-keys", json={"name": "my bot"}, headers=alice[1])
    assert made.status_code == 201
    body = made.get_json()
    key = body["key"]
    assert (
        body["name"] == "my bot" and key.startswith(body["prefix"]) and body["revoked_at"] is None
    )
    with sessions() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.id == body["id"]))
        assert row.key_hash == hash_api_key(key) and key not in (row.key_hash, row.prefix)
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/recorders", headers=bearer).status_code == 200
    listed = client.get("/api/api-keys", headers=alice[1]).get_json()["api_keys"]
    assert body["id"] in [k["id"] for k in listed]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert set(listed[0]) == {"id", "name", "prefix", "created_at", "last_used_at", "revoked_at"}


def test_a_revoked_key_stops_working_at_once(client, alice):
    made = client.post("/api/api-keys", json={"name": "short-lived"}, headers=alice[1]).get_json()
    bearer = {"Authorization": f"Bearer {made['key']}"}
    assert client.get("/api/recorders", headers=bearer).status_code == 200
    revoked = client.delete(f"/api/api-keys/{made['id']}", headers=alice[1])
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert client.get("/api/recorders", headers=bearer).status_code == 401
    listed = client.get("/api/api-keys", headers=alice[1]).get_json()["api_keys"]
    assert next(k for k in listed if k["id"] == made["id"])["revoked_at"] is not None


def test_another_users_key_is_not_found_and_stays_valid(client, alice, bob):
    made = client.post("/api/api-keys", json={"name": "bob's"}, headers=bob[1]).get_json()
    assert client.delete(f"/api/api-keys/{made['id']}", headers=alice[1]).status_code == 404
    assert made["id"] not in [
        k["id"] for k in client.get("/api/api-keys", headers=alice[1]).get_json()["api_keys"]
    ]
    assert (
        client.get("/api/recorders", headers={"Authorization": f"Bearer {made['key']}"}).status_code
        == 200
    )


def test_a_key_needs_a_sensible_name(client, alice):
    for body in ({"name": ""}, {"name": "x" * 101}, {"name": 5}, {"nom": "typo"}):
        answer = client.post("/api/api-keys", json=body, headers=alice[1])
        assert answer.status_code == 422, body
        assert answer.get_json()["ok"] is False
    assert client.get("/api/api-keys").status_code == 401
