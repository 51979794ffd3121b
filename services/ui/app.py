"""The UI's Flask application: JSON API, login, the pages and Socket.IO live updates.

`create_app` builds everything from one Settings object; tests pass their own sessionmaker and
Redis client, a server process lets the app create its own.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask_socketio import SocketIO
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from libs.common import redis_conn
from libs.common.config import Settings
from libs.common.metrics import ScrapeCollector
from libs.common.storage import db
from services.ui import context, pages
from services.ui.api import register_api
from services.ui.auth import init_auth
from services.ui.errors import BadRequest, register_error_handlers
from services.ui.headers import install_security_headers
from services.ui.live import init_live

MAX_BODY = 64 * 1024  # recorder settings are tiny; anything bigger is a mistake or an attack
POOL_SIZE = 8  # requests beyond it (and its overflow) wait their turn for a connection


MAX_JSON_DEPTH = 32  # the deepest body the API reads (an exit plan) is 4 levels


class JSONProvider(DefaultJSONProvider):
    sort_keys = False  # keep fields in the order the serializers wrote them

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """A body nested deeper than any route reads is refused as invalid JSON (a ValueError,
        which Flask answers 400), never left to overflow the parser's stack or ours."""
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError(f"it is nested more than {MAX_JSON_DEPTH} levels deep") from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise ValueError(f"it is nested more than {MAX_JSON_DEPTH} levels deep")
        return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed value, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def create_app(
    settings: Settings,
    sessions: sessionmaker[Session] | None = None,
    redis_client: redis.Redis | None = None,
    async_mode: str = "threading",
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
        redis_client = redis_conn.connect(settings.redis_url, decode_responses=True)

    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY)
    context.install(app, context.Resources(settings, sessions, redis_client))
    register_error_handlers(app)
    app.before_request(refuse_nul_characters)
    init_auth(app)
    install_security_headers(app, https=settings.ui_public_url.startswith("https://"))
    register_api(app)
    pages.register_pages(app)
    # Wraps wsgi_app with /socket.io; ProxyFix must stay outermost.
    socketio = init_live(app, settings, async_mode)
    register_metrics(app, socketio)
    if settings.trust_proxy:
        # Behind a reverse proxy: honour its X-Forwarded-For/-Proto so https is seen as https.
        # (Flask types wsgi_app as a method, yet documents replacing it with middleware.)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    return app


def refuse_nul_characters() -> None:
    """PostgreSQL text cannot hold a NUL character: refuse it here, in one sentence, instead of
    failing inside the database with a 500."""
    body = request.get_json(silent=True) if request.is_json else None
    # Kept first: reading `form` would otherwise use up the body that `json_object` parses
    # whatever the Content-Type (curl's default is a form).
    request.get_data(cache=True)
    texts = [*request.args.values(), *request.form.values(), *_strings_in(body)]
    if any("\x00" in text for text in texts):
        raise BadRequest("Text in the request may not contain the NUL character (\\u0000).")


def _strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings_in(k), *_strings_in(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings_in(item)]
    return []


def register_metrics(app: Flask, socketio: SocketIO) -> None:
    """`GET /metrics`: requests by route and status, and the Socket.IO connections open here."""
    registry = CollectorRegistry()
    requests = Counter(
        "jt_ui_requests",
        "HTTP requests by route pattern and status.",
        ["route", "status"],
        registry=registry,
    )

    def sockets() -> list[GaugeMetricFamily]:
        # Every connected client is in the namespace's `None` room (python-socketio's manager).
        connected = socketio.server.manager.rooms.get("/", {}).get(None, {})
        return [
            GaugeMetricFamily(
                "jt_ui_socket_connections",
                "Socket.IO clients connected to this process.",
                value=len(connected),
            )
        ]

    registry.register(ScrapeCollector(sockets, "socket connections"))

    @app.after_request
    def count(response: Response) -> Response:
        route = (
            request.url_rule.rule if request.url_rule else "unmatched"
        )  # patterns keep labels few
        requests.labels(route=route, status=str(response.status_code)).inc()
        return response

    # Beside the Flask routes, not among them: the API's OpenAPI document describes every route.
    # (Flask types wsgi_app as a method, yet documents replacing it with middleware.)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(registry)})  # type: ignore[method-assign]
