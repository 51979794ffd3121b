"""Health: `/healthz` for probes, `GET /api/status` for the control center (one entry per
service)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from libs.common import streams
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
    services = {
        "ui": "ok",
        "redis": _redis_status(),
        "postgres": _postgres_status(),
        "price_feed": feed_state,
    }
    return jsonify(ok=True, services=services, price_feed=feed)
