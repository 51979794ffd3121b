"""A recorder deleted or its history reset from the UI: a command on `jt:engine_commands` that the
engine alone applies (it writes positions, fills and signals), answered on `jt:events`."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from libs.common import recorder_tokens, streams
from libs.common.storage import db
from libs.common.storage.models import Fill, Position, Recorder, Signal
from libs.common.streams import SignalMessage
from services.position_engine.engine import PositionEngine
from tests.integration.engine_support import running_engine  # noqa: F401 (a fixture)
from tests.polling import wait_for

T0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def send_signal(settings, client, recorder, action: str, price: str) -> str:
    signal_id = str(uuid.uuid4())
    message = SignalMessage(
        signal_id, recorder.id, action, "MNQ1!", "MNQ", D(price), None, None, None, 1_000, "{}"
    )
    client.xadd(settings.stream(streams.SIGNALS), message.to_fields())
    return signal_id


def new_engine(settings, sessions, redis_client, consumer: str = "engine-1") -> PositionEngine:
    engine = PositionEngine(settings, sessions, redis_client, consumer=consumer)
    engine.prepare()
    return engine


def drain(engine: PositionEngine) -> None:
    while engine.step(block_ms=None):
        pass


def send_command(settings, client, kind: str, recorder) -> str:
    command = streams.EngineCommand(str(uuid.uuid4()), kind, recorder.id, recorder.user_id)
    client.xadd(settings.stream(streams.ENGINE_COMMANDS), command.to_fields())
    return command.command_id


def answers(client, settings) -> dict[str, dict]:
    found = {}
    for _, fields in client.xrange(settings.stream(streams.EVENTS)):
        if fields["type"].startswith("recorder."):
            data = json.loads(fields["data"])
            found[data["command_id"]] = {"type": fields["type"], **data}
    return found


def counts(sessions) -> tuple[int, int, int, int]:
    with sessions() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(model))
            for model in (Recorder, Position, Fill, Signal)
        )


def pending_commands(client, settings) -> int:
    stream = settings.stream(streams.ENGINE_COMMANDS)
    return client.xpending(stream, streams.ENGINE_GROUP)["pending"]


@pytest.fixture
def long_position(settings, sessions, redis_client, make_recorder):
    """A recorder long 1 MNQ (opened through the engine, with its fill and signal), and a
    closed trade of its own."""
    recorder = make_recorder()
    engine = new_engine(settings, sessions, redis_client, consumer="setup")
    send_signal(settings, redis_client, recorder, "buy", "25640")
    send_signal(settings, redis_client, recorder, "close", "25650")
    send_signal(settings, redis_client, recorder, "buy", "25640")
    drain(engine)
    assert counts(sessions) == (1, 2, 3, 3)
    return recorder


def test_a_delete_sent_while_the_engine_is_down_is_applied_when_it_starts(
    client, alice, settings, redis_client, sessions, make_recorder
):
    # Given a recorder with an open position, and no engine running
    recorder = make_recorder(alice[0])
    recorder_tokens.put(redis_client, settings, recorder)
    position = dict(symbol="MNQ", side="long", quantity=1, entry_cost=25640, avg_entry_price=25640)
    with db.transaction(sessions) as s:
        s.add(
            Position(recorder_id=recorder.id, status="open", opened_at=T0, opened_ms=0, **position)
        )
    # When the user deletes it
    started = time.monotonic()
    response = client.delete(f"/api/recorders/{recorder.id}", headers=alice[1])
    # Then the answer comes at once: accepted, to be applied when the engine runs, and the
    # webhook already stops working
    assert time.monotonic() - started < 2
    body = response.get_json()
    assert response.status_code == 202 and body["ok"] is True and body["queued"] is True
    assert "when it runs" in body["message"]
    assert recorder_tokens.lookup(redis_client, settings, recorder.webhook_token) is None
    assert counts(sessions)[:2] == (1, 1)
    # And when the engine starts, the recorder and its position are gone, and it answered
    engine = new_engine(settings, sessions, redis_client)
    drain(engine)
    assert counts(sessions) == (0, 0, 0, 0)
    [answer] = answers(redis_client, settings).values()
    assert (answer["type"], answer["recorder_id"], answer["found"]) == (
        "recorder.deleted",
        recorder.id,
        True,
    )
    assert pending_commands(redis_client, settings) == 0
    assert client.get(f"/api/recorders/{recorder.id}", headers=alice[1]).status_code == 404


def test_a_delete_through_the_running_engine_answers_and_empties_its_book(
    client, alice, settings, redis_client, sessions, make_recorder, request
):
    # Given a recorder of alice long MNQ, opened by the running engine
    engine = request.getfixturevalue("running_engine")
    recorder = make_recorder(alice[0])
    send_signal(settings, redis_client, recorder, "buy", "25640")
    wait_for(lambda: engine.book.open, what="the position in the engine's book")
    # When she deletes it
    response = client.delete(f"/api/recorders/{recorder.id}", headers=alice[1])
    # Then the answer is the one of a delete done, after the engine applied it
    assert (response.status_code, response.get_json()) == (200, {"ok": True, "id": recorder.id})
    assert counts(sessions) == (0, 0, 0, 0)
    assert engine.book.open == {}
    assert redis_client.hgetall(settings.stream(streams.OPEN_SYMBOLS)) == {}


def test_a_reset_applied_then_delivered_again_changes_nothing_more(
    settings, redis_client, sessions, long_position
):
    # Given a reset of the recorder's history, applied and acknowledged
    engine = new_engine(settings, sessions, redis_client)
    first = send_command(settings, redis_client, streams.RESET_HISTORY, long_position)
    drain(engine)
    assert counts(sessions) == (1, 1, 1, 0)  # the open position and its entry fill stay
    assert answers(redis_client, settings)[first]["deleted_positions"] == 1
    assert answers(redis_client, settings)[first]["deleted_signals"] == 3
    # When a signal closes the position, and the command comes again (committed, then the
    # engine died before acknowledging it: here, the group is set back to the start)
    send_signal(settings, redis_client, long_position, "close", "25660")
    drain(engine)
    redis_client.xgroup_setid(
        settings.stream(streams.ENGINE_COMMANDS), streams.ENGINE_GROUP, id="0"
    )
    drain(new_engine(settings, sessions, redis_client, consumer="engine-2"))
    # Then the trade closed after the reset is still there, and nothing is left pending
    assert counts(sessions) == (1, 1, 2, 1)
    assert pending_commands(redis_client, settings) == 0


def test_commands_of_a_dead_engine_are_claimed_and_a_malformed_one_set_aside(
    settings, redis_client, sessions, long_position
):
    # Given a malformed command, and a delete that an engine read and died before applying
    new_engine(settings, sessions, redis_client, consumer="doomed")  # creates the group
    stream = settings.stream(streams.ENGINE_COMMANDS)
    redis_client.xadd(stream, {"kind": "drop_tables", "recorder_id": "1"})
    send_command(settings, redis_client, streams.DELETE_RECORDER, long_position)
    redis_client.xreadgroup(streams.ENGINE_GROUP, "doomed", {stream: ">"})
    assert pending_commands(redis_client, settings) == 2
    # When another engine starts
    drain(new_engine(settings, sessions, redis_client, consumer="survivor"))
    # Then the delete is applied, the malformed command set aside, and nothing is left pending
    assert counts(sessions) == (0, 0, 0, 0)
    assert redis_client.xlen(settings.stream("dead_letter")) == 1
    assert pending_commands(redis_client, settings) == 0


def test_a_command_naming_another_users_recorder_deletes_nothing(
    settings, redis_client, sessions, long_position, make_user
):
    engine = new_engine(settings, sessions, redis_client)
    stranger = make_user(email="mallory@example.com")
    command = streams.EngineCommand("c-x", streams.DELETE_RECORDER, long_position.id, stranger.id)
    redis_client.xadd(settings.stream(streams.ENGINE_COMMANDS), command.to_fields())
    drain(engine)
    assert counts(sessions) == (1, 2, 3, 3)
    assert answers(redis_client, settings)["c-x"]["found"] is False
