"""`redis_conn` against a real three-master Redis Cluster: one URL naming one node reaches them
all, with the options the services pass; the clock is read on the node that holds a key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from libs.common import redis_conn
from libs.common.config import PROJECT_ROOT
from tests.support.redis_cluster import LocalCluster


def test_one_node_in_the_url_reaches_every_node_with_the_options_given(redis_cluster):
    # Given a URL naming only the first node, with the cluster's password
    client = redis_conn.connect(
        redis_cluster.url,
        decode_responses=True,
        socket_connect_timeout=1.5,
        socket_timeout=2.5,
        retry=Retry(NoBackoff(), 3),
    )
    try:
        # Then the client knows all three masters
        assert sorted(node.port for node in client.get_nodes()) == sorted(redis_cluster.ports)
        # And keys land on every node and read back as text
        for n in range(30):
            client.set(f"jt:test:{n}", f"value {n}")
        assert {client.get(f"jt:test:{n}") for n in range(30)} == {f"value {n}" for n in range(30)}
        for index in range(3):
            with redis_cluster.node(index) as node:
                assert node.dbsize() > 0
        # And each node's connections carry the timeouts and password; the retry is the cluster
        # client's (it refreshes the slot map between attempts)
        for node in client.get_nodes():
            given = node.redis_connection.connection_pool.connection_kwargs
            assert (given["socket_connect_timeout"], given["socket_timeout"]) == (1.5, 2.5)
            assert given["password"] == redis_cluster.password
            assert given["decode_responses"] is True
        assert client.retry.get_retries() == 3
    finally:
        client.delete(*(f"jt:test:{n}" for n in range(30)))
        client.close()


def test_a_wrong_password_or_no_node_is_a_connection_error_the_services_handle(redis_cluster):
    wrong = redis_cluster.url.replace(redis_cluster.password, "not-the-password")
    with pytest.raises(redis.ConnectionError, match="username-password"):
        redis_conn.connect(wrong)
    with pytest.raises(redis.ConnectionError, match="cannot be connected"):
        redis_conn.connect("redis+cluster://127.0.0.1:9", socket_connect_timeout=0.5)


def test_server_time_is_read_on_the_node_holding_the_key(redis_cluster, cluster_client):
    key = "jt:{p1}:signals"
    holder = cluster_client.get_node_from_key(key)

    def time_calls() -> dict[int, int]:
        calls = {}
        for index, port in enumerate(redis_cluster.ports):
            with redis_cluster.node(index) as node:
                stats = node.info("commandstats").get("cmdstat_time", {"calls": 0})
                calls[port] = int(stats["calls"])
        return calls

    before = time_calls()
    now_ms = redis_conn.server_time_ms(cluster_client, key)
    after = time_calls()

    assert {port: after[port] - before[port] for port in after} == {
        port: int(port == holder.port) for port in after
    }
    with redis_cluster.node(redis_cluster.ports.index(holder.port)) as node:
        seconds, micros = node.time()
    assert 0 <= seconds * 1000 + micros // 1000 - now_ms < 5_000


def test_server_time_on_a_plain_redis_is_its_clock(plain_client):
    seconds, _ = plain_client.time()
    assert redis_conn.server_time_ms(plain_client, "jt:signals") // 1000 - seconds in (0, 1)


def test_cluster_urls_name_a_node_for_what_speaks_to_one_server():
    url = "redis+cluster://:secret@10.0.0.5:7000"
    assert redis_conn.is_cluster_url(url)
    assert redis_conn.pubsub_url(url) == "redis://:secret@10.0.0.5:7000"
    assert redis_conn.node_url("rediss+cluster://h:7000/0") == "rediss://h:7000/0"
    assert redis_conn.pubsub_url("redis://:s@h:6379/2") == "redis://:s@h:6379/2"
    with pytest.raises(redis_conn.NeedsPlainRedis, match="QUEUE_REDIS_URL"):
        redis_conn.plain_url(url, "RQ")


def test_a_cluster_made_without_redis_cli_serves_every_slot(tmp_path):
    # The support's fallback where no redis-cli ships beside the server: slots assigned by hand
    cluster = LocalCluster(tmp_path / "by-hand")
    try:
        cluster.start(use_redis_cli=False)
        client = redis_conn.connect(cluster.url, decode_responses=True)
        client.set("jt:{p0}:x", "0")
        client.set("jt:{p1}:x", "1")
        assert client.cluster_info()["cluster_slots_assigned"] == "16384"
        assert (client.get("jt:{p0}:x"), client.get("jt:{p1}:x")) == ("0", "1")
        client.close()
    finally:
        cluster.stop()


def test_justtrades_redis_cli_follows_the_cluster_to_any_slot(cluster_settings, cluster_client):
    env = {
        **os.environ,
        "DATABASE_URL": cluster_settings.database_url,
        "REDIS_URL": cluster_settings.redis_url,
        "QUEUE_REDIS_URL": cluster_settings.queue_redis_url,
        "JT_VAR_DIR": str(cluster_settings.var_dir),
    }
    keys = [f"jt:{{p{k}}}:probe" for k in range(6)]  # slots on more than one node
    assert len({cluster_client.get_node_from_key(key).port for key in keys}) > 1
    for key in keys:
        done = subprocess.run(
            [sys.executable, "-m", "tools.cli", "redis-cli", "SET", key, "seen"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "OK"
    assert [cluster_client.get(key) for key in keys] == ["seen"] * len(keys)
