"""Building blocks of the OpenAPI document: JSON-schema shorthands, the schemas of the
resources the API answers with, and its error responses."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]  # a piece of the OpenAPI document: a schema, parameter or operation

STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NUM, MONEY = {"type": "number"}, {"type": ["number", "null"], "description": "USD, to the cent"}
TIME = {"type": ["string", "null"], "format": "date-time"}


def nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


def obj(**props: Any) -> Schema:
    return {"type": "object", "properties": props}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(name: str, item: str, **extra: Any) -> Schema:
    return obj(ok=BOOL, **{name: {"type": "array", "items": ref(item)}}, **extra)


def query(name: str, schema: Schema, description: str = "") -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def operation(
    summary: str,
    ok: Schema | str,
    *,
    status: str = "200",
    params: list[Schema] | None = None,
    body: str | None = None,
    errors: tuple[str, ...] = ("401",),
) -> Schema:
    schema = ref(ok) if isinstance(ok, str) else ok
    responses: dict[str, Any] = {
        status: {"description": "Success", "content": {"application/json": {"schema": schema}}}
    }
    # Any request with parameters or a body can be unreadable (malformed JSON, a NUL character).
    for code in sorted({*errors, "400"} if params or body else set(errors)):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


def redirect_operation(summary: str, params: list[Schema], errors: tuple[str, ...]) -> Schema:
    """A browser route: a redirect, or an error body."""
    responses: dict[str, Any] = {"302": {"description": "Redirect"}}
    responses.update({code: {"$ref": f"#/components/responses/E{code}"} for code in errors})
    return {"summary": summary, "parameters": params, "responses": responses}


ERROR_TEXT = {
    "400": "The body is not JSON",
    "401": "Not authenticated",
    "403": "CSRF token missing or invalid",
    "404": "Not found (or another user's)",
    "409": "It exists already (e.g. this recorder is linked to this subaccount), or the broker "
    "connection needs the user (reconnect, new credentials)",
    "422": "A field or parameter is wrong, or the broker refused the credentials; "
    "the error says which",
    "429": "Too many attempts (e.g. wrong passwords); wait the Retry-After seconds",
    "502": "The broker did not answer",
    "503": "The broker asks to wait (too many attempts, or the user is locked out for a while)",
}


def _distance(description: str) -> Schema:
    return {
        "description": description + " — exactly one unit",
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "ticks": {"type": "integer", "minimum": 1},
            "points": {"type": "number", "exclusiveMinimum": 0},
            "usd": {"type": "number", "exclusiveMinimum": 0, "description": "per contract"},
            "percent": {"type": "number", "exclusiveMinimum": 0, "description": "of the average"},
        },
        "additionalProperties": False,
    }


EXIT_PLAN: Schema = {
    "type": "object",
    "description": "docs/contract.md §3b. Replaces tp_ticks/sl_ticks (its one-leg form).",
    "properties": {
        "stop": _distance("stop distance from the average entry"),
        "targets": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "description": "legs in increasing distance; every leg but the last has a whole "
            "qty (recorder contracts), the last takes the rest",
            "items": {**_distance("target distance"), "maxProperties": 2},
        },
        "breakeven": obj(
            trigger=_distance("move the stop once the price is this far in profit"),
            offset={
                **_distance("to the average plus this (0 allowed)"),
                "description": "below its trigger",
            },
        ),
        "trail": obj(
            trigger=_distance("start trailing once the price is this far in profit"),
            distance=_distance("the stop follows the best price by this"),
        ),
    },
    "additionalProperties": False,
}
TARGET_LEG = obj(
    level=NUM,
    allotted={**NUM, "description": "open contracts this leg closes when reached"},
    filled={**NUM, "description": "contracts it closed"},
)

SCHEMAS: dict[str, Any] = {
    "Error": {
        **obj(
            ok={"const": False},
            error=STR,
            fields={
                "type": "object",
                "additionalProperties": STR,
                "description": "on a 422 about body fields: each field's own sentence",
            },
        ),
        "required": ["ok", "error"],
    },
    "ExitPlan": EXIT_PLAN,
    "Recorder": obj(
        id=INT,
        name=STR,
        default_qty=NUM,
        max_qty=NUM,
        tp_ticks=nullable(INT),
        sl_ticks=nullable(INT),
        on_opposite={"enum": ["reverse", "close"]},
        allow_dca=BOOL,
        enabled=BOOL,
        allow_delayed_exits=BOOL,
        exits={"anyOf": [ref("ExitPlan"), {"type": "null"}]},
        webhook_token=STR,
        webhook_url=STR,
        open_positions=INT,
        created_at=TIME,
        updated_at=TIME,
    ),
    "Signal": obj(
        id=STR,
        signal_id=STR,
        recorder_id=INT,
        status={"enum": ["pending", "applied", "ignored", "rejected"]},
        reason=nullable(STR),
        position_id=nullable(INT),
        action=nullable(STR),
        ticker=nullable(STR),
        symbol=nullable(STR),
        price=nullable(NUM),
        qty=nullable(NUM),
        position_size=nullable(NUM),
        market_position=nullable(STR),
        received_at=TIME,
        processed_at=TIME,
        raw=STR,
    ),
    "Position": obj(
        id=INT,
        recorder_id=INT,
        symbol=STR,
        side={"enum": ["long", "short"]},
        quantity=NUM,
        avg_entry_price=NUM,
        tp_price=nullable(NUM),
        sl_price=nullable(NUM),
        status={"enum": ["open", "closed"]},
        realized_pnl=MONEY,
        exit_price=nullable(NUM),
        targets={
            "type": "array",
            "items": TARGET_LEG,
            "description": "each target leg (one for tp_ticks); tp_price is the first unfilled",
        },
        stop_price={**nullable(NUM), "description": "the current stop (= sl_price)"},
        stop_reason={"enum": ["sl", "breakeven", "trail", None]},
        exit_reason={
            "enum": [
                "tp",
                "sl",
                "breakeven",
                "trail",
                "signal",
                "reverse",
                "flatten",
                "manual",
                None,
            ]
        },
        max_favorable=NUM,
        max_adverse=NUM,
        worst_unrealized_pnl=MONEY,
        best_unrealized_pnl=MONEY,
        last_price={
            "type": ["number", "null"],
            "description": "open positions: the last price seen, or null",
        },
        unrealized_pnl={
            **MONEY,
            "description": "open positions: USD to the cent at last_price, or null",
        },
        opened_at=TIME,
        closed_at=TIME,
    ),
    "Fill": obj(
        id=INT,
        signal_id=nullable(STR),
        kind={"enum": ["entry", "exit", "tp"], "description": "tp: a target leg's part"},
        side={"enum": ["buy", "sell"]},
        quantity=NUM,
        price=NUM,
        realized_pnl=MONEY,
        reason=nullable(STR),
        filled_at=TIME,
    ),
    "Metrics": obj(
        ok=BOOL,
        net_pnl=MONEY,
        win_rate={"type": ["number", "null"], "description": "percent, 2 dp"},
        profit_factor={"type": ["number", "null"], "description": "null when there are no losses"},
        avg_win=MONEY,
        avg_loss=MONEY,
        expectancy=MONEY,
        gross_profit=MONEY,
        gross_loss=MONEY,
        max_drawdown={"type": "number", "description": "largest drop of cumulative PnL, positive"},
        trades=INT,
        wins=INT,
        losses=INT,
    ),
    "ChartPoint": obj(
        time=TIME,
        position_id=INT,
        pnl=MONEY,
        cumulative_pnl=MONEY,
        drawdown={"type": "number", "description": "cumulative minus running peak, <= 0"},
        worst_unrealized_pnl=MONEY,
    ),
    "CalendarDay": obj(date={"type": "string", "format": "date"}, pnl=MONEY, trades=INT),
    "Subaccount": obj(
        id=INT,
        name={**STR, "description": "Tradovate's accountSpec"},
        broker_account_id={**INT, "description": "Tradovate's accountId"},
        active=BOOL,
        risk_status={"enum": ["normal", "liquidate_only", "locked"]},
        refreshed_at=TIME,
    ),
    "Account": obj(
        id=INT,
        broker={"enum": ["paper", "tradovate"]},
        name=STR,
        environment={"enum": ["demo", "live", None]},
        auth_method={"enum": ["credentials", "oauth", None]},
        status={"enum": ["connected", "error"]},
        status_message=nullable(STR),
        token_expires_at=TIME,
        created_at=TIME,
        subaccounts={"type": "array", "items": ref("Subaccount")},
    ),
    "SubaccountView": obj(
        ok=BOOL,
        id=INT,
        name=STR,
        account_id=INT,
        broker={"enum": ["paper", "tradovate"]},
        risk_status={"enum": ["normal", "liquidate_only", "locked"]},
        trade_date={"type": "string", "format": "date", "description": "CME trade date"},
        positions={
            "type": "array",
            "items": obj(
                contract=STR,
                symbol=STR,
                net_qty={**NUM, "description": "signed contracts"},
                avg_price=nullable(NUM),
                last_price={**nullable(NUM), "description": "the feed's last price"},
                open_pnl=MONEY,
            ),
        },
        open_pnl={**MONEY, "description": "USD to the cent; null while a price is missing"},
        realized_pnl_today={**MONEY, "description": "USD to the cent, this trade date"},
        trades_today={
            **nullable(INT),
            "description": "fills that took a contract's net away from flat (or across it)",
        },
        broker_cash={
            **nullable(
                obj(
                    amount=MONEY,
                    realized_pnl={**MONEY, "description": "as the broker counts it, on `as_of`"},
                    as_of={**nullable(STR), "format": "date", "description": "its trade date"},
                )
            ),
            "description": "the broker's own cash balance (Tradovate); null for paper and "
            "before the broker said",
        },
        working_orders={
            "type": "array",
            "items": obj(
                id=INT,
                contract=STR,
                side={"enum": ["buy", "sell"]},
                order_type=STR,
                role={"enum": ["entry", "target", "stop", "bracket"]},
                quantity=NUM,
                price={**nullable(NUM), "description": "the limit, or the stop's trigger"},
                trader_id=nullable(INT),
            ),
        },
        updated_at=TIME,
        broker_view={
            **STR,
            "description": "Tradovate only, while the executor has no snapshot of the account "
            "socket yet: `waiting for the account socket` (the numbers are then null)",
        },
    ),
}
