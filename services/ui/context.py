"""Per-request handles for the views: settings, a database session, Redis, the current user.

The app keeps one sessionmaker and one Redis client (both thread-safe pools); a view gets one
SQLAlchemy session per request, closed when the request ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app, g
from flask_login import current_user
from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import Settings

EXTENSION = "justtrades"


@dataclass(frozen=True)
class Resources:
    settings: Settings
    sessions: sessionmaker[Session]
    redis: redis.Redis


def install(app: Flask, resources: Resources) -> None:
    app.extensions[EXTENSION] = resources

    @app.teardown_appcontext
    def close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def resources() -> Resources:
    found: Resources = current_app.extensions[EXTENSION]  # put there by `install`
    return found


def settings() -> Settings:
    return resources().settings


def redis_client() -> redis.Redis:
    return resources().redis


def db() -> Session:
    if "db_session" not in g:
        g.db_session = resources().sessions()
    session: Session = g.db_session
    return session


def user_id() -> int:
    """The id of the authenticated user; views run only after the auth guard let them in."""
    return int(current_user.id)
