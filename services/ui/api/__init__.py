"""The JSON API under /api, one blueprint per resource."""

from __future__ import annotations

from flask import Flask

from services.ui.api import (
    account_security,
    accounts,
    api_keys,
    contracts,
    copy_groups,
    dashboard,
    exit_plans,
    me,
    notifications,
    openapi,
    positions,
    recorder_webhook,
    recorders,
    service_metrics,
    signals,
    status,
    subaccount_risk,
    subaccounts,
    traders,
    trading,
    tradingview,
    tradovate_connect,
)


def register_api(app: Flask) -> None:
    for module in (
        recorders,
        recorder_webhook,
        signals,
        positions,
        exit_plans,
        dashboard,
        status,
        tradingview,
        accounts,
        subaccount_risk,
        subaccounts,
        traders,
        trading,
        copy_groups,
        tradovate_connect,
        contracts,
        api_keys,
        notifications,
        account_security,
        me,
        service_metrics,
        openapi,
    ):
        app.register_blueprint(module.bp)
