"""Fixtures of the integration tests: the UI app and users with API keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.common.security import hash_api_key, new_api_key
from libs.common.storage import db
from libs.common.storage.models import ApiKey
from services.ui.app import create_app

T0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def app(settings, sessions, redis_client):
    return create_app(settings, sessions=sessions, redis_client=redis_client)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_api_key(sessions):
    def make(user, revoked: bool = False) -> dict[str, str]:
        key = new_api_key()
        with db.transaction(sessions) as s:
            s.add(
                ApiKey(
                    user_id=user.id,
                    name="test",
                    prefix=key[:8],
                    key_hash=hash_api_key(key),
                    revoked_at=T0 if revoked else None,
                )
            )
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def alice(make_user, make_api_key):
    user = make_user(email="alice@example.com", password="alice pass")
    return user, make_api_key(user)


@pytest.fixture
def bob(make_user, make_api_key):
    user = make_user(email="bob@example.com")
    return user, make_api_key(user)
