"""The engine in two partitions (ENGINE_PARTITIONS=2): each recorder's signals, ticks, exits and
orders are handled by its own partition's engine, a shared subaccount's exits still see the
other partition's positions (§4b), and Redis refuses a partition count that would strand signals.
Two real engines on PostgreSQL and Redis, the paper executor through RQ."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from functools import partial

import pytest
from sqlalchemy import select, text

from libs.common import partitions, streams
from libs.common.storage import db
from libs.common.storage.models import OrderIntent, PaperPosition, Position, Signal
from libs.common.streams import SignalMessage, TickMessage
from services.position_engine.engine import PositionEngine
from services.position_engine.replay import TickInput, replay_log, stream_order
from services.position_engine.rules import RecorderSettings, SignalInput
from tests.polling import wait_for


@pytest.fixture
def settings(settings):
    """Every part of these tests (API, engines, executor) runs two engine partitions."""
    return replace(settings, engine_partitions=2)


@pytest.fixture
def engines(settings, sessions, redis_client) -> dict[int, PositionEngine]:
    out = {}
    for k in (0, 1):
        out[k] = PositionEngine(
            replace(settings, engine_partition=k), sessions, redis_client, consumer=f"engine-{k}"
        )
        out[k].prepare()
    return out


@pytest.fixture
def running_partitions(settings, sessions, redis_client) -> Iterator[None]:
    """Both partitions' engines applying entries and commands in threads until the test ends."""
    stop = threading.Event()
    threads = []
    for k in (0, 1):
        eng = PositionEngine(
            replace(settings, engine_partition=k), sessions, redis_client, consumer=f"run-{k}"
        )
        threads.append(
            threading.Thread(target=eng.run_forever, kwargs={"stop": stop.is_set}, daemon=True)
        )
        threads[-1].start()
    for key in settings.all_partition_keys(streams.ENGINE_COMMANDS_READER):
        wait_for(partial(redis_client.exists, key), timeout=10, what=f"{key} set")
    yield
    stop.set()
    for thread in threads:
        thread.join(timeout=5)


def step_all(engines: dict[int, PositionEngine]) -> None:
    while sum(e.step(block_ms=None) for e in engines.values()):
        pass


def signal(recorder_id: int, action: str, price: str, qty: str = "1") -> SignalMessage:
    return SignalMessage(
        str(uuid.uuid4()),
        recorder_id,
        action,
        "MNQ1!",
        "MNQ",
        Decimal(price),
        Decimal(qty),
        None,
        None,
        streams.now_ms(),
        "{}",
    )


def send(settings, redis_client, message: SignalMessage) -> str:
    """Where the gateway writes a recorder's signal: its partition's stream."""
    key = settings.partition_key(streams.SIGNALS, settings.partition_of(message.recorder_id))
    return redis_client.xadd(key, message.to_fields())


def tick(settings, redis_client, price: str) -> None:
    """What the price feed does: every partition gets every tick."""
    fields = TickMessage("MNQ", Decimal(price), streams.now_ms(), "test").to_fields()
    for key in settings.all_partition_keys(streams.TICKS):
        redis_client.xadd(key, fields)


def recorder(client, key, name: str, **fields) -> int:
    answer = client.post("/api/recorders", json={"name": name, **fields}, headers=key)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def test_each_partitions_engine_opens_and_closes_only_its_own_recorders_positions(
    client, alice, settings, redis_client, sessions, engines
):
    # Given two recorders with a 10-point target: ids 1 and 2, partitions 1 and 0
    ids = [recorder(client, alice[1], f"r{n}", tp_ticks=40, sl_ticks=40) for n in (1, 2)]
    assert [settings.partition_of(i) for i in ids] == [1, 0]
    tick(settings, redis_client, "25600")
    for rid in ids:
        send(settings, redis_client, signal(rid, "buy", "25600"))

    # When only partition 0's engine runs
    step_all({0: engines[0]})

    # Then only its recorder has a position; the other's signal waits on its own stream
    with sessions() as s:
        assert s.scalars(select(Position.recorder_id)).all() == [ids[1]]
    assert redis_client.xlen("jt:{p1}:signals") == 1 and not redis_client.exists("jt:signals")

    # When partition 1's engine runs too, and the price reaches both targets
    step_all(engines)
    tick(settings, redis_client, "25610")
    step_all(engines)

    # Then each position was closed at its take-profit by its own engine
    with sessions() as s:
        rows = s.execute(
            select(Position.recorder_id, Position.status, Position.exit_reason).order_by(
                Position.recorder_id
            )
        ).all()
    assert rows == [(ids[0], "closed", "tp"), (ids[1], "closed", "tp")]
    assert (engines[0].stats.exits, engines[1].stats.exits) == (1, 1)
    assert (engines[0].stats.signals, engines[1].stats.signals) == (1, 1)


