"""Database engine and sessions, plus migrations run through Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import normalize_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"
# The session-level advisory lock the active position engine holds (pg_locks shows who has it);
# partition K's engine holds ENGINE_LEADER_LOCK + K.
ENGINE_LEADER_LOCK = 727_002
# A transaction-level advisory lock the engines of several partitions take before they decide
# orders for traders, so that two of them never decide for one shared subaccount at once (§4b).
ENGINE_ORDERS_LOCK = 727_100


def engine_leader_lock(partition: int) -> int:
    return ENGINE_LEADER_LOCK + partition


def engine_leaders_held(conn: Connection | Session, partitions: int) -> set[int]:
    """The partitions of 0..`partitions`-1 whose engine holds its leader lock now (a
    session-level advisory lock, which pg_locks lists while it is held)."""
    held = conn.execute(
        text(
            "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = 0 AND objid BETWEEN :low AND :high AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"low": engine_leader_lock(0), "high": engine_leader_lock(partitions - 1)},
    ).scalars()
    return {int(objid) - ENGINE_LEADER_LOCK for objid in held}


def make_engine(database_url: str, pool_size: int = 5, *, pre_ping: bool = True) -> Engine:
    """`pre_ping=False` saves a round trip per checkout, for a caller that retries its whole
    unit of work on `OperationalError` (a connection lost to a restart fails once, and
    SQLAlchemy then discards the pool's other connections as well)."""
    return create_engine(
        normalize_database_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    command.upgrade(cfg, revision)
