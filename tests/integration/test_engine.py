"""The engine against real Redis streams and PostgreSQL: apply, commit, then acknowledge."""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from libs.common import streams
from libs.common.storage.models import Fill, Position, Signal
from libs.common.streams import SignalMessage, TickMessage
from services.position_engine import signal_apply
from services.position_engine.engine import PositionEngine


@pytest.fixture
def engine_for(settings, sessions, redis_client):
    made = []

    def make(
        consumer: str = "engine-1", batch_size: int = PositionEngine.DEFAULT_BATCH
    ) -> PositionEngine:
        eng = PositionEngine(
            settings, sessions, redis_client, consumer=consumer, batch_size=batch_size
        )
        eng.prepare()
        made.append(eng)
        return eng

    return make


def send_signal(
    settings,
    client,
    recorder,
    action="buy",
    price="25640",
    qty=None,
    symbol="MNQ",
    received_at=1_000,
    signal_id=None,
    **target,
) -> str:
    signal_id = signal_id or str(uuid.uuid4())
    msg = SignalMessage(
        signal_id=signal_id,
        recorder_id=recorder.id,
        action=action,
        ticker=f"{symbol}1!",
        symbol=symbol,
        price=None if price is None else D(price),
        qty=None if qty is None else D(qty),
        position_size=None
        if target.get("position_size") is None
        else D(str(target["position_size"])),
        market_position=target.get("market_position"),
        received_at=received_at,
        raw="{}",
    )
    client.xadd(settings.stream(streams.SIGNALS), msg.to_fields())
    return signal_id


def send_tick(settings, client, price, ts=2_000, symbol="MNQ", delayed=False):
    client.xadd(
        settings.stream(streams.TICKS),
        TickMessage(symbol, D(price), ts, "test", delayed).to_fields(),
    )


def drain(engine: PositionEngine) -> None:
    while engine.step(block_ms=None):
        pass


def positions(sessions, **where):
    with sessions() as s:
        return s.scalars(select(Position).filter_by(**where).order_by(Position.id)).all()


def signal_row(sessions, signal_id) -> Signal:
    with sessions() as s:
        return s.get(Signal, uuid.UUID(signal_id))


def events(client, settings):
    return [
        (f["type"], json.loads(f["data"]))
        for _, f in client.xrange(settings.stream(streams.EVENTS))
    ]


def pending(client, settings, name):
    return client.xpending(settings.stream(name), streams.ENGINE_GROUP)["pending"]


