"""Redis connections: a plain server, or a Redis Cluster when REDIS_URL says so.

`redis+cluster://host:port` (or `rediss+cluster://`) names any node of a cluster; the client
finds the others. Every service connects through `connect`, so the choice is made in one place.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """A cluster URL as the URL of the node it names (`redis+cluster://` → `redis://`)."""
    scheme, sep, rest = url.partition("://")
    return f"{CLUSTER_SCHEMES.get(scheme, scheme)}{sep}{rest}"


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for `url`: a `RedisCluster` for a cluster URL (typed as `redis.Redis`, whose
    commands it answers), else a plain `redis.Redis`. `options` go to the client as given."""
    if is_cluster_url(url):
        return cast(redis.Redis, RedisCluster.from_url(node_url(url), **options))
    return redis.Redis.from_url(url, **options)