def test_each_recorders_rows_equal_the_replay_of_its_partitions_streams(
    client, alice, settings, redis_client, sessions, engines
):
    # Given four recorders across both partitions, reversing, and a flow of signals and ticks
    ids = [
        recorder(client, alice[1], f"r{n}", tp_ticks=24, sl_ticks=16, on_opposite="reverse")
        for n in range(4)
    ]
    price = Decimal("25600")
    for i in range(40):
        price += Decimal("1.25") * (1 if i % 3 else -2)
        tick(settings, redis_client, str(price))
        rid = ids[i % 4]
        send(settings, redis_client, signal(rid, "buy" if i % 5 < 3 else "sell", str(price)))
        if i % 7 == 0:
            step_all(engines)
    step_all(engines)

    # Then each recorder's positions are what the rules give for its own partition's streams
    for rid in ids:
        k = settings.partition_of(rid)
        log: list[tuple[tuple[int, bool, int], SignalInput | TickInput]] = []
        for entry_id, f in redis_client.xrange(settings.partition_key(streams.SIGNALS, k)):
            m = SignalMessage.from_fields(f)
            if m.recorder_id == rid:
                log.append(
                    (
                        stream_order(entry_id, False),
                        SignalInput(
                            signal_id=m.signal_id,
                            symbol=m.symbol,
                            action=m.action,
                            price=m.price,
                            qty=m.qty,
                            position_size=m.position_size,
                            market_position=m.market_position,
                            received_ms=m.received_at,
                        ),
                    )
                )
        for entry_id, f in redis_client.xrange(settings.partition_key(streams.TICKS, k)):
            t = TickMessage.from_fields(f)
            log.append((stream_order(entry_id, True), TickInput(t.symbol, t.price, t.ts)))
        log.sort(key=lambda pair: pair[0])
        replayed = replay_log(
            [item for _, item in log],
            RecorderSettings(
                default_qty=Decimal(1), tp_ticks=24, sl_ticks=16, on_opposite="reverse"
            ),
        )
        with sessions() as s:
            rows = s.scalars(
                select(Position).where(Position.recorder_id == rid).order_by(Position.id)
            ).all()
        assert [
            (r.side, r.quantity, r.avg_entry_price, r.status, r.exit_price, r.exit_reason)
            for r in rows
        ] == [
            (p.side, p.quantity, p.avg_entry_price, p.status, p.exit_price, p.exit_reason)
            for p in replayed.positions
        ], f"recorder {rid} (partition {k})"
        assert len(rows) >= 2


def test_a_shared_subaccount_exit_in_one_partition_sees_the_others_position(
    client, alice, paper, settings, redis_client, sessions, engines, executor
):
    # Given two strategies in different partitions trading MNQ on one paper subaccount
    ids = []
    for name in ("odd", "even"):
        rid = recorder(client, alice[1], name)
        answer = client.post(
            "/api/traders",
            json={"recorder_id": rid, "subaccount_id": paper["id"]},
            headers=alice[1],
        )
        assert answer.status_code == 201, answer.get_json()
        ids.append(rid)
    odd, even = ids
    assert (settings.partition_of(odd), settings.partition_of(even)) == (1, 0)
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "25600")
    send(settings, redis_client, signal(odd, "buy", "25600", "1"))
    send(settings, redis_client, signal(even, "buy", "25600", "2"))
    step_all(engines)
    executor()

    # When the odd one (partition 1) closes, while the even one (partition 0) holds 2
    send(settings, redis_client, signal(odd, "close", "25605"))
    step_all(engines)
    executor()

    # Then only its contract is sold (a liquidation would have taken the other's two as well)
    with sessions() as s:
        last = s.scalars(select(OrderIntent).order_by(OrderIntent.sequence.desc())).first()
        [book] = s.scalars(
            select(PaperPosition).where(PaperPosition.subaccount_id == paper["id"])
        ).all()
    assert (last.kind, last.side, last.quantity, last.status) == ("reduce", "sell", 1, "filled")
    assert book.net_qty == 2


def test_a_signal_written_to_another_partitions_stream_is_set_aside_not_applied(
    client, alice, settings, redis_client, sessions, engines
):
    rid = recorder(client, alice[1], "odd")  # id 1: partition 1
    message = signal(rid, "buy", "25600")
    redis_client.xadd(settings.partition_key(streams.SIGNALS, 0), message.to_fields())
    tick(settings, redis_client, "25600")
    step_all(engines)

    with sessions() as s:
        assert s.scalars(select(Position)).all() == []
        assert s.get(Signal, uuid.UUID(message.signal_id)) is None
    [(_, letter)] = redis_client.xrange(settings.stream("dead_letter"))
    assert letter["reason"] == "recorder 1 belongs to engine partition 1, not to this stream's 0"


