"""What a Redis Cluster cannot carry, and where it goes instead: RQ's queues (and the broker rate
limiter beside them) on the plain Redis QUEUE_REDIS_URL names, while everything else stays on the
cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rq.worker import SimpleWorker
from sqlalchemy import select

from libs.common import orders, redis_conn, streams
from libs.common.config import PROJECT_ROOT, load_settings
from libs.common.storage.models import OrderIntent
from services.executor.jobs import ExecutorContext, use_context
from services.executor.service import build_worker
from services.ui.app import create_app

CLUSTER_URL = "redis+cluster://:pw@127.0.0.1:7000"


def test_a_cluster_redis_url_needs_a_plain_queue_redis_url(tmp_path: Path):
    def load(**env: str):
        return load_settings(
            environ={"JT_VAR_DIR": str(tmp_path), **env}, env_file=tmp_path / "none.env"
        )

    with pytest.raises(ValueError, match="set QUEUE_REDIS_URL to a plain Redis"):
        load(REDIS_URL=CLUSTER_URL)
    with pytest.raises(ValueError, match="QUEUE_REDIS_URL must name a plain Redis"):
        load(REDIS_URL=CLUSTER_URL, QUEUE_REDIS_URL=CLUSTER_URL)
    settings = load(REDIS_URL=CLUSTER_URL, QUEUE_REDIS_URL="redis://:pw@127.0.0.1:6379/0")
    assert (settings.redis_cluster, settings.queue_url) == (True, "redis://:pw@127.0.0.1:6379/0")
    # Without a cluster, the queues share REDIS_URL as before
    assert load(REDIS_URL="redis://127.0.0.1:6379/0").queue_url == "redis://127.0.0.1:6379/0"


def test_rq_cannot_work_a_cluster_so_its_connection_refuses_one(redis_cluster, cluster_client):
    # RQ's workers need a single server's connection pool (and MULTI blocks over keys in many
    # slots): a worker cannot even be made on a cluster client
    queue = orders.order_queue(cluster_client, "jt:exits")
    with pytest.raises(AttributeError, match="connection_pool"):
        SimpleWorker([queue], connection=cluster_client)
    # So a cluster URL given for the queues is refused at start, naming the fix
    with pytest.raises(redis_conn.NeedsPlainRedis, match="QUEUE_REDIS_URL"):
        orders.rq_connection(redis_cluster.url)


def test_a_manual_order_beside_a_cluster_is_queued_on_the_plain_redis_and_filled(
    cluster_settings, cluster_client, plain_client, sessions, make_user, api_key
):
    # Given the UI and the executor with REDIS_URL on the cluster and QUEUE_REDIS_URL plain
    user = make_user(email="alice@example.com", password="alice pass")
    key = api_key(user)
    client = create_app(cluster_settings, sessions=sessions).test_client()
    paper = client.post("/api/accounts", json={"broker": "paper", "name": "Practice"}, headers=key)
    assert paper.status_code == 201, paper.get_json()
    subaccount = paper.get_json()["subaccounts"][0]
    cluster_client.hset(cluster_settings.stream(streams.LAST_PRICE), "MNQ", "25640")

    # When the user buys 2 MNQ at market
    answer = client.post(
        "/api/manual-trade",
        json={"subaccount_id": subaccount["id"], "action": "buy", "ticker": "MNQ1!", "quantity": 2},
        headers=key,
    )
    assert answer.status_code == 202, answer.get_json()

    # Then the job waits on the plain Redis, and nothing of RQ's is on the cluster
    assert plain_client.llen("rq:queue:jt:entries") == 1
    assert not [k for k in cluster_client.scan_iter("rq:*")]

    # And the executor's worker takes it there and fills it at the cluster's last price
    ctx = ExecutorContext(cluster_settings)
    use_context(ctx)
    build_worker(orders.rq_connection(cluster_settings.queue_url), "jt:").work(burst=True)
    with sessions() as s:
        [intent] = s.scalars(select(OrderIntent)).all()
    assert (intent.status, intent.fill_price) == ("filled", 25640)
    # And the fill is told on the cluster's events stream, where the UI reads it
    told = [f["type"] for _, f in cluster_client.xrange(cluster_settings.stream(streams.EVENTS))]
    assert "order.filled" in told


def test_the_broker_rate_limiter_counts_on_the_queue_redis(cluster_settings, cluster_client):
    # Its script reads and writes four keys of a broker user at once, across slots on a cluster
    ctx = ExecutorContext(cluster_settings)
    assert ctx.limiter.try_acquire("demo-user", "entry").granted
    assert ctx.limiter.usage("demo-user").minute_used == 1
    assert ctx.limiter.client.exists(ctx.limiter.key("demo-user", "minute"))
    assert not cluster_client.exists(ctx.limiter.key("demo-user", "minute"))


def test_an_executor_without_a_queue_redis_beside_a_cluster_is_refused(cluster_settings):
    settings = replace(cluster_settings, queue_redis_url="")
    with pytest.raises(redis_conn.NeedsPlainRedis, match="rate limiter"):
        ExecutorContext(settings).limiter  # noqa: B018 (made on first use)


@pytest.mark.parametrize(
    "command", [["-m", "services.executor"], ["-m", "tools.cli", "engine", "--partition", "0"]]
)
def test_a_service_beside_a_cluster_without_a_queue_redis_says_what_to_set(
    command, cluster_settings, tmp_path
):
    env = {
        **os.environ,
        "DATABASE_URL": cluster_settings.database_url,
        "REDIS_URL": cluster_settings.redis_url,
        "JT_VAR_DIR": str(tmp_path),
    }
    env.pop("QUEUE_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, *command],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "REDIS_URL names a Redis Cluster" in done.stderr
    assert "set QUEUE_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr
