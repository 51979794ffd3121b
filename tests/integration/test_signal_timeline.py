"""A signal's timeline (GET /api/signals/<id>/timeline): each hop from the gateway to the broker,
through the real engine and the paper executor, with its time and the ms since the hop before."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import pytest

from libs.common import streams
from libs.common.storage.models import OrderIntent
from libs.common.streams import SignalMessage, TickMessage
from services.executor.upkeep import PaperBracketWatcher
from services.position_engine.engine import PositionEngine


@pytest.fixture
def recorder(client, alice):
    body = {"name": "MNQ", "tp_ticks": 20, "sl_ticks": 40}
    return client.post("/api/recorders", json=body, headers=alice[1]).get_json()


@pytest.fixture
def position_engine(settings, sessions, redis_client):
    eng = PositionEngine(settings, sessions, redis_client, consumer="timeline-test")
    eng.prepare()
    return eng


def send_signal(settings, redis_client, position_engine, recorder_id, action, price) -> str:
    """XADD a signal as the gateway does and let the engine apply it; its id."""
    signal_id = str(uuid.uuid4())
    message = SignalMessage(
        signal_id,
        recorder_id,
        action,
        "MNQ1!",
        "MNQ",
        Decimal(str(price)),
        Decimal(1),
        None,
        None,
        streams.now_ms(),
        "{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), message.to_fields())
    while position_engine.step(block_ms=None):
        pass
    return signal_id


def timeline(client, key, signal_id):
    return client.get(f"/api/signals/{signal_id}/timeline", headers=key)


def at(hop) -> datetime:
    return datetime.fromisoformat(hop["at"].replace("Z", "+00:00"))


def test_a_filled_signal_shows_every_hop_from_gateway_to_fill_with_ms_between(
    client, alice, paper, recorder, settings, redis_client, position_engine, executor
):
    # Given a trader copying the recorder onto alice's paper account at 25641.25
    _, key = alice
    trader = client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": paper["id"], "multiplier": 2},
        headers=key,
    ).get_json()
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "25641.25")

    # When a buy goes through the engine and the executor
    signal_id = send_signal(settings, redis_client, position_engine, recorder["id"], "buy", 25640)
    executor()
    body = timeline(client, key, signal_id).get_json()

    # Then the timeline lists each hop in order, with the engine's outcome and the order's fill
    hops = body["hops"]
    assert [h["hop"] for h in hops] == [
        "received",
        "stream",
        "applied",
        "queued",
        "sent",
        "accepted",
        "filled",
    ]
    assert body["signal"]["id"] == signal_id and body["signal"]["status"] == "applied"
    times = [at(h) for h in hops]
    assert times == sorted(times)
    # And each ms is the distance to the hop before; the order's first hop counts from the engine
    assert hops[0]["ms_since_previous"] is None
    for before, hop in zip(hops, hops[1:], strict=False):
        expected = round((at(hop) - at(before)).total_seconds() * 1000)
        assert hop["ms_since_previous"] == expected
    assert body["total_ms"] == round((times[-1] - times[0]).total_seconds() * 1000)
    order_hops = hops[3:]
    account = f"Practice / {paper['name']}"
    assert {(h["intent_id"], h["trader_id"], h["account"]) for h in order_hops} == {
        (order_hops[0]["intent_id"], trader["id"], account)
    }
    assert "Buy 2" in order_hops[0]["detail"] and account in order_hops[0]["detail"]
    assert hops[-1]["fill_price"] == 25641.25
    assert hops[-1]["detail"] == "Filled at 25641.25."
    # And the order list shows when the broker accepted it
    [order] = client.get("/api/orders", headers=key).get_json()["orders"]
    assert order["accepted_at"] == hops[5]["at"]


def test_an_ignored_signal_shows_the_engines_reason_and_no_order(
    client, alice, recorder, settings, redis_client, position_engine
):
    # Given a flat recorder, when a close arrives
    signal_id = send_signal(settings, redis_client, position_engine, recorder["id"], "close", 25640)
    body = timeline(client, alice[1], signal_id).get_json()

    # Then the engine's hop says it was ignored, and why
    assert [h["hop"] for h in body["hops"]] == ["received", "stream", "ignored"]
    reason = body["signal"]["reason"]
    assert reason and reason in body["hops"][-1]["detail"]
    assert body["hops"][-1]["ms_since_previous"] >= 0


def test_another_users_or_an_unknown_signal_is_not_found(
    client, alice, bob, recorder, settings, redis_client, position_engine
):
    signal_id = send_signal(settings, redis_client, position_engine, recorder["id"], "buy", 25640)
    assert timeline(client, alice[1], signal_id).status_code == 200
    for key, some_id in (
        (bob[1], signal_id),
        (alice[1], str(uuid.uuid4())),
        (alice[1], "not-a-signal"),
    ):
        response = timeline(client, key, some_id)
        assert response.status_code == 404
        assert response.get_json() == {"ok": False, "error": "Signal not found."}


def test_a_signal_the_engine_has_not_applied_yet_answers_pending(
    client, alice, bob, recorder, settings, redis_client
):
    # Given the gateway's marker of a signal still on its way to the engine
    signal_id = str(uuid.uuid4())
    redis_client.set(settings.stream(streams.SIGNAL_PENDING + signal_id), recorder["id"], ex=60)

    body = timeline(client, alice[1], signal_id).get_json()

    assert body["signal"]["status"] == "pending"
    assert [(h["hop"], h["at"], h["detail"]) for h in body["hops"]] == [
        ("pending", None, "received by the gateway; the engine has not applied it yet")
    ]
    assert body["total_ms"] is None
    assert timeline(client, bob[1], signal_id).status_code == 404


def test_a_resting_order_keeps_the_time_the_broker_accepted_it_when_it_fills_later(
    client, alice, paper, settings, redis_client, executor, sessions
):
    # Given a limit entry below the market, accepted by the paper broker and resting
    watcher = PaperBracketWatcher(executor.ctx, "timeline-test")
    watcher.prepare()
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "25640")
    trade = {
        "subaccount_id": paper["id"],
        "action": "buy",
        "ticker": "MNQ1!",
        "order_type": "limit",
        "limit_price": 25630,
    }
    assert client.post("/api/manual-trade", json=trade, headers=alice[1]).status_code == 202
    executor()
    [resting] = client.get("/api/orders", headers=alice[1]).get_json()["orders"]
    assert resting["status"] == "accepted" and resting["accepted_at"] is not None

    # When a tick reaches its price
    tick = TickMessage("MNQ", Decimal("25629.75"), streams.now_ms())
    redis_client.xadd(settings.stream(streams.TICKS), tick.to_fields())
    watcher.step(block_ms=None)

    # Then it is filled, and still says when the broker accepted it, before the fill
    [filled] = client.get("/api/orders", headers=alice[1]).get_json()["orders"]
    assert filled["status"] == "filled"
    assert filled["accepted_at"] == resting["accepted_at"]
    with sessions() as s:
        row = s.get(OrderIntent, uuid.UUID(filled["id"]))
        assert row.accepted_at < row.finished_at
