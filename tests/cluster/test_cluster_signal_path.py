"""The signal path on a Redis Cluster, every service a real process: REDIS_URL names one node of a
three-master cluster, QUEUE_REDIS_URL a plain Redis for RQ. A webhook to the real gateway, each
recorder's partition's engine (`justtrades engine --partition K`, ENGINE_PARTITIONS=2), the
executor filling a paper trader's order, and the position closing at its take-profit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from libs.common.config import PROJECT_ROOT
from libs.common.storage.embedded import free_port
from tests.e2e.conftest import (
    ENGINES,
    Stack,
    eventually,
    intent_counts,
    partitioned_stack,
    post_webhook,
    service_env,
    tick_every_partition,
)

# What must come up on the cluster beside them: all but the gateway, engines and UI have no
# health URL here and count as healthy while they run.
WORKERS = ("executor", "price-feed", "notifier")


class ClusterStack(Stack):
    """The e2e Stack, its engines started the way an operator does: `justtrades engine
    --partition K`."""

    def command(self, name: str) -> list[str]:
        if name not in ENGINES:
            return super().command(name)
        return [sys.executable, "-m", "tools.cli", "engine", "--partition", name[-1]]

    def start(self, name: str) -> None:
        # `--partition K` alone says which partition: no ENGINE_PARTITION in the engine's env
        self.own_env.pop(name, None)
        super().start(name)


@pytest.fixture
def cluster_stack(cluster_settings, engine, tmp_path) -> Iterator[ClusterStack]:
    with partitioned_stack(
        cluster_settings,
        tmp_path,
        "cluster@example.com",
        WORKERS,
        ClusterStack,
        QUEUE_REDIS_URL=cluster_settings.queue_redis_url,
        PRICE_SOURCE="off",
        PRICE_FEED_PORT=str(free_port()),
        EXECUTOR_METRICS_PORT="0",
    ) as stack:
        yield stack  # type: ignore[misc]  # a ClusterStack, as asked


def test_webhooks_open_trade_and_close_through_a_cluster(
    cluster_stack, cluster_client, plain_client, sessions
):
    api = cluster_stack.api
    assert api is not None
    # Given two recorders (ids 1 and 2: partitions 1 and 0) with a 10-point target, the first
    # with a paper trader
    recorders = [api.create_recorder(name=f"r{n}", tp_ticks=40, sl_ticks=40) for n in range(2)]
    urls = {r["id"]: api.ok(f"/api/recorders/{r['id']}/webhook")["webhook_url"] for r in recorders}
    account = api.post("/api/accounts", {"broker": "paper", "name": "Practice"}).json()
    trader = api.post(
        "/api/traders",
        {"recorder_id": recorders[0]["id"], "subaccount_id": account["subaccounts"][0]["id"]},
    )
    assert trader.status_code == 201, trader.text
    tick_every_partition(cluster_client, "25600")

    # When each strategy buys
    for url in urls.values():
        post_webhook(url, {"action": "buy", "ticker": "MNQ1!", "price": "25600"})

    # Then each signal went to its partition's stream on the cluster, and each engine opened
    # its recorder's position
    assert cluster_client.xlen("jt:{p0}:signals") == 1
    assert cluster_client.xlen("jt:{p1}:signals") == 1
    for rid in urls:
        eventually(lambda rid=rid: api.positions(rid, status="open"), f"recorder {rid} open")
    # And the trader's order went through RQ on the plain Redis to the executor, which filled it
    eventually(lambda: intent_counts(sessions) == {"filled": 1}, "the trader's entry filled", 20)
    assert [k for k in plain_client.scan_iter("rq:job:*") if k.startswith("rq:job:intent-")]
    assert not list(cluster_client.scan_iter("rq:*"))

    # When the price reaches the target
    tick_every_partition(cluster_client, "25610")
    # Then both positions close at their take-profit
    for rid in urls:
        closed = eventually(
            lambda rid=rid: api.positions(rid, status="closed"), f"recorder {rid} closed"
        )
        assert closed[0]["exit_reason"] == "tp"
    # And every service is still up on the cluster
    for name, process in cluster_stack.processes.items():
        assert process.poll() is None, f"{name}:\n{cluster_stack.log(name)[-3000:]}"


def test_the_price_feed_writes_every_partitions_ticks_on_a_cluster(
    cluster_settings, cluster_client, tmp_path
):
    env = service_env(
        cluster_settings,
        tmp_path / "var",
        QUEUE_REDIS_URL=cluster_settings.queue_redis_url,
        ENGINE_PARTITIONS="2",
        PRICE_SOURCE="sim",
        PRICE_WATCHLIST="ES",
        SIM_INTERVAL_S="0.05",
        PRICE_FEED_PORT=str(free_port()),
    )
    with (tmp_path / "feed.log").open("wb") as log:
        feed = subprocess.Popen(
            [sys.executable, "-m", "services.price_feed"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # Each partition's ticks stream (in its own slot) and the shared last price get ES
        for k in (0, 1):
            eventually(
                lambda k=k: cluster_client.xlen(f"jt:{{p{k}}}:ticks"),
                f"ES ticks on partition {k}:\n{(tmp_path / 'feed.log').read_text()[-3000:]}",
                timeout=30,
            )
        assert cluster_client.hget("jt:last_price", "ES") is not None
        assert cluster_client.get("jt:engine_partitions") == "2"
        assert feed.poll() is None
    finally:
        feed.terminate()
        feed.wait(timeout=20)
