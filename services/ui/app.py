"""The UI's Flask application: JSON API, login, the pages and Socket.IO live updates.

`create_app` builds everything from one Settings object; tests pass their own sessionmaker and
Redis client, a server process lets the app create its own.
"""

from __future__ import annotations

import redis
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from libs.common import db
from libs.common.config import Settings
from services.ui import context, pages
from services.ui.api import register_api
from services.ui.auth import init_auth
from services.ui.errors import register_error_handlers
from services.ui.live import init_live

MAX_BODY = 64 * 1024  # recorder settings are tiny; anything bigger is a mistake or an attack
POOL_SIZE = 8  # one connection per gunicorn thread


class JSONProvider(DefaultJSONProvider):
    sort_keys = False  # keep fields in the order the serializers wrote them


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session] | None = None,
    redis_client: redis.Redis | None = None,
) -> Flask:
    if not settings.secret_key:
        raise ValueError("SECRET_KEY is empty; load settings with load_settings() to generate one")
    if sessions is None:
        if not settings.database_url:
            raise ValueError("DATABASE_URL is not set")
        sessions = db.make_sessionmaker(db.make_engine(settings.database_url, pool_size=POOL_SIZE))
    if redis_client is None:
        if not settings.redis_url:
            raise ValueError("REDIS_URL is not set")
        redis_client = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY)
    context.install(app, context.Resources(settings, sessions, redis_client))
    register_error_handlers(app)
    init_auth(app)
    register_api(app)
    pages.register_pages(app)
    init_live(app, settings)  # wraps wsgi_app with /socket.io; ProxyFix must stay outermost
    if settings.trust_proxy:
        # Behind a reverse proxy: honour its X-Forwarded-For/-Proto so https is seen as https.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    return app
