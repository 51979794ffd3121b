"""The migrations build exactly the tables the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from libs.common.storage.models import Base


def test_the_migrated_schema_matches_the_models(engine):
    # Given the test database migrated to head (tests/conftest.py)
    with engine.connect() as connection:
        # When alembic compares it with the models, as `alembic revision --autogenerate` would
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # Then there is nothing a new migration would have to add, drop or change
    assert diff == []
