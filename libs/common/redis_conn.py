"""Redis connections: a plain server, or a Redis Cluster when REDIS_URL says so.

`redis+cluster://host:port` (or `rediss+cluster://`) names any node of a cluster; the client
finds the others. Every service connects through `connect`, so the choice is made in one place.
What a cluster cannot carry (RQ's queues, docs/operations.md "Redis Cluster") goes to the plain
Redis QUEUE_REDIS_URL names.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from libs.common.config import CLUSTER_SCHEMES


class ClusterUnreachable(redis.ConnectionError):
    """No node of the cluster answered (or none accepted the password) when the client started.
    A `redis.ConnectionError`, as a plain Redis that is down shows on its first command: the
    services' handling of a Redis outage covers it."""


class NeedsPlainRedis(ValueError):
    """A cluster URL given to something that only works on one Redis server (RQ)."""


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def is_cluster(client: redis.Redis) -> bool:
    return isinstance(client, RedisCluster)


def node_url(url: str) -> str:
    """A cluster URL as the URL of the node it names (`redis+cluster://` → `redis://`)."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme, scheme)}{sep}{rest}"


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for `url`: a `RedisCluster` for a cluster URL (typed as `redis.Redis`, whose
    commands it answers), else a plain `redis.Redis`. `options` go to the client as given.

    On a cluster, `retry` is the cluster client's: it retries a command on a refreshed slot map
    after a connection error, MOVED or ASK. redis-py gives the node connections no
    `health_check_interval`; a dead idle connection shows as a connection error, which that
    retry covers.

    A cluster client reads the slot map as it is made, so an unreachable cluster raises
    ClusterUnreachable here rather than on the first command."""
    if is_cluster_url(url):
        try:
            return cast(redis.Redis, RedisCluster.from_url(node_url(url), **options))
        except RedisClusterException as exc:
            raise ClusterUnreachable(str(exc)) from exc
    return redis.Redis.from_url(url, **options)


def plain_url(url: str, what: str) -> str:
    """`url`, refused with a sentence naming the fix when it names a cluster."""
    if is_cluster_url(url):
        raise NeedsPlainRedis(
            f"{what} cannot run on a Redis Cluster: set QUEUE_REDIS_URL to a plain Redis "
            '(docs/operations.md "Redis Cluster")'
        )
    return url


def pubsub_url(url: str) -> str:
    """Where a Socket.IO message queue publishes and subscribes: a plain URL as it is, or the
    node a cluster URL names. A cluster carries PUBLISH to every node, so subscribers on any node
    hear it; python-socketio's RedisManager only speaks to one server."""
    return node_url(url)


def server_time_us(client: redis.Redis, key: str) -> int:
    """Redis's clock in microseconds, read on the server that holds `key`: on a cluster each node
    has its own clock, and stream ids come from the node that wrote them."""
    if isinstance(client, RedisCluster):
        seconds, micros = client.time(target_nodes=client.get_node_from_key(key))
    else:
        seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def server_time_ms(client: redis.Redis, key: str) -> int:
    """Redis's clock in milliseconds, read on the server that holds `key` (server_time_us)."""
    return server_time_us(client, key) // 1000
