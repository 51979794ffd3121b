"""Health: `/healthz` for probes, `GET /api/status` for the control center (one entry per service)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from services.ui.context import db, redis_client

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


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(ok=True)


@bp.get("/api/status")
def status() -> ResponseReturnValue:
    services = {"ui": "ok", "redis": _redis_status(), "postgres": _postgres_status()}
    return jsonify(ok=True, services=services)
