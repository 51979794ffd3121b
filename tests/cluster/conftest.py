"""Fixtures for the Redis Cluster tests: one real three-master cluster for the whole directory
(tests/support/redis_cluster.py), emptied before each test, and settings whose REDIS_URL names it
while QUEUE_REDIS_URL names the test suite's plain Redis."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from libs.common import redis_conn
from libs.common.config import Settings
from libs.common.security import hash_api_key, new_api_key
from libs.common.storage import db
from libs.common.storage.models import ApiKey, User
from tests.support.redis_cluster import LocalCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="jt-cluster-")))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster) -> Iterator[redis.Redis]:
    client = redis_conn.connect(redis_cluster.url, decode_responses=True)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]
    yield client
    client.close()


@pytest.fixture
def plain_client(redis_client) -> redis.Redis:
    """The plain Redis that QUEUE_REDIS_URL names, emptied."""
    return redis_client


@pytest.fixture
def cluster_settings(settings, redis_cluster, cluster_client, plain_client) -> Settings:
    return replace(settings, redis_url=redis_cluster.url, queue_redis_url=settings.redis_url)


@pytest.fixture
def api_key(sessions):
    """The Authorization header of a new API key of `user`."""

    def make(user: User) -> dict[str, str]:
        key = new_api_key()
        with db.transaction(sessions) as s:
            s.add(ApiKey(user_id=user.id, name="test", prefix=key[:8], key_hash=hash_api_key(key)))
        return {"Authorization": f"Bearer {key}"}

    return make