def test_worked_example_through_the_streams(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder(tp_ticks=20, sl_ticks=40)
    engine = engine_for()
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    send_signal(settings, redis_client, recorder, "buy", "25630", received_at=1_100)
    send_tick(settings, redis_client, "25628", ts=2_000)
    drain(engine)
    [pos] = positions(sessions)
    assert (pos.quantity, pos.avg_entry_price, pos.tp_price, pos.sl_price) == (
        2,
        25635,
        25640,
        25625,
    )
    assert (pos.worst_unrealized_pnl, pos.max_adverse) == (D("-28"), 7)

    send_tick(settings, redis_client, "25641", ts=3_000)
    drain(engine)
    [pos] = positions(sessions)
    assert (pos.status, pos.exit_reason, pos.exit_price, pos.realized_pnl) == (
        "closed",
        "tp",
        25640,
        20,
    )
    assert pos.max_favorable == 5
    with sessions() as s:
        fills = s.scalars(select(Fill).where(Fill.position_id == pos.id).order_by(Fill.id)).all()
    assert [(f.kind, f.price, f.quantity) for f in fills] == [
        ("entry", 25640, 1),
        ("entry", 25630, 1),
        ("exit", 25640, 2),
    ]
    types = [t for t, _ in events(redis_client, settings)]
    assert types.count("position.opened") == 1 and types.count("position.closed") == 1
    assert "signal.applied" in types
    assert pending(redis_client, settings, streams.SIGNALS) == 0
    assert pending(redis_client, settings, streams.TICKS) == 0


def test_a_committed_signal_is_no_longer_marked_pending(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine = engine_for()
    sid = str(uuid.uuid4())
    marker = settings.stream(streams.SIGNAL_PENDING + sid)
    redis_client.set(marker, recorder.id)  # as the gateway does on accept
    send_signal(settings, redis_client, recorder, "buy", "100", symbol="AAPL", signal_id=sid)
    drain(engine)
    assert signal_row(sessions, sid).status == "applied"
    assert not redis_client.exists(marker)


def test_redelivered_signal_changes_nothing(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine = engine_for()
    sid = send_signal(settings, redis_client, recorder, "buy", "100", symbol="AAPL")
    send_signal(settings, redis_client, recorder, "buy", "100", symbol="AAPL", signal_id=sid)
    drain(engine)
    send_signal(settings, redis_client, recorder, "buy", "100", symbol="AAPL", signal_id=sid)
    drain(engine)
    [pos] = positions(sessions)
    assert pos.quantity == 1
    assert signal_row(sessions, sid).status == "applied"


def test_entries_of_a_dead_consumer_are_claimed_and_applied_once(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine_for("doomed")  # creates the group
    sid = send_signal(settings, redis_client, recorder, "sell", "50", symbol="CL")
    # A consumer reads the entry and dies before acknowledging it.
    redis_client.xreadgroup(streams.ENGINE_GROUP, "doomed", {settings.stream(streams.SIGNALS): ">"})
    assert pending(redis_client, settings, streams.SIGNALS) == 1

    survivor = engine_for("survivor")  # prepare() claims what the dead one held
    drain(survivor)
    [pos] = positions(sessions)
    assert (pos.side, pos.symbol) == ("short", "CL")
    assert signal_row(sessions, sid).status == "applied"
    assert pending(redis_client, settings, streams.SIGNALS) == 0


def test_a_commit_that_fails_acknowledges_nothing(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine = engine_for()
    sid = send_signal(settings, redis_client, recorder, "buy", "100", symbol="AAPL")
    real = engine.sessions
    from sqlalchemy.exc import OperationalError

    def broken():
        raise OperationalError("connect", {}, Exception("database is away"))

    engine.sessions = broken
    engine.step(block_ms=None)
    assert pending(redis_client, settings, streams.SIGNALS) == 1
    assert positions(sessions) == []
    engine.sessions = real
    drain(engine)
    assert signal_row(sessions, sid).status == "applied"
    assert pending(redis_client, settings, streams.SIGNALS) == 0


def test_malformed_entry_is_rejected_with_its_reason_and_does_not_stop_the_engine(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine = engine_for()
    bad_id = str(uuid.uuid4())
    redis_client.xadd(
        settings.stream(streams.SIGNALS),
        {
            "signal_id": bad_id,
            "recorder_id": str(recorder.id),
            "action": "hold",
            "symbol": "MNQ",
            "received_at": "1",
        },
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), {"garbage": "yes"})
    redis_client.xadd(settings.stream(streams.TICKS), {"symbol": "MNQ", "price": "abc", "ts": "1"})
    good = send_signal(settings, redis_client, recorder, "buy", "25640")
    drain(engine)
    bad = signal_row(sessions, bad_id)
    assert bad.status == "rejected"
    assert "action must be buy, sell, close or update" in bad.reason
    assert signal_row(sessions, good).status == "applied"
    assert redis_client.xlen(settings.stream("dead_letter")) == 1
    assert pending(redis_client, settings, streams.SIGNALS) == 0
    assert pending(redis_client, settings, streams.TICKS) == 0


def test_signal_without_price_takes_the_last_tick_consumed(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine = engine_for()
    early = send_signal(settings, redis_client, recorder, "buy", None, symbol="ES")
    time.sleep(0.002)  # the engine orders the two streams to the millisecond
    send_tick(settings, redis_client, "6900.25", symbol="ES", ts=5)
    time.sleep(0.002)
    later = send_signal(settings, redis_client, recorder, "buy", None, symbol="ES", received_at=10)
    drain(engine)
    assert signal_row(sessions, early).status == "rejected"
    assert "no price" in signal_row(sessions, early).reason
    [pos] = positions(sessions)
    assert pos.avg_entry_price == D("6900.25")
    assert signal_row(sessions, later).position_id == pos.id


def test_ticks_older_than_the_position_are_ignored(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder(tp_ticks=4, sl_ticks=4)
    engine = engine_for()
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=10_000)
    send_tick(settings, redis_client, "25600", ts=9_999)  # before the position opened
    drain(engine)
    [pos] = positions(sessions)
    assert pos.status == "open" and pos.worst_unrealized_pnl == 0


def test_reverse_and_ignored_signals_are_recorded_with_reasons(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder(allow_dca=False)
    engine = engine_for()
    send_signal(settings, redis_client, recorder, "buy", "25640")
    ignored = send_signal(settings, redis_client, recorder, "buy", "25650")
    reverse = send_signal(settings, redis_client, recorder, "sell", "25650", qty="2")
    drain(engine)
    assert signal_row(sessions, ignored).status == "ignored"
    closed, opened = positions(sessions)
    assert (closed.exit_reason, closed.realized_pnl) == ("reverse", 20)
    assert (opened.side, opened.quantity, opened.status) == ("short", 2, "open")
    assert signal_row(sessions, reverse).position_id == opened.id
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Signal)) == 3


def test_signal_for_a_deleted_recorder_is_set_aside(
    settings, redis_client, sessions, make_recorder, engine_for
):
    recorder = make_recorder()
    engine = engine_for()
    with sessions.begin() as s:
        s.delete(s.get(type(recorder), recorder.id))
    send_signal(settings, redis_client, recorder, "buy", "1")
    drain(engine)
    assert redis_client.xlen(settings.stream("dead_letter")) == 1
    assert pending(redis_client, settings, streams.SIGNALS) == 0


def test_a_backlog_of_ticks_is_not_overtaken_by_a_later_signal(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given a long with its stop-loss at 25630, and an engine that reads 5 entries of a stream at
    # a time
    recorder = make_recorder(tp_ticks=40, sl_ticks=40)
    engine = engine_for(batch_size=5)
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    drain(engine)
    # When a backlog of 12 ticks, the 8th through the stop, is followed by a sell signal
    for n in range(12):
        send_tick(settings, redis_client, "25629" if n == 7 else "25635", ts=2_000 + n)
    send_signal(settings, redis_client, recorder, "sell", "25650", received_at=3_000)
    drain(engine)

    # Then the stop-loss exits the long first, and the sell then opens a short from flat
    closed, opened = positions(sessions)
    assert (closed.exit_reason, closed.exit_price) == ("sl", 25630)
    assert (opened.side, opened.avg_entry_price, opened.status) == ("short", 25650, "open")
    assert (
        pending(redis_client, settings, streams.SIGNALS)
        == pending(redis_client, settings, streams.TICKS)
        == 0
    )


def test_signals_wait_for_older_ticks_after_a_restart_too(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given a long, then ticks through its stop and a sell, all read by an engine that died
    # before applying them (its entries pending)
    recorder = make_recorder(tp_ticks=40, sl_ticks=40)
    first = engine_for(consumer="engine-dead", batch_size=5)
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    drain(first)
    for n in range(12):
        send_tick(settings, redis_client, "25629" if n == 7 else "25635", ts=2_000 + n)
    send_signal(settings, redis_client, recorder, "sell", "25650", received_at=3_000)
    first.arrival._read_round(block_ms=None)  # delivered to the dead consumer: the sell and 5 ticks

    # When the same consumer comes back and takes up its pending entries
    again = engine_for(consumer="engine-dead", batch_size=5)
    drain(again)

    # Then the stop-loss still comes before the sell
    closed, opened = positions(sessions)
    assert (closed.exit_reason, opened.side) == ("sl", "short")


def test_marks_written_by_one_engine_are_where_the_next_one_starts(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given a long marked by ticks, whose engine is replaced by another (a restart, a new leader)
    recorder = make_recorder()
    first = engine_for("engine-1")
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    send_tick(settings, redis_client, "25630", ts=2_000)
    drain(first)
    second = engine_for("engine-2")
    # When prices come back inside what the first engine saw, then beyond it
    send_tick(settings, redis_client, "25635", ts=3_000)
    send_tick(settings, redis_client, "25650", ts=4_000)
    drain(second)
    # Then the row holds every extreme, and the unchanged marks were not lost
    [pos] = positions(sessions)
    assert (pos.max_adverse, pos.worst_unrealized_pnl) == (10, D("-20"))
    assert (pos.max_favorable, pos.best_unrealized_pnl) == (10, D("20"))


def test_an_open_position_gone_under_the_engine_does_not_stop_the_others_exits(
    settings, redis_client, sessions, make_recorder, engine_for, caplog
):
    # Given two recorders long MNQ with the same take-profit, the engine holding both positions
    kept, deleted = make_recorder(tp_ticks=4), make_recorder(tp_ticks=4)
    engine = engine_for()
    send_signal(settings, redis_client, kept, "buy", "25640", received_at=1_000)
    send_signal(settings, redis_client, deleted, "buy", "25640", received_at=1_000)
    drain(engine)
    # When one recorder goes behind the engine's back (a database restored under it, a DELETE by
    # hand), its position with it, then a tick hits the TP
    with sessions.begin() as s:
        s.delete(s.get(type(deleted), deleted.id))
    send_tick(settings, redis_client, "25641", ts=2_000)
    drain(engine)
    # Then the other position exits at its take-profit, and nothing is left pending or set aside
    [pos] = positions(sessions)
    assert (pos.recorder_id, pos.status, pos.exit_reason, pos.exit_price) == (
        kept.id,
        "closed",
        "tp",
        25641,
    )
    assert [t for t, _ in events(redis_client, settings)].count("position.closed") == 1
    assert redis_client.xlen(settings.stream("dead_letter")) == 0
    assert pending(redis_client, settings, streams.TICKS) == 0
    assert [
        r.getMessage() for r in caplog.records if r.levelname == "ERROR"
    ] == []  # no batch failed


def test_a_recorder_allowed_delayed_exits_meanwhile_exits_on_the_next_delayed_tick(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given a long whose recorder takes no exit on delayed ticks, and a delayed tick past its TP
    recorder = make_recorder(tp_ticks=4, allow_delayed_exits=False)
    engine = engine_for()
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    send_tick(settings, redis_client, "25642", ts=2_000, delayed=True)
    drain(engine)
    assert positions(sessions)[0].status == "open"
    # When the user allows delayed exits while the engine runs, and another delayed tick comes
    with sessions.begin() as s:
        s.get(type(recorder), recorder.id).allow_delayed_exits = True
    send_tick(settings, redis_client, "25642", ts=3_000, delayed=True)
    drain(engine)
    # Then the position exits at its take-profit
    [pos] = positions(sessions)
    assert (pos.status, pos.exit_reason, pos.exit_price) == ("closed", "tp", 25641)


def test_a_recorder_deleted_through_the_engine_leaves_its_book_at_once(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given an engine holding a recorder's open position
    recorder = make_recorder()
    engine = engine_for()
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    drain(engine)
    # When the UI asks the engine to delete the recorder
    command = streams.EngineCommand("c-1", streams.DELETE_RECORDER, recorder.id, recorder.user_id)
    redis_client.xadd(settings.stream(streams.ENGINE_COMMANDS), command.to_fields())
    drain(engine)
    # Then a tick that would change nothing in the row no longer marks it for the pages either,
    # and the price feed no longer follows its symbol
    assert positions(sessions) == []
    redis_client.delete(settings.stream(streams.EVENTS))
    send_tick(settings, redis_client, "25640", ts=2_000)
    drain(engine)
    assert [t for t, _ in events(redis_client, settings) if t == "position.marked"] == []
    assert redis_client.hgetall(settings.stream(streams.OPEN_SYMBOLS)) == {}


def test_a_signal_that_fails_on_its_own_is_recorded_rejected_and_the_others_applied(
    settings, redis_client, sessions, make_recorder, engine_for, monkeypatch
):
    # Given a bug that makes one signal's rules fail, in a batch with a good signal
    recorder = make_recorder()
    engine = engine_for()
    real = signal_apply.rules.apply_signal

    def failing(current, signal, *args):
        if signal.price == D("13"):
            raise RuntimeError("a bug")
        return real(current, signal, *args)

    monkeypatch.setattr(signal_apply.rules, "apply_signal", failing)
    bad = send_signal(settings, redis_client, recorder, "buy", "13", symbol="CL")
    good = send_signal(settings, redis_client, recorder, "buy", "25640")
    # When the engine applies them
    drain(engine)
    # Then the failing one is recorded rejected with why, and the good one applied
    assert (signal_row(sessions, bad).status, signal_row(sessions, bad).reason) == (
        "rejected",
        "malformed stream entry: internal error while applying it: RuntimeError",
    )
    assert signal_row(sessions, good).status == "applied"
    assert pending(redis_client, settings, streams.SIGNALS) == 0


def test_ticks_committed_but_not_acknowledged_are_not_applied_again(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given a long 1 @ 25640
    recorder = make_recorder()
    engine = engine_for(consumer="engine-crashy")
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    drain(engine)
    # and a batch holding a tick at 25650 (+10) then an add at 25600 (average 25620), applied and
    # committed by an engine that died before acknowledging it
    send_tick(settings, redis_client, "25650", ts=2_000)
    time.sleep(0.005)  # a later millisecond: within one, signals go first
    send_signal(settings, redis_client, recorder, "buy", "25600", received_at=3_000)
    engine.apply_batch(engine.read(block_ms=None))

    # When the engine comes back and reads its pending entries again
    drain(engine_for(consumer="engine-crashy"))

    # Then the old tick is not marked again against the new average (it would make MFE +30)
    [position] = positions(sessions)
    assert (position.quantity, position.avg_entry_price, position.max_favorable) == (2, 25620, 10)
    assert (
        pending(redis_client, settings, streams.SIGNALS)
        == pending(redis_client, settings, streams.TICKS)
        == 0
    )


def test_ticks_inside_the_marked_range_move_the_last_price_and_change_nothing_else(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given a long 1 @ 25640 whose extremes ticks have taken to 25650 and 25630
    recorder = make_recorder(tp_ticks=80, sl_ticks=80)
    engine = engine_for()
    send_signal(settings, redis_client, recorder, "buy", "25640", received_at=1_000)
    drain(engine)
    send_tick(settings, redis_client, "25650", ts=2_000)
    send_tick(settings, redis_client, "25630", ts=2_001)
    drain(engine)
    [before] = positions(sessions)
    time.sleep(0.6)  # past the interval between two position.marked events of one position

    # When ticks inside that range follow
    send_tick(settings, redis_client, "25645.25", ts=3_000)
    send_tick(settings, redis_client, "25635.5", ts=3_001)
    drain(engine)

    # Then the row is as it was, the last price is the newest tick's, and pages are told so
    [after] = positions(sessions)
    marks = (
        "status",
        "quantity",
        "max_favorable",
        "max_adverse",
        "worst_unrealized_pnl",
        "best_unrealized_pnl",
    )
    assert [getattr(after, m) for m in marks] == [getattr(before, m) for m in marks]
    assert (after.max_favorable, after.max_adverse) == (10, 10)
    assert redis_client.hget(settings.stream("engine_last_price"), "MNQ") == "25635.5"
    # (a page gets at most two position.marked a second, so it shows one of them until the next)
    last_mark = [
        data for kind, data in events(redis_client, settings) if kind == "position.marked"
    ][-1]
    price = D(str(last_mark["last_price"]))
    assert price in (D("25645.25"), D("25635.5"))
    assert D(str(last_mark["unrealized_pnl"])) == (price - D("25640")) * 2  # MNQ: $2 a point
    assert pending(redis_client, settings, streams.TICKS) == 0


def test_a_signal_in_the_millisecond_of_ticks_already_read_goes_before_them(
    settings, redis_client, sessions, make_recorder, engine_for
):
    # Given ticks written in a millisecond Redis has not finished (ids given ahead of its clock,
    # so that millisecond lasts long enough to write into it)
    recorder = make_recorder()
    engine = engine_for()
    seconds, micros = redis_client.time()
    ms = seconds * 1000 + micros // 1000 + 400
    for seq, price in enumerate(("25650", "25660")):
        tick = TickMessage("MNQ", D(price), ms, "test").to_fields()
        redis_client.xadd(settings.stream(streams.TICKS), tick, id=f"{ms}-{seq}")

    # When a buy arrives in that same millisecond, after the engine has read the ticks
    def buy_in_that_millisecond() -> None:
        time.sleep(0.1)
        signal = SignalMessage(
            str(uuid.uuid4()),
            recorder.id,
            "buy",
            "MNQ1!",
            "MNQ",
            D("25640"),
            None,
            None,
            None,
            ms,
            "{}",
        )
        redis_client.xadd(settings.stream(streams.SIGNALS), signal.to_fields(), id=f"{ms}-0")

    writer = threading.Thread(target=buy_in_that_millisecond)
    writer.start()
    drain(engine)
    writer.join()
    drain(engine)

    # Then the buy went first, as stream order says (signals first within a millisecond), and
    # both ticks marked the position it opened
    [position] = positions(sessions)
    assert (position.side, position.avg_entry_price, position.max_favorable) == ("long", 25640, 20)
