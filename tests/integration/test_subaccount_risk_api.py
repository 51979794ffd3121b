"""The risk desk's routes (docs/contract.md §4c): limits that tighten at once and loosen from the
next trade date, a lock nobody can lift early, entries skipped while it holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from libs.common import streams
from libs.common.futures.exchange_calendar import add_business_days, trade_date
from libs.common.storage import db
from libs.common.storage.models import OrderIntent, Subaccount
from libs.common.streams import SignalMessage
from services.position_engine.engine import PositionEngine


def today():
    return trade_date(datetime.now(UTC))


def test_limits_tighten_at_once_and_loosen_from_the_next_trade_date(client, alice, paper):
    url = f"/api/subaccounts/{paper['id']}/risk"
    first = client.put(
        url, json={"daily_loss_limit": 500, "max_trades_per_day": 10}, headers=alice[1]
    )
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["risk"]["daily_loss_limit"] == 500 and body["pending"] is None

    tighter = client.put(url, json={"daily_loss_limit": 400}, headers=alice[1]).get_json()
    assert tighter["risk"]["daily_loss_limit"] == 400 and tighter["effective_from"] is None

    looser = client.put(
        url, json={"daily_loss_limit": 900, "max_trades_per_day": 5}, headers=alice[1]
    )
    body = looser.get_json()
    assert body["risk"] == {
        "daily_loss_limit": 400,  # the looser 900 waits for the next trade date
        "daily_profit_target": None,
        "trailing_drawdown": None,
        "max_trades_per_day": 5,  # the tighter part holds at once
        "max_contracts": None,
    }
    assert body["pending"]["daily_loss_limit"] == 900
    assert body["effective_from"] == add_business_days(today(), 1).isoformat()
    again = client.get(url, headers=alice[1]).get_json()
    assert again["risk"] == body["risk"] and again["pending"] == body["pending"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"daily_loss_limit": -5}, "daily_loss_limit"),
        ({"max_trades_per_day": 0}, "max_trades_per_day"),
        ({"trailing_drawdown": "lots"}, "trailing_drawdown"),
        ({"max_contracts": 1.5}, "max_contracts"),
        ({"daily_profit_target": 100, "leverage": 10}, "leverage"),
    ],
)
def test_a_bad_limit_is_a_422_naming_it_and_changes_nothing(client, alice, paper, body, field):
    url = f"/api/subaccounts/{paper['id']}/risk"
    client.put(url, json={"daily_loss_limit": 500}, headers=alice[1])
    answer = client.put(url, json=body, headers=alice[1])
    assert answer.status_code == 422 and field in answer.get_json()["error"]
    assert client.get(url, headers=alice[1]).get_json()["risk"]["daily_loss_limit"] == 500


def test_another_users_subaccount_is_not_found(client, bob, paper):
    assert client.get(f"/api/subaccounts/{paper['id']}/risk", headers=bob[1]).status_code == 404
    assert client.post(f"/api/subaccounts/{paper['id']}/unlock", headers=bob[1]).status_code == 404


def test_a_locked_account_cannot_be_unlocked_and_skips_entries_with_the_reason(
    client, alice, paper, sessions, settings, redis_client
):
    recorder = client.post("/api/recorders", json={"name": "MNQ"}, headers=alice[1]).get_json()
    client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": paper["id"]},
        headers=alice[1],
    )
    until = add_business_days(today(), 1)
    with db.transaction(sessions) as s:
        sub = s.get(Subaccount, paper["id"])
        sub.locked_until, sub.lock_reason = until, "the daily loss limit of $500.00 was reached"
    answer = client.post(f"/api/subaccounts/{paper['id']}/unlock", headers=alice[1])
    assert answer.status_code == 409 and until.isoformat() in answer.get_json()["error"]
    view = client.get(f"/api/subaccounts/{paper['id']}/risk", headers=alice[1]).get_json()
    assert view["locked"] and view["locked_until"] == until.isoformat()

    engine = PositionEngine(settings, sessions, redis_client, consumer="risk-test")
    engine.prepare()
    signal = SignalMessage(
        str(uuid.uuid4()),
        recorder["id"],
        "buy",
        "MNQ1!",
        "MNQ",
        D(25000),
        D(1),
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), signal.to_fields())
    while engine.step(block_ms=None):
        pass
    with sessions() as s:
        assert s.scalars(select(OrderIntent)).all() == []  # the entry was not sent
    notes = [
        f
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == "account.trader_skipped"
    ]
    assert notes and "locked by its risk desk until" in notes[0]["data"]

    with db.transaction(sessions) as s:  # the next trade date has come
        s.get(Subaccount, paper["id"]).locked_until = today()
    assert (
        client.post(f"/api/subaccounts/{paper['id']}/unlock", headers=alice[1]).status_code == 200
    )
