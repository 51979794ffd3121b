"""Shared fixtures: real PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are set).

With URLs set, tests use a database `justtrades_test` on that PostgreSQL server and Redis
database 15, never the data the URLs point at.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import text

from libs.common.config import Settings, load_settings, normalize_database_url
from libs.common.security import hash_password, new_webhook_token
from libs.common.storage import db
from libs.common.storage.embedded import start_embedded
from libs.common.storage.models import Base, Recorder, User

TEST_DB = "justtrades_test"


def _test_database_on(url: str) -> str:
    """Create a fresh `justtrades_test` database on the server that `url` points at."""
    plain = normalize_database_url(url).replace("postgresql+psycopg://", "postgresql://")
    base, _, _ = plain.rpartition("/")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    return f"{base}/{TEST_DB}".replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def server_urls() -> Iterator[tuple[str, str]]:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    var_dir = Path(tempfile.mkdtemp(prefix="jt-test-"))
    servers = start_embedded(var_dir, need_postgres=not database_url, need_redis=not redis_url)
    try:
        pg = _test_database_on(database_url) if database_url else servers.postgres.url
        rd = redis_url.rsplit("/", 1)[0] + "/15" if redis_url else servers.redis.url
        db.upgrade(pg)
        yield pg, rd
    finally:
        servers.stop()


# Outside services point at a closed loopback port unless a test starts a simulator for them:
# no test ever sends traffic beyond this machine.
NOWHERE = "http://127.0.0.1:9"
OFFLINE = {
    "tradingview_url": NOWHERE,
    "tradingview_scanner_url": NOWHERE,
    "tradingview_ws_url": "ws://127.0.0.1:9",
    "tradovate_live_url": NOWHERE + "/v1",
    "tradovate_demo_url": NOWHERE + "/v1",
    "tradovate_md_url": "ws://127.0.0.1:9",
    "tradovate_oauth_url": NOWHERE + "/oauth",
}


@pytest.fixture
def settings(server_urls, tmp_path) -> Settings:
    pg, rd = server_urls
    base = load_settings(
        environ={"JT_VAR_DIR": str(tmp_path / "var")}, env_file=tmp_path / "none.env"
    )
    return replace(base, database_url=pg, redis_url=rd, public_url="http://hooks.test", **OFFLINE)


@pytest.fixture
def redis_client(settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def engine(settings):
    eng = db.make_engine(settings.database_url)
    tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine):
    return db.make_sessionmaker(engine)


@pytest.fixture
def make_user(sessions):
    def make(email: str = "trader@example.com", password: str = "correct horse") -> User:
        with db.transaction(sessions) as s:
            user = User(email=email, password_hash=hash_password(password))
            s.add(user)
        return user

    return make


@pytest.fixture
def make_recorder(sessions, make_user):
    def make(user: User | None = None, **fields) -> Recorder:
        user = user or make_user(email=f"owner{os.urandom(3).hex()}@example.com")
        values = dict(
            name="MNQ trend",
            webhook_token=new_webhook_token(),
            default_qty=Decimal(1),
            tp_ticks=None,
            sl_ticks=None,
            on_opposite="reverse",
            allow_dca=True,
            enabled=True,
        )
        values.update(fields)
        with db.transaction(sessions) as s:
            recorder = Recorder(user_id=user.id, **values)
            s.add(recorder)
        return recorder

    return make
