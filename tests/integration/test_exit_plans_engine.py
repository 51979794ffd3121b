"""Exit plans (docs/contract.md §3b) end to end on real Redis and PostgreSQL: a webhook through
the gateway, the engine's streams and rows, and what the API answers at every step."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from libs.common import streams
from libs.common.storage.models import Fill, Position, Signal
from libs.common.streams import TickMessage
from services.gateway.app import create_app
from services.position_engine.engine import PositionEngine
from tests.integration.exit_plan_support import WORKED_PLAN

PLAN = WORKED_PLAN


@pytest.fixture
def plan_recorder(client, alice, redis_client, settings, sessions):
    answer = client.post(
        "/api/recorders", json={"name": "MNQ plan", "exits": PLAN}, headers=alice[1]
    )
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["exits"] == PLAN and body["tp_ticks"] is None
    return body


@pytest.fixture
def webhook(settings, redis_client):
    gateway = create_app(replace(settings), redis_client=redis_client).test_client()

    def send(token: str, body: dict) -> dict:
        answer = gateway.post(f"/webhook/{token}", data=json.dumps(body))
        assert answer.status_code in (200, 202, 422), answer.get_json()
        return {"status": answer.status_code, **answer.get_json()}

    return send


@pytest.fixture
def new_engine(settings, sessions, redis_client):
    made: list[PositionEngine] = []

    def make() -> PositionEngine:
        eng = PositionEngine(settings, sessions, redis_client, consumer=f"engine-{len(made)}")
        eng.prepare()
        made.append(eng)
        return eng

    return make


def drain(eng: PositionEngine) -> None:
    while eng.step(block_ms=None):
        pass


def tick(settings, redis_client, price: str, ts: int, delayed: bool = False) -> None:
    message = TickMessage("MNQ", D(price), ts, "test", delayed)
    redis_client.xadd(settings.stream(streams.TICKS), message.to_fields())


def api_position(client, alice, recorder_id: int) -> dict:
    answer = client.get(f"/api/positions?recorder_id={recorder_id}", headers=alice[1])
    [position] = answer.get_json()["positions"]
    return position


def legs(position: dict) -> list[tuple]:
    return [(t["level"], t["allotted"], t["filled"]) for t in position["targets"]]


def test_the_worked_example_from_a_webhook_to_the_api(
    client, alice, plan_recorder, webhook, new_engine, settings, redis_client, sessions
):
    eng = new_engine()
    sent = webhook(
        plan_recorder["webhook_token"],
        {"action": "buy", "ticker": "MNQ1!", "price": 25000, "qty": 2},
    )
    assert sent["status"] == 202
    drain(eng)
    position = api_position(client, alice, plan_recorder["id"])
    assert legs(position) == [(25005, 1, 0), (25010, 1, 0), (25020, 0, 0)]
    assert (position["stop_price"], position["stop_reason"]) == (24990, "sl")
    assert (position["tp_price"], position["sl_price"]) == (25005, 24990)

    tick(settings, redis_client, "25004", 2_000_000_000_000)
    drain(eng)
    position = api_position(client, alice, plan_recorder["id"])
    assert (position["stop_price"], position["stop_reason"]) == (25000.5, "breakeven")

    tick(settings, redis_client, "25006", 2_000_000_000_100)
    drain(eng)
    position = api_position(client, alice, plan_recorder["id"])
    assert legs(position) == [(25005, 0, 1), (25010, 1, 0), (25020, 0, 0)]
    assert position["quantity"] == 1 and position["realized_pnl"] == 10
    assert (position["stop_price"], position["stop_reason"]) == (25003, "trail")
    assert position["best_unrealized_pnl"] == 24

    # A restarted engine loads the plan from its row and goes on where the first one stopped.
    eng = new_engine()
    tick(settings, redis_client, "25007", 2_000_000_000_200)
    tick(settings, redis_client, "25003.75", 2_000_000_000_300)
    drain(eng)
    closed = client.get(
        f"/api/positions?recorder_id={plan_recorder['id']}&status=closed", headers=alice[1]
    ).get_json()["positions"][0]
    assert (closed["exit_reason"], closed["exit_price"], closed["realized_pnl"]) == (
        "trail",
        25004,
        18,
    )
    assert (closed["max_favorable"], closed["max_adverse"]) == (7, 0)

    detail = client.get(f"/api/positions/{closed['id']}", headers=alice[1]).get_json()
    assert [(f["kind"], f["quantity"], f["price"], f["realized_pnl"]) for f in detail["fills"]] == [
        ("entry", 2, 25000, 0),
        ("tp", 1, 25005, 10),
        ("exit", 1, 25004, 8),
    ]
    assert [(m["stop_price"], m["reason"]) for m in detail["stop_moves"]] == [
        (25000.5, "breakeven"),
        (25003, "trail"),
        (25004, "trail"),
    ]
    assert detail["excursions"]["max_favorable"] == {"points": 7, "ticks": 28, "usd": 14.0}
    types = [f["type"] for _, f in redis_client.xrange(settings.stream(streams.EVENTS))]
    # break-even, then leg 1 with the trail; the last move and the exit came in one batch
    assert types.count("position.changed") == 2


def test_levels_from_the_alert_and_the_update_action(
    client, alice, make_recorder, webhook, new_engine, settings, redis_client, sessions
):
    recorder = client.post(
        "/api/recorders", json={"name": "pine", "sl_ticks": 40}, headers=alice[1]
    ).get_json()
    eng = new_engine()
    token = recorder["webhook_token"]
    # Refused at the door: a stop above the entry of a long, an update without levels.
    wrong = webhook(token, {"action": "buy", "ticker": "MNQ1!", "price": 25000, "sl_price": 25010})
    assert wrong["status"] == 422 and "sl_price" in wrong["error"]
    bare = webhook(token, {"action": "update", "ticker": "MNQ1!"})
    assert bare["status"] == 422 and "update" in bare["error"]
    # An update while flat is ignored with its reason and opens nothing.
    flat = webhook(token, {"action": "update", "ticker": "MNQ1!", "price": 25000, "sl_price": 1})
    drain(eng)
    with sessions() as s:
        row = s.get(Signal, uuid.UUID(flat["signal_id"]))
        assert (row.status, row.reason) == ("ignored", "there is no open MNQ position to update")

    webhook(
        token,
        {"action": "buy", "ticker": "MNQ1!", "price": 25000, "tp_price": 25012.3, "sl_ticks": 8},
    )
    drain(eng)
    position = api_position(client, alice, recorder["id"])
    assert (position["tp_price"], position["sl_price"]) == (25012.25, 24998)  # on the grid

    # An update without a price is judged at the last tick's price. The tick is applied first:
    # a signal written in the same millisecond as a tick comes before it (docs/architecture.md),
    # and the in-process webhook can take that millisecond.
    tick(settings, redis_client, "25001", 2_000_000_000_000)
    drain(eng)
    moved = webhook(token, {"action": "update", "ticker": "MNQ1!", "sl_price": 24995.5})
    drain(eng)
    position = api_position(client, alice, recorder["id"])
    assert (position["sl_price"], position["stop_reason"], position["quantity"]) == (
        24995.5,
        "sl",
        1,
    )
    with sessions() as s:
        assert s.get(Signal, uuid.UUID(moved["signal_id"])).status == "applied"
        assert (
            s.scalar(select(Fill.id).where(Fill.signal_id == uuid.UUID(moved["signal_id"]))) is None
        )

    # A stop on the wrong side of the last price (no price in the alert) is ignored, not applied.
    wrong_side = webhook(token, {"action": "update", "ticker": "MNQ1!", "sl_price": 25002})
    drain(eng)
    with sessions() as s:
        row = s.get(Signal, uuid.UUID(wrong_side["signal_id"]))
    assert row.status == "ignored" and "below the price 25001" in row.reason
    assert api_position(client, alice, recorder["id"])["sl_price"] == 24995.5

    # The stop set by the alert holds until the average changes: then the recorder's 40 ticks.
    webhook(token, {"action": "buy", "ticker": "MNQ1!", "price": 24990})
    drain(eng)
    position = api_position(client, alice, recorder["id"])
    assert (position["avg_entry_price"], position["sl_price"]) == (24995, 24985)


@pytest.mark.parametrize(
    ("exits", "error"),
    [
        (
            {
                "targets": [
                    {"ticks": 1, "qty": 1},
                    {"ticks": 2, "qty": 1},
                    {"ticks": 3, "qty": 1},
                    {"ticks": 4},
                ]
            },
            "exits.targets: at most 3 legs, got 4.",
        ),
        (
            {"targets": [{"ticks": 20, "qty": 1}, {"ticks": 10}]},
            "exits.targets[1]: legs must be in increasing distance.",
        ),
        ({"stop": {"percent": 0}}, "exits.stop.percent: must be greater than 0."),
        ({"stop": {"percent": -1}}, "exits.stop.percent: must be greater than 0."),
        ({"stop": {"ticks": 4, "points": 1}}, "exits.stop: needs exactly one unit"),
        (
            {"targets": [{"ticks": 20}, {"ticks": 40}]},
            "exits.targets[0].qty: every leg but the last needs a qty.",
        ),
        (
            {"breakeven": {"trigger": {"ticks": 8}, "offset": {"ticks": 8}}},
            "exits.breakeven.offset: must be below its trigger.",
        ),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field_and_changes_nothing(
    client, alice, plan_recorder, exits, error
):
    created = client.post("/api/recorders", json={"name": "x", "exits": exits}, headers=alice[1])
    assert created.status_code == 422 and error in created.get_json()["error"]
    changed = client.put(
        f"/api/recorders/{plan_recorder['id']}", json={"exits": exits}, headers=alice[1]
    )
    assert changed.status_code == 422 and error in changed.get_json()["error"]
    again = client.get(f"/api/recorders/{plan_recorder['id']}", headers=alice[1]).get_json()
    assert again["exits"] == PLAN


def test_exits_and_ticks_replace_each_other(client, alice, plan_recorder):
    both = client.put(
        f"/api/recorders/{plan_recorder['id']}",
        json={"exits": PLAN, "tp_ticks": 20},
        headers=alice[1],
    )
    assert both.status_code == 422 and "not both" in both.get_json()["error"]
    ticks = client.put(
        f"/api/recorders/{plan_recorder['id']}", json={"tp_ticks": 20}, headers=alice[1]
    ).get_json()
    assert (ticks["exits"], ticks["tp_ticks"]) == (None, 20)
    plan = client.put(
        f"/api/recorders/{plan_recorder['id']}", json={"exits": PLAN}, headers=alice[1]
    ).get_json()
    assert (plan["exits"], plan["tp_ticks"], plan["sl_ticks"]) == (PLAN, None, None)


def test_a_plan_that_rounds_to_no_tick_ignores_the_entry_with_its_reason(
    client, alice, webhook, new_engine, sessions
):
    recorder = client.post(
        "/api/recorders",
        json={"name": "tiny", "exits": {"stop": {"points": 0.1}}},
        headers=alice[1],
    ).get_json()
    sent = webhook(recorder["webhook_token"], {"action": "buy", "ticker": "MNQ1!", "price": 25000})
    drain(new_engine())
    with sessions() as s:
        row = s.get(Signal, uuid.UUID(sent["signal_id"]))
        assert (
            row.status == "ignored" and "exits.stop: rounds to no tick of MNQ (0.25)" in row.reason
        )
        assert s.scalars(select(Position)).all() == []


def test_the_preview_answers_the_levels_the_engine_would_set(client, alice):
    answer = client.post(
        "/api/exit-plans/preview",
        json={"exits": PLAN, "symbol": "MNQ1!", "side": "long", "price": 25000, "qty": 2},
        headers=alice[1],
    ).get_json()
    assert answer["stop"] == 24990
    assert answer["targets"] == [
        {"level": 25005, "allotted": 1},
        {"level": 25010, "allotted": 1},
        {"level": 25020, "allotted": 0},
    ]
    assert answer["breakeven"] == {"trigger": 25004, "stop": 25000.5}
    assert answer["trail"] == {"trigger": 25006, "distance": 3}
    bad = client.post(
        "/api/exit-plans/preview",
        json={"exits": {"stop": {"points": 0.1}}, "symbol": "MNQ1!", "price": 25000},
        headers=alice[1],
    )
    assert bad.status_code == 422 and bad.get_json()["field"] == "exits.stop"
