"""The JSON API under /api, one blueprint per resource."""

from __future__ import annotations

from flask import Flask

from services.ui.api import dashboard, openapi, positions, recorders, signals, status, tradingview


def register_api(app: Flask) -> None:
    for module in (recorders, signals, positions, dashboard, status, tradingview, openapi):
        app.register_blueprint(module.bp)
