"""Alembic environment: runs migrations against the URL set by `libs.common.storage.db.upgrade`."""

from alembic import context
from sqlalchemy import create_engine, pool

from libs.common.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # alembic.ini names no database: the URL is the caller's
        raise RuntimeError("no database URL: migrate with libs.common.storage.db.upgrade")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Several services may start at once; one migrates, the others wait for it.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727001)")
            context.run_migrations()
    engine.dispose()


run_migrations_online()
