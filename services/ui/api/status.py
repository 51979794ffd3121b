"""Health: `/healthz` for probes, `GET /api/status` for the control center (one entry per
service).

The engine is up when some process holds its leader lock; the executor and the notifier when at
least one RQ worker is registered on their queues. RQ drops a worker that died without saying so
only when its key expires (its heartbeat's time to live, minutes), so a crash shows here late;
the supervisor restarts it long before.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from libs.common import orders, streams
from libs.common.notify import delivery
from libs.common.storage.db import engine_leaders_held
from services.ui.context import db, redis_client, settings

log = logging.getLogger(__name__)

bp = Blueprint("status", __name__)


def _redis_status() -> str:
    try:
        redis_client().ping()
        return "ok"
    except Exception:  # any failure means "down"; the reason goes to the log, not the page
        log.warning("redis ping failed", exc_info=True)
        return "down"


def _postgres_status() -> str:
    try:
        db().execute(text("SELECT 1"))
        return "ok"
    except Exception:
        log.warning("postgres check failed", exc_info=True)
        db().rollback()
        return "down"


def _engine_status() -> tuple[str, list[int]]:
    """Each partition's active engine holds a session-level advisory lock; PostgreSQL lists it
    while held. "ok" when every partition has its engine; also the partitions without one."""
    n = settings().engine_partitions
    try:
        held = engine_leaders_held(db(), n)
    except Exception:
        log.warning("engine lock check failed", exc_info=True)
        db().rollback()
        return "down", list(range(n))
    missing = [k for k in range(n) if k not in held]
    return ("down" if missing else "ok"), missing


def _workers_status(queues: tuple[str, ...]) -> str:
    """ "ok" while an RQ worker is registered on one of `queues` (full names) and its key lives."""
    client = redis_client()
    try:
        keys = set().union(*(client.smembers(f"rq:workers:{name}") for name in queues))
        alive = sum(client.exists(key) for key in keys) if keys else 0
    except Exception:
        return "down"
    return "ok" if alive else "down"


def _price_feed() -> tuple[str, dict[str, object] | None]:
    """The feed writes its status to Redis every half second; no key means it is not running."""
    try:
        raw = redis_client().get(settings().stream(streams.PRICE_FEED_STATUS))
    except Exception:
        return "down", None
    if not raw:
        return "down", None
    feed = json.loads(raw)
    state = "ok" if feed.get("connected") else ("degraded" if feed.get("ok") else "down")
    summary = {
        k: feed.get(k)
        for k in (
            "source",
            "active_source",
            "connected",
            "fallback_active",
            "authenticated",
            "delayed_symbols",
            "cached_prices",
            "last_tick_age_s",
            "error",
        )
    }
    return state, summary


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(ok=True)


@bp.get("/api/status")
def status() -> ResponseReturnValue:
    feed_state, feed = _price_feed()
    engine, engines_missing = _engine_status()
    prefix = settings().stream_prefix
    services = {
        "ui": "ok",
        "redis": _redis_status(),
        "postgres": _postgres_status(),
        "price_feed": feed_state,
        "engine": engine,
        "executor": _workers_status(tuple(prefix + name for name in orders.QUEUES)),
        "notifier": _workers_status((prefix + delivery.QUEUE,)),
    }
    engines = {"partitions": settings().engine_partitions, "without_engine": engines_missing}
    return jsonify(ok=True, services=services, price_feed=feed, engines=engines)
