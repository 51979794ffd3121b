"""Two engine partitions as real processes (ENGINE_PARTITIONS=2): webhooks over HTTP to the real
gateway, each recorder's signals to its own partition's engine process, ticks as any program may
write them, orders through the real executor; a killed engine stops only its own partition."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import func, select

from libs.common.config import PROJECT_ROOT
from libs.common.storage.embedded import free_port
from libs.common.storage.models import Fill, Signal
from tests.e2e.conftest import (
    WORKERS,
    Stack,
    eventually,
    intent_counts,
    partitioned_stack,
    post_webhook,
    run_cli_in,
    service_env,
    tick_every_partition,
)


@pytest.fixture
def stack2(settings, engine, redis_client, tmp_path) -> Iterator[Stack]:
    """Gateway, UI, executor and one engine per partition, ENGINE_PARTITIONS=2."""
    with partitioned_stack(settings, tmp_path, "two@example.com", WORKERS) as stack:
        yield stack


def test_two_partitions_apply_exit_and_trade_and_a_killed_engine_stops_only_its_own(
    stack2, redis_client, sessions
):
    api = stack2.api
    assert api is not None
    # Given four recorders (ids 1–4: partitions 1, 0, 1, 0) with a 10-point target, and a paper
    # trader on each of the first two
    recorders = [api.create_recorder(name=f"r{n}", tp_ticks=40, sl_ticks=40) for n in range(4)]
    urls = {r["id"]: api.ok(f"/api/recorders/{r['id']}/webhook")["webhook_url"] for r in recorders}
    account = api.post("/api/accounts", {"broker": "paper", "name": "Practice"}).json()
    for r in recorders[:2]:
        trader = api.post(
            "/api/traders",
            {"recorder_id": r["id"], "subaccount_id": account["subaccounts"][0]["id"]},
        )
        assert trader.status_code == 201, trader.text
    tick_every_partition(redis_client, "25600")

    # When each recorder's strategy buys
    for url in urls.values():
        post_webhook(url, {"action": "buy", "ticker": "MNQ1!", "price": "25600"})

    # Then each signal reached its own partition's stream and engine, and the traders' entries
    # were filled by the executor
    assert redis_client.xlen("jt:{p0}:signals") == 2 and redis_client.xlen("jt:{p1}:signals") == 2
    for rid in urls:
        eventually(lambda rid=rid: api.positions(rid, status="open"), f"recorder {rid} open")
    eventually(
        lambda: intent_counts(sessions) == {"filled": 2}, "both traders' entries filled", timeout=20
    )
    # And the price reaching the target closes every position at its take-profit
    tick_every_partition(redis_client, "25610")
    for rid in urls:
        closed = eventually(
            lambda rid=rid: api.positions(rid, status="closed"), f"recorder {rid} closed"
        )
        assert closed[0]["exit_reason"] == "tp"

    # When partition 1's engine is killed and every strategy buys again
    stack2.kill("engine-1")
    sent = {
        rid: post_webhook(url, {"action": "buy", "ticker": "MNQ1!"}) for rid, url in urls.items()
    }

    # Then partition 0's recorders (2 and 4) are applied; partition 1's wait, answered 202
    for rid in (2, 4):
        eventually(lambda rid=rid: api.positions(rid, status="open"), f"recorder {rid} open")
    with sessions() as s:
        decided = set(map(str, s.scalars(select(Signal.id))))
    assert {sent[1], sent[3]} & decided == set()

    # And once it is back, each signal is applied exactly once
    stack2.start("engine-1")
    stack2.wait_healthy("engine-1")
    for rid in (1, 3):
        eventually(lambda rid=rid: api.positions(rid, status="open"), f"recorder {rid} open")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Signal)) == 8
        per_signal = s.execute(
            select(Fill.signal_id, func.count())
            .where(Fill.signal_id.is_not(None))  # the take-profit exits have none
            .group_by(Fill.signal_id)
        ).all()
    assert sorted(n for _, n in per_signal) == [1] * 8
    status = requests.get(f"{stack2.url('ui')}/api/status", headers=api.headers, timeout=5)
    assert status.json()["engines"] == {"partitions": 2, "without_engine": []}


def test_an_engine_or_a_feed_with_another_partition_count_refuses_to_start(
    settings, engine, redis_client, tmp_path
):
    env = service_env(settings, tmp_path / "var", ENGINE_PARTITIONS="2", PRICE_SOURCE="sim")
    redis_client.set("jt:engine_partitions", "3")

    for module in ("services.position_engine", "services.price_feed"):
        done = subprocess.run(
            [sys.executable, "-m", module],
            cwd=PROJECT_ROOT,
            env={**env, "ENGINE_PORT": str(free_port()), "PRICE_FEED_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0, module
        assert "ENGINE_PARTITIONS=2, but this installation's Redis runs 3" in done.stderr, (
            done.stderr[-2000:]
        )
        assert "justtrades partitions --set 2" in done.stderr


def test_justtrades_run_with_another_partition_count_says_how_and_starts_nothing(
    settings, engine, redis_client, tmp_path
):
    # Given an installation whose Redis runs 3 partitions
    redis_client.set("jt:engine_partitions", "3")
    env = service_env(settings, tmp_path / "var", ENGINE_PARTITIONS="2", PRICE_SOURCE="sim")

    # When `justtrades run` starts with ENGINE_PARTITIONS=2
    done = run_cli_in(env, "run")

    # Then it stops at once with the way to change the count, not a loop of failing services
    assert done.returncode == 2, done.stderr[-2000:]
    assert "ENGINE_PARTITIONS=2, but this installation's Redis runs 3" in done.stderr
    assert "justtrades partitions --set 2" in done.stderr
    assert "Traceback" not in done.stderr
    assert "service exited" not in done.stderr + done.stdout
    assert redis_client.get("jt:engine_partitions") == "3"


def test_the_cli_names_the_partition_an_engine_must_run_and_shows_the_backlog(
    settings, engine, redis_client, tmp_path
):
    env = service_env(settings, tmp_path / "var", ENGINE_PARTITIONS="2")
    env.pop("ENGINE_PARTITION", None)
    missing = run_cli_in(env, "engine")
    assert missing.returncode == 1
    assert "say which partition this engine runs, `justtrades engine --partition K`" in (
        missing.stderr
    )
    unknown = run_cli_in(env, "engine", "--partition", "2")
    assert unknown.returncode != 0
    assert "engine partition 2 does not exist: ENGINE_PARTITIONS=2" in unknown.stderr

    redis_client.set("jt:engine_partitions", "2")
    redis_client.xadd("jt:{p1}:signals", {"signal_id": "x"})
    shown = run_cli_in(env, "partitions")
    assert shown.returncode == 0, shown.stderr
    assert "Redis records 2" in shown.stdout
    assert "partition 1: jt:{p1}:signals 1 unread 0 pending" in shown.stdout
    refused = run_cli_in(env, "partitions", "--set", "3")
    assert refused.returncode == 1
    assert "1 entries on jt:{p1}:signals still wait to be applied" in refused.stderr