def test_deleting_a_recorder_is_answered_by_its_own_partitions_engine(
    client, alice, settings, redis_client, sessions, running_partitions
):
    rid = recorder(client, alice[1], "odd")
    send(settings, redis_client, signal(rid, "buy", "25600"))
    tick(settings, redis_client, "25600")

    answer = client.delete(f"/api/recorders/{rid}", headers=alice[1])

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"ok": True, "id": rid}  # answered, not queued
    assert redis_client.xlen("jt:{p1}:engine_commands") == 1
    assert redis_client.xlen("jt:{p0}:engine_commands") == 0
    with sessions() as s:
        assert s.scalars(select(Position)).all() == []


def test_status_names_the_partitions_without_a_running_engine(client, alice, engine):
    with engine.connect() as lead:
        lead.execute(text("SELECT pg_advisory_lock(:k)"), {"k": db.engine_leader_lock(0)})
        body = client.get("/api/status", headers=alice[1]).get_json()
        assert body["services"]["engine"] == "down"
        assert body["engines"] == {"partitions": 2, "without_engine": [1]}
        lead.execute(text("SELECT pg_advisory_lock(:k)"), {"k": db.engine_leader_lock(1)})
        body = client.get("/api/status", headers=alice[1]).get_json()
        assert body["services"]["engine"] == "ok"
        assert body["engines"]["without_engine"] == []
        lead.execute(text("SELECT pg_advisory_unlock_all()"))


# --- the partition count Redis records ---------------------------------------------------------


def test_a_service_with_another_partition_count_is_refused(settings, redis_client):
    partitions.check(redis_client, settings)
    assert redis_client.get("jt:engine_partitions") == "2"
    partitions.check(redis_client, settings)  # the same count: fine

    with pytest.raises(partitions.PartitionMismatch) as refused:
        partitions.check(redis_client, replace(settings, engine_partitions=3))
    assert "ENGINE_PARTITIONS=3, but this installation's Redis runs 2" in str(refused.value)
    assert "justtrades partitions --set 3" in str(refused.value)


def test_signals_left_on_the_one_partition_stream_block_a_switch_to_two(settings, redis_client):
    one = replace(settings, engine_partitions=1)
    redis_client.xadd("jt:signals", signal(2, "buy", "25600").to_fields())

    with pytest.raises(partitions.PartitionMismatch) as refused:
        partitions.check(redis_client, settings)
    assert "1 entries on jt:signals" in str(refused.value)
    assert not redis_client.exists("jt:engine_partitions")
    partitions.check(redis_client, one)  # the one-partition engine may still start and drain


def test_changing_the_count_waits_for_every_signal_and_carries_the_last_prices(
    settings, redis_client, sessions, engine, engines, client, alice
):
    partitions.check(redis_client, settings)
    recorder(client, alice[1], "odd")
    rid = recorder(client, alice[1], "even")  # id 2: partition 0 of 2, partition 2 of 3
    tick(settings, redis_client, "25600")
    send(settings, redis_client, signal(rid, "buy", "25600"))

    # A signal not yet applied: refused, nothing changed
    with pytest.raises(partitions.PartitionMismatch) as refused:
        partitions.change(redis_client, settings, engine, 3)
    assert "1 entries on jt:{p0}:signals" in str(refused.value)
    assert redis_client.get("jt:engine_partitions") == "2"

    # An engine running: refused
    step_all(engines)
    with engine.connect() as lead:
        lead.execute(text("SELECT pg_advisory_lock(:k)"), {"k": db.engine_leader_lock(1)})
        with pytest.raises(partitions.PartitionMismatch) as refused:
            partitions.change(redis_client, settings, engine, 3)
        assert "the engine of partition 1 is running" in str(refused.value)
        lead.execute(text("SELECT pg_advisory_unlock_all()"))

    # Drained and stopped: changed; the new partitions know the last price, no stale tick waits
    done = partitions.change(redis_client, settings, engine, 3)
    assert done[-1] == "jt:engine_partitions = 3 (was 2)"
    three = replace(settings, engine_partitions=3)
    partitions.check(redis_client, three)
    for key in three.all_partition_keys("engine_last_price"):
        assert redis_client.hget(key, "MNQ") == "25600"
    assert not any(redis_client.exists(k) for k in three.all_partition_keys(streams.TICKS))

    # And the recorder's position, now partition 2's, is closed by partition 2's engine
    moved = PositionEngine(
        replace(three, engine_partition=2), sessions, redis_client, consumer="engine-2"
    )
    moved.prepare()
    assert three.partition_of(rid) == 2
    send(three, redis_client, signal(rid, "close", "25601"))
    while moved.step(block_ms=None):
        pass
    with sessions() as s:
        assert s.scalars(select(Position.status)).all() == ["closed"]
