"""Order sizes a trader can trust (issue 13, finding 6): a trader always has a maximum, the
manual ticket asks before a large order, and no path sends a broker part of a contract."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from libs.common import orders
from libs.common.storage import db
from libs.common.storage.models import OrderIntent, PaperPosition, Trader, User
from tests.integration.test_execution_paper import set_price, signal


def _book(sessions, subaccount_id: int) -> list[Decimal]:
    with sessions() as s:
        return list(
            s.scalars(
                select(PaperPosition.net_qty).where(PaperPosition.subaccount_id == subaccount_id)
            )
        )


def _intents(sessions) -> list[OrderIntent]:
    with sessions() as s:
        return list(s.scalars(select(OrderIntent).order_by(OrderIntent.sequence)))


def test_a_trader_saved_without_a_maximum_holds_at_most_ten_contracts(
    client, alice, paper, settings, redis_client, executor, sessions
):
    from services.position_engine.engine import PositionEngine

    _, key = alice
    recorder = client.post("/api/recorders", json={"name": "MNQ"}, headers=key).get_json()
    # Given a trader made without max_contracts
    answer = client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": paper["id"]},
        headers=key,
    )
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["max_contracts"] == 10
    engine_ = PositionEngine(settings, sessions, redis_client, consumer="engine-test")
    engine_.prepare()
    set_price(settings, redis_client, "25000")

    # When its recorder buys 50 contracts
    signal(settings, redis_client, engine_, recorder["id"], "buy", 25000, qty=50)
    executor()

    # Then the paper account holds the trader's maximum, not 50
    assert _book(sessions, paper["id"]) == [10]


def test_a_trader_without_a_maximum_is_refused(client, alice, paper, sessions):
    _, key = alice
    recorder = client.post("/api/recorders", json={"name": "MNQ"}, headers=key).get_json()
    body = {"recorder_id": recorder["id"], "subaccount_id": paper["id"], "max_contracts": None}
    answer = client.post("/api/traders", json=body, headers=key)
    assert answer.status_code == 422
    assert "max_contracts must be a whole number" in answer.get_json()["error"]
    with sessions() as s:
        assert s.scalars(select(Trader)).all() == []


def _buy(client, key, subaccount_id: int, quantity: int, **extra):
    body = {"subaccount_id": subaccount_id, "action": "buy", "ticker": "MNQ1!"}
    return client.post(
        "/api/manual-trade", json={**body, "quantity": quantity, **extra}, headers=key
    )


def test_the_manual_ticket_needs_a_confirmation_above_the_users_size(
    client, alice, paper, sessions
):
    _, key = alice
    # Given the default confirmation size of 5
    assert client.get("/api/me", headers=key).get_json()["manual_confirm_above"] == 5

    # When 5,000 contracts are sent without saying so
    refused = _buy(client, key, paper["id"], 5000)

    # Then nothing is queued and the answer says how to send it
    assert refused.status_code == 422
    assert refused.get_json()["error"].startswith("confirm: this order is for 5000 contracts")
    assert _intents(sessions) == []

    # And with the confirmation it goes
    assert _buy(client, key, paper["id"], 6, confirm=True).status_code == 202
    assert [i.quantity for i in _intents(sessions)] == [6]


def test_the_confirmation_size_is_the_users_own(client, alice, bob, paper, sessions):
    _, key = alice
    changed = client.put("/api/me", json={"manual_confirm_above": 20}, headers=key)
    assert changed.status_code == 200 and changed.get_json()["manual_confirm_above"] == 20

    assert _buy(client, key, paper["id"], 20).status_code == 202
    assert _buy(client, key, paper["id"], 21).status_code == 422
    # Bob's size is his own
    assert client.get("/api/me", headers=bob[1]).get_json()["manual_confirm_above"] == 5

    for bad in (0, 1.5, "7", None):
        answer = client.put("/api/me", json={"manual_confirm_above": bad}, headers=key)
        assert answer.status_code == 422, bad
        assert "manual_confirm_above must be a whole number" in answer.get_json()["error"]
    too_many = client.put("/api/me", json={"manual_confirm_above": 10_001}, headers=key)
    assert too_many.get_json()["error"] == "manual_confirm_above must be at most 10000."
    with sessions() as s:
        sizes = s.scalars(select(User.manual_confirm_above).order_by(User.id)).all()
    assert sizes == [20, 5]


def test_an_order_for_part_of_a_contract_never_reaches_the_broker(
    alice, paper, settings, redis_client, executor, sessions
):
    # Given an intent for 1.5 contracts, as a bug upstream (a copy multiplier, a script writing
    # rows) could leave one
    user = alice[0]
    set_price(settings, redis_client, "25000")
    intent = orders.new_intent(
        user_id=user.id,
        subaccount_id=paper["id"],
        source="manual",
        kind="entry",
        side="buy",
        symbol="MNQ",
        ticker="MNQ1!",
        quantity=Decimal("1.5"),
        priority="entry",
    )
    with db.transaction(sessions) as s:
        s.add(intent)
    orders.enqueue(
        orders.rq_connection(settings.redis_url),
        settings.stream_prefix,
        [orders.QueuedIntent(intent.id, paper["id"], "entry")],
    )

    # When the executor drains it
    executor()

    # Then it is rejected with the reason, and the paper account holds nothing
    (row,) = _intents(sessions)
    assert row.status == "rejected"
    assert row.error == "the order is for 1.5 contracts; a broker takes whole contracts only"
    assert _book(sessions, paper["id"]) == []
