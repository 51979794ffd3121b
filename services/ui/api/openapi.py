"""The OpenAPI 3.1 document of the UI's JSON API, served at `GET /api/openapi.json`.

Hand-written paths; request bodies come from the pydantic models so the document cannot drift
from what the views validate.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from services.ui.api.api_keys import ApiKeyCreate
from services.ui.api.execution_schemas import (
    CopyGroupCreate,
    Follower,
    ManualTrade,
    PaperAccountCreate,
    TraderCreate,
    TraderUpdate,
    TradingWindow,
    TradovateAccountCreate,
)
from services.ui.api.exit_plans import PreviewRequest
from services.ui.api.me import Preferences
from services.ui.api.openapi_execution import account_paths, execution_paths
from services.ui.api.openapi_notifications import notification_paths, notification_schemas
from services.ui.api.openapi_parts import (
    BOOL,
    ERROR_TEXT,
    INT,
    MONEY,
    NUM,
    SCHEMAS,
    STR,
    TIME,
    Schema,
    list_of,
    nullable,
    obj,
    operation,
    path_param,
    query,
    ref,
)
from services.ui.api.schemas import (
    RecorderCreate,
    RecorderUpdate,
    TradingViewCookies,
    TradingViewCredentialsBody,
)
from services.ui.api.subaccount_risk import RiskUpdate

EXCURSION = obj(points=NUM, ticks=NUM, usd=MONEY)

bp = Blueprint("openapi", __name__)

# One hop of GET /api/signals/<id>/timeline; ms_since_previous: from the hop before that has a
# time (an order's first hop: from the engine's).
TIMELINE_HOP = obj(
    hop={
        "enum": [
            "pending",
            "received",
            "stream",
            "applied",
            "ignored",
            "rejected",
            "queued",
            "sent",
            "accepted",
            "filled",
            "failed",
            "skipped",
        ]
    },
    at=TIME,
    ms_since_previous=nullable(INT),
    detail=STR,
    intent_id=nullable(STR),
    trader_id=nullable(INT),
    account={**nullable(STR), "description": "account / subaccount of an order hop"},
    fill_price=nullable(NUM),
)

RECORDER_ID = path_param("recorder_id", INT)
URL_WARNING = {
    **nullable(STR),
    "description": "why TradingView cannot (or should not) call this URL; null when it can",
}
REFUSED_LIST = obj(
    ok=BOOL,
    kept=STR,
    refused={
        "type": "array",
        "items": obj(
            at=TIME,
            status=INT,
            error=STR,
            body={**STR, "description": "first 4 KiB, tokens replaced by <token>"},
            remote=nullable(STR),
            unknown_token=BOOL,
        ),
    },
)
DAY_CUT = "inclusive date of closing, a day of the user's time_zone (GET /api/me)"
FILTERS = [
    query("recorder_id", INT),
    query("from", {"type": "string", "format": "date"}, DAY_CUT),
    query("to", {"type": "string", "format": "date"}, DAY_CUT),
]
# Every dashboard answer names the zone its days were cut in; its timestamps stay UTC.
ZONE = {**STR, "description": "the IANA zone the days were cut in (the user's setting)"}


def engine_command(op: Schema) -> Schema:
    """A change the position engine applies: 202 when it does not answer within seconds (the
    command waits for it)."""
    queued = obj(ok=BOOL, id=INT, queued=BOOL, message=STR)
    content = {"application/json": {"schema": queued}}
    op["responses"]["202"] = {"description": "Queued for the engine", "content": content}
    return op


def _recorder_paths() -> dict[str, Any]:
    w = ("401", "403", "404", "422")
    return {
        "/api/recorders": {
            "get": operation(
                "List your recorders with their open position counts",
                list_of("recorders", "Recorder"),
            ),
            "post": operation(
                "Create a recorder",
                "Recorder",
                status="201",
                body="RecorderCreate",
                errors=("400", *w),
            ),
        },
        "/api/recorders/{recorder_id}": {
            "parameters": [RECORDER_ID],
            "get": operation("One recorder", "Recorder", errors=("401", "404")),
            "put": operation(
                "Change some settings (fields absent stay as they are)",
                "Recorder",
                body="RecorderUpdate",
                errors=("400", *w),
            ),
            "delete": engine_command(
                operation(
                    "Delete the recorder, its signals and positions", obj(ok=BOOL, id=INT), errors=w
                )
            ),
        },
        "/api/recorders/{recorder_id}/rotate-token": {
            "parameters": [RECORDER_ID],
            "post": operation(
                "Issue a new webhook token; the old URL stops working", "Recorder", errors=w
            ),
        },
        "/api/recorders/{recorder_id}/webhook": {
            "parameters": [RECORDER_ID],
            "get": operation(
                "Webhook URL and TradingView alert templates",
                obj(
                    ok=BOOL,
                    recorder_id=INT,
                    webhook_url=STR,
                    url_warning=URL_WARNING,
                    how_to=STR,
                    templates=obj(indicator=STR, strategy=STR),
                ),
                errors=("401", "404"),
            ),
        },
        "/api/recorders/{recorder_id}/refused": {
            "parameters": [RECORDER_ID],
            "get": operation(
                "Webhooks the gateway refused for this recorder (400, 413, 422, 429, or 404 "
                "naming it), newest first",
                REFUSED_LIST,
                errors=("401", "404"),
            ),
            "delete": operation("Clear the list", REFUSED_LIST, errors=("401", "403", "404")),
        },
        "/api/recorders/{recorder_id}/test-alert": {
            "parameters": [RECORDER_ID],
            "post": operation(
                "Send a test alert to the recorder's webhook URL; the engine records it as "
                "ignored and trades nothing",
                obj(
                    ok=BOOL,
                    status={**INT, "description": "the gateway's HTTP status"},
                    answer={"type": "object", "description": "the gateway's JSON answer"},
                    signal_id=nullable(STR),
                    url_warning=URL_WARNING,
                ),
                errors=("401", "403", "404", "502"),
            ),
        },
        "/api/recorders/{recorder_id}/reset-history": {
            "parameters": [RECORDER_ID],
            "post": engine_command(
                operation(
                    "Delete closed positions and signals; open positions stay",
                    obj(ok=BOOL, id=INT, deleted_signals=INT, deleted_positions=INT),
                    errors=w,
                )
            ),
        },
    }


def _read_paths() -> dict[str, Any]:
    r = ("401", "404", "422")
    trade = {"allOf": [ref("Position"), obj(recorder_name=STR)]}
    return {
        "/api/signals": {
            "get": operation(
                "Signals, newest first",
                list_of("signals", "Signal", next_before=nullable(STR)),
                params=[
                    query("recorder_id", INT),
                    query("status", {"enum": ["applied", "ignored", "rejected"]}),
                    query("limit", {**INT, "minimum": 1, "maximum": 500, "default": 50}),
                    query(
                        "before",
                        STR,
                        "id of the last signal of the previous page (next_before), or an ISO time",
                    ),
                ],
                errors=r,
            )
        },
        "/api/signals/{signal_id}": {
            "parameters": [path_param("signal_id", {"type": "string", "format": "uuid"})],
            "get": operation(
                "One signal; `pending` while the engine has not applied it yet",
                "Signal",
                errors=("401", "404"),
            ),
        },
        "/api/signals/{signal_id}/timeline": {
            "parameters": [path_param("signal_id", {"type": "string", "format": "uuid"})],
            "get": operation(
                "The signal hop by hop: received, stream, the engine's outcome, then each order "
                "intent (and its followers' copies) queued, sent, accepted and its final status",
                obj(
                    ok=BOOL,
                    signal=ref("Signal"),
                    hops={"type": "array", "items": TIMELINE_HOP},
                    total_ms={**nullable(INT), "description": "from the first hop to the latest"},
                ),
                errors=("401", "404"),
            ),
        },
        "/api/positions": {
            "get": operation(
                "Positions",
                list_of("positions", "Position"),
                params=[
                    query("recorder_id", INT),
                    query("status", {"enum": ["open", "closed"]}),
                    query("symbol", STR, "a root (MNQ) or any ticker form (MNQ1!)"),
                    query("limit", {**INT, "minimum": 1, "maximum": 5000, "default": 500}),
                ],
                errors=r,
            )
        },
        "/api/positions/{position_id}": {
            "parameters": [path_param("position_id", INT)],
            "get": operation(
                "One position with its fills, the stop's moves and its excursions",
                {
                    "allOf": [
                        ref("Position"),
                        obj(
                            fills={"type": "array", "items": ref("Fill")},
                            stop_moves={
                                "type": "array",
                                "items": obj(
                                    stop_price=NUM,
                                    reason={"enum": ["sl", "breakeven", "trail"]},
                                    moved_at=TIME,
                                ),
                            },
                            excursions=obj(max_favorable=EXCURSION, max_adverse=EXCURSION),
                            held_seconds=NUM,
                        ),
                    ]
                },
                errors=("401", "404"),
            ),
        },
        "/api/exit-plans/preview": {
            "post": operation(
                "The levels an exit plan sets for a sample entry (the engine's own rules)",
                obj(
                    ok=BOOL,
                    symbol=STR,
                    tick_size=NUM,
                    point_value=NUM,
                    stop=nullable(NUM),
                    targets={"type": "array", "items": obj(level=NUM, allotted=NUM)},
                    breakeven={"anyOf": [obj(trigger=NUM, stop=NUM), {"type": "null"}]},
                    trail={"anyOf": [obj(trigger=NUM, distance=NUM), {"type": "null"}]},
                ),
                body="ExitPlanPreview",
                errors=("401", "422"),
            ),
        },
        "/api/dashboard/trade-history": {
            "get": operation(
                "Closed positions, last closed first",
                obj(
                    ok=BOOL,
                    trades={"type": "array", "items": trade},
                    total=INT,
                    page=INT,
                    per_page=INT,
                    time_zone=ZONE,
                ),
                params=[
                    *FILTERS,
                    query("page", {**INT, "minimum": 1, "default": 1}),
                    query("per_page", {**INT, "minimum": 1, "maximum": 500, "default": 50}),
                ],
                errors=r,
            )
        },
        "/api/dashboard/metrics": {
            "get": operation(
                "Metric cards",
                {"allOf": [ref("Metrics"), obj(time_zone=ZONE)]},
                params=FILTERS,
                errors=r,
            )
        },
        "/api/dashboard/chart-data": {
            "get": operation(
                "Cumulative PnL and drawdown per trade",
                list_of("points", "ChartPoint", time_zone=ZONE),
                params=FILTERS,
                errors=r,
            )
        },
        "/api/dashboard/calendar": {
            "get": operation(
                "Daily PnL of one month",
                obj(
                    ok=BOOL,
                    month=STR,
                    pnl=MONEY,
                    trades=INT,
                    days={"type": "array", "items": ref("CalendarDay")},
                    time_zone=ZONE,
                ),
                params=[
                    query(
                        "month",
                        {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                        "a month of the user's time_zone; default: this month",
                    ),
                    query("recorder_id", INT),
                ],
                errors=r,
            )
        },
    }


def _session_paths() -> dict[str, Any]:
    creds = obj(email=STR, password=STR)
    return {
        "/login": {
            "get": {
                "summary": "Login form (HTML)",
                "security": [],
                "responses": {"200": {"description": "HTML"}},
            },
            "post": {
                **operation(
                    "Log in; answers a CSRF token for later writes",
                    obj(ok=BOOL, user=obj(id=INT, email=STR), csrf_token=STR),
                    errors=("400", "401", "422", "429"),
                ),
                "security": [],
                "requestBody": {
                    "content": {
                        "application/json": {"schema": creds},
                        "application/x-www-form-urlencoded": {"schema": creds},
                    }
                },
            },
        },
        "/logout": {"post": operation("Log out", obj(ok=BOOL), errors=("403",))},
        "/healthz": {
            "get": {**operation("Liveness probe", obj(ok=BOOL), errors=()), "security": []}
        },
        "/api/csrf-token": {
            "get": {
                **operation(
                    "CSRF token of this session, for X-CSRFToken",
                    obj(ok=BOOL, csrf_token=STR),
                    errors=(),
                ),
                "security": [],
            }
        },
        "/api/status": {
            "get": operation(
                "Health of each service",
                obj(
                    ok=BOOL,
                    services={
                        "type": "object",
                        "additionalProperties": {"enum": ["ok", "degraded", "down"]},
                    },
                    price_feed=nullable({"type": "object"}),
                ),
            )
        },
        "/api/status/metrics": {
            "get": operation(
                "The services' own /metrics figures (webhook answers, engine batches, "
                "stream lag and pending, orders, your limiter budgets, the feed), "
                "for the Control Center",
                obj(
                    ok=BOOL,
                    services={
                        "type": "object",
                        "additionalProperties": obj(
                            up=BOOL,
                            samples={
                                "type": "array",
                                "items": obj(
                                    name=STR,
                                    labels={"type": "object", "additionalProperties": STR},
                                    value={"type": "number"},
                                ),
                            },
                        ),
                    },
                ),
            )
        },
        "/api/openapi.json": {
            "get": {**operation("This document", {"type": "object"}, errors=()), "security": []}
        },
    }


def _api_key_paths() -> dict[str, Any]:
    key = obj(
        id=INT,
        name=STR,
        prefix={**STR, "description": "the key's first characters"},
        created_at=TIME,
        last_used_at=TIME,
        revoked_at=TIME,
    )
    me = obj(
        ok=BOOL,
        id=INT,
        email=STR,
        is_admin={**BOOL, "description": "an operator (sets the shared price feed's session)"},
        manual_confirm_above={
            **INT,
            "description": "the manual ticket needs `confirm: true` above this many contracts",
        },
        time_zone={
            **STR,
            "description": "IANA zone of the pages, the dashboard's days and its CSV; "
            "the API's times stay UTC",
        },
    )
    return {
        "/api/api-keys": {
            "get": operation(
                "Your API keys (never the key itself)",
                obj(ok=BOOL, api_keys={"type": "array", "items": key}),
            ),
            "post": operation(
                "Make an API key; `key` is in this answer only, and stored hashed",
                {"allOf": [key, obj(ok=BOOL, key=STR)]},
                status="201",
                body="ApiKeyCreate",
                errors=("400", "401", "403", "422"),
            ),
        },
        "/api/me": {
            "get": operation("You, and your preferences", me),
            "put": operation(
                "Change your preferences; only the fields sent change",
                me,
                body="Preferences",
                errors=("400", "401", "403", "422"),
            ),
        },
        "/api/api-keys/{key_id}": {
            "parameters": [path_param("key_id", INT)],
            "delete": operation(
                "Revoke the key; it stops working at once",
                {"allOf": [key, obj(ok=BOOL)]},
                errors=("401", "403", "404"),
            ),
        },
    }


def _account_security_paths() -> dict[str, Any]:
    change = {
        "type": "object",
        "required": ["current_password", "new_password"],
        "properties": {
            "current_password": STR,
            "new_password": {
                **STR,
                "description": "12 to 128 characters, not the email, not common or guessable",
            },
        },
    }
    login = obj(
        created_at=TIME,
        last_seen_at=TIME,
        expires_at=TIME,
        user_agent=STR,
        address=STR,
        current={**BOOL, "description": "the session this request came with"},
    )
    ended = {**INT, "description": "how many browser sessions were logged out"}
    return {
        "/api/password": {
            "post": {
                **operation(
                    "Change your password; your other browser sessions are logged out "
                    "(403: the current password is wrong; 422: the new one breaks a rule)",
                    obj(ok=BOOL, password_changed_at=TIME, sessions_ended=ended),
                    errors=("400", "401", "403", "422", "429"),
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": change}},
                },
            }
        },
        "/api/sessions": {
            "get": operation(
                "Your live browser sessions (never their ids)",
                obj(ok=BOOL, sessions={"type": "array", "items": login}),
            )
        },
        "/api/sessions/end-all": {
            "post": operation(
                "Log out everywhere: every browser session of yours ends, this one too",
                obj(ok=BOOL, sessions_ended=ended),
                errors=("401", "403"),
            )
        },
    }


def _tradingview_paths() -> dict[str, Any]:
    view = obj(
        ok=BOOL,
        can_edit={**BOOL, "description": "whether you are an operator, who alone sets it"},
        configured={**BOOL, "description": "an operator has set the feed's session"},
        set_by_operator=BOOL,
        updated_at=nullable(STR),
        own_cookies_ignored={
            **BOOL,
            "description": "cookies you stored before only operators could; unused, deletable",
        },
        connected={**BOOL, "description": "the feed's quote source is connected"},
        quotes={"enum": ["real-time", "delayed", "simulated", "replay", None]},
        in_use=BOOL,
        authenticated=nullable(BOOL),
        token_expires_at=nullable(STR),
        error=nullable(STR),
        price_source=STR,
        how_to_refresh=STR,
        source={
            "enum": ["cookies", "sign-in", None],
            "description": "how the stored session was obtained: pasted, or by the feed signing in",
        },
        credentials={
            "type": ["object", "null"],
            "properties": {"username_hint": nullable(STR), "saved_at": STR},
            "description": "the saved sign-in (never the secrets; the hint only for operators)",
        },
        renewed_at={**TIME, "description": "the feed's last successful sign-in"},
        last_attempt_at={**TIME, "description": "the feed's last sign-in attempt"},
        last_error={**nullable(STR), "description": "why the last sign-in failed, plainly"},
        renewals_stopped={
            **BOOL,
            "description": "a captcha or a refused code stopped the sign-ins until the sign-in "
            "is saved again",
        },
    )
    not_operator = ("401", "403")
    return {
        "/api/tradingview/session": {
            "get": operation(
                "The price feed's TradingView session (shared by every user; set by an "
                "operator): whether it is set and how the feed is doing, never the cookies "
                "nor whose they are",
                view,
            ),
            "post": operation(
                "Operators only (403 otherwise; `justtrades user admin EMAIL` makes one): store "
                "the feed's TradingView session cookies (encrypted); the feed uses them without "
                "a restart",
                view,
                body="TradingViewCookies",
                errors=("400", *not_operator, "422"),
            ),
            "delete": operation(
                "Operators: forget the feed's session. Anyone else: delete cookies of your own "
                "that the feed ignores (403 when you have none)",
                view,
                errors=not_operator,
            ),
        },
        "/api/tradingview/credentials": {
            "post": operation(
                "Operators only: store the TradingView sign-in (username, password, the base32 "
                "authenticator key) encrypted, never shown again; the feed signs in with it "
                "when the cookies are refused or about to expire. 422 names a bad field",
                view,
                body="TradingViewCredentials",
                errors=("400", *not_operator, "422"),
            ),
            "delete": operation(
                "Operators only: forget the feed's TradingView sign-in",
                view,
                errors=not_operator,
            ),
        },
    }


def _subaccount_paths() -> dict[str, Any]:
    return {
        "/api/subaccounts/{subaccount_id}": {
            "parameters": [path_param("subaccount_id", INT)],
            "get": operation(
                "The account view: the broker's positions with open PnL at the feed's last "
                "price, realized PnL and trades of the trade date, working orders",
                "SubaccountView",
                errors=("401", "404"),
            ),
        }
    }


@cache
def build_document() -> dict[str, Any]:
    template = "#/components/schemas/{model}"
    schemas = {
        **SCHEMAS,
        "RecorderCreate": RecorderCreate.model_json_schema(ref_template=template),
        "RecorderUpdate": RecorderUpdate.model_json_schema(ref_template=template),
        "TradingViewCookies": TradingViewCookies.model_json_schema(ref_template=template),
        "TradingViewCredentials": TradingViewCredentialsBody.model_json_schema(
            ref_template=template
        ),
        "PaperAccountCreate": PaperAccountCreate.model_json_schema(ref_template=template),
        "TradovateAccountCreate": TradovateAccountCreate.model_json_schema(ref_template=template),
        "TraderCreate": TraderCreate.model_json_schema(ref_template=template),
        "TraderUpdate": TraderUpdate.model_json_schema(ref_template=template),
        "TradingWindow": TradingWindow.model_json_schema(ref_template=template),
        "ManualTrade": ManualTrade.model_json_schema(ref_template=template, by_alias=True),
        "CopyGroupCreate": CopyGroupCreate.model_json_schema(ref_template=template),
        "Follower": Follower.model_json_schema(ref_template=template),
        "ApiKeyCreate": ApiKeyCreate.model_json_schema(ref_template=template),
        "Preferences": Preferences.model_json_schema(ref_template=template),
        "ExitPlanPreview": PreviewRequest.model_json_schema(ref_template=template),
        "RiskUpdate": RiskUpdate.model_json_schema(ref_template=template),
        **notification_schemas(template),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Just Trades UI API",
            "version": "1",
            "description": "Browser sessions must send the X-CSRFToken header on POST, PUT and "
            "DELETE; API-key requests (Authorization: Bearer <key>) need no CSRF token. "
            'Every error is {"ok": false, "error": "<plain sentence>"}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"session": []}],
        "paths": {
            **_session_paths(),
            **_recorder_paths(),
            **_read_paths(),
            **_tradingview_paths(),
            **account_paths(),
            **_subaccount_paths(),
            **execution_paths(),
            **_api_key_paths(),
            **notification_paths(),
            **_account_security_paths(),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key from Settings",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "responses": {
                f"E{code}": {
                    "description": text,
                    "content": {"application/json": {"schema": ref("Error")}},
                }
                for code, text in ERROR_TEXT.items()
            },
        },
    }


@bp.get("/api/openapi.json")
def document() -> ResponseReturnValue:
    return jsonify(build_document())
