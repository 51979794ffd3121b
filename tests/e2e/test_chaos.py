"""The short form of `make chaos`: every fault once under a steady flow, then every promise
checked."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import delete, select

from libs.common.futures.exchange_calendar import trade_date
from libs.common.storage.models import Fill, OrderIntent, Signal
from tools.chaos.run import ChaosConfig, run_chaos, table
from tools.chaos.verify import Checker


@pytest.mark.timeout(420)  # boots its own servers and services, 25 s of load, then settles
def test_every_service_killed_and_both_servers_crashed_lose_and_duplicate_nothing(tmp_path):
    tampered: dict[str, list[str]] = {}

    def tamper(checker: Checker) -> None:
        """After the verdict: note the risk desk's flatten, then break the books the way a bug
        would, and check again."""
        with checker.sessions() as s:
            flattens = s.execute(
                select(OrderIntent.status, OrderIntent.created_at).where(
                    OrderIntent.source == "risk"
                )
            ).all()
        tampered["risk_flattens"] = [status for status, _ in flattens]
        # A run across 17:00 New York meets a new trade date: the lock lifts and, the loss limit
        # and profit target still being $0.01, locks and flattens again (once more per trade date,
        # no more).
        tampered["trade_dates"] = sorted({str(trade_date(at)) for _, at in flattens})
        with checker.sessions.begin() as s:
            fill = s.scalars(select(Fill).where(Fill.signal_id.is_not(None)).limit(1)).one()
            s.add(
                Fill(
                    position_id=fill.position_id,
                    signal_id=fill.signal_id,
                    kind=fill.kind,
                    side=fill.side,
                    quantity=fill.quantity,
                    price=fill.price,
                    filled_at=fill.filled_at,
                )
            )
            lost = s.scalars(select(Signal.id).where(Signal.id != fill.signal_id).limit(1)).one()
            s.execute(delete(Signal).where(Signal.id == lost))
        checker.answers.accepted.append(str(uuid.uuid4()))  # a 202 the engine never saw
        tampered["problems"] = checker.verdict([]).problems

    # Given the whole platform under 15 webhooks/s and ~4,000 ticks/s, with a trader on the broker
    # simulator; when each service is killed once (the executor mid-send) and Redis and PostgreSQL
    # crash
    run = run_chaos(
        ChaosConfig(
            duration_s=25,
            faults=7,
            signal_rate=15,
            seed=20261124,
            root=tmp_path / "chaos",
            inspect=tamper,
        )
    )
    report = table(run)
    verdict = run.verdict

    # Then every fault was injected (and the risk desk's lock, which flattens the subaccount two
    # strategies share) and the table says every promise held, the broker's net included
    assert verdict is not None, report
    assert len(run.injected) == 8, report
    assert any("risk desk" in what for _, what in run.injected), report
    # one flatten per trade date the lock was in, sent once (filled once the account socket saw
    # its fills)
    assert len(tampered["risk_flattens"]) == len(tampered["trade_dates"]) >= 1, report
    assert set(tampered["risk_flattens"]) <= {"accepted", "filled"}, report
    assert verdict.problems == [], report
    assert verdict.accepted > 100 and verdict.applied == verdict.accepted, report
    assert (verdict.lost, verdict.duplicated, verdict.orders_duplicated) == (0, 0, 0), report
    assert sum(verdict.pending.values()) == 0, report
    assert verdict.orders_sent > 0, report
    assert "Every promise held" in report

    # And the same checks catch a duplicated fill, a lost signal row and a 202 never applied
    problems = "\n".join(tampered["problems"])
    assert "applied more than once" in problems, problems
    assert "answered 202 were never applied" in problems, problems
    assert "replay" in problems or "the rules give" in problems, problems


@pytest.mark.timeout(420)
def test_with_two_engine_partitions_every_promise_holds_and_a_killed_engine_stops_only_its_own(
    tmp_path,
):
    # Given two engine partitions, one engine process each, under the same flow and faults
    run = run_chaos(
        ChaosConfig(
            duration_s=25,
            faults=7,
            signal_rate=15,
            seed=20261204,
            root=tmp_path / "chaos",
            partitions=2,
        )
    )
    report = table(run)
    verdict = run.verdict

    # Then one partition's engine was killed while the other went on reading ticks
    assert verdict is not None, report
    [engine_kill] = [what for _, what in run.injected if "kill -9 engine-" in what]
    assert "meanwhile engine-" in engine_kill and " read 0 ticks" not in engine_kill, report
    # And every promise held, per partition: each accepted signal applied once, positions equal
    # to the replay of their own partition's streams, nothing pending, no order sent twice
    assert verdict.problems == [], report
    assert verdict.accepted > 100 and verdict.applied == verdict.accepted, report
    assert (verdict.lost, verdict.duplicated, verdict.orders_duplicated) == (0, 0, 0), report
    assert sum(verdict.pending.values()) == 0, report
    assert "| engine partitions                            | 2 |" in report
    assert "Every promise held" in report
