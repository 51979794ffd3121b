"""OpenAPI paths of the execution routes: accounts, traders, orders, manual trades, copy groups."""

from __future__ import annotations

from typing import Any

from services.ui.api.execution_schemas import CopyGroupUpdate
from services.ui.api.openapi_parts import (
    BOOL,
    INT,
    NUM,
    STR,
    nullable,
    obj,
    operation,
    path_param,
    query,
    redirect_operation,
    ref,
)


def execution_paths() -> dict[str, Any]:
    trader = obj(
        id=INT,
        recorder_id=INT,
        subaccount_id=INT,
        multiplier=NUM,
        enabled=BOOL,
        max_contracts=INT,
        daily_loss_limit=nullable(NUM),
        window=nullable(obj(start=STR, end=STR, tz=STR)),
        paused_until=nullable(STR),
        paused_reason=nullable(STR),
        created_at=STR,
        updated_at=STR,
    )
    order = obj(
        id=STR,
        trader_id=nullable(INT),
        subaccount_id=INT,
        source=STR,
        signal_id=nullable(STR),
        kind=STR,
        symbol=STR,
        contract=nullable(STR),
        side=STR,
        quantity=NUM,
        status=STR,
        broker_order_id=nullable(STR),
        fill_price=nullable(NUM),
        error=nullable(STR),
        attempts=INT,
    )
    follower = obj(
        subaccount_id=INT,
        multiplier=NUM,
        enabled=BOOL,
        inverted=BOOL,
        symbol_map={"type": "object", "additionalProperties": STR},
        max_contracts=nullable(INT),
        out_of_step=nullable(STR),
        checked_at=nullable(STR),
    )
    copy_group = obj(
        id=INT,
        name=STR,
        leader_subaccount_id=INT,
        enabled=BOOL,
        realign=BOOL,
        follow_risk_lock=BOOL,
        followers={"type": "array", "items": follower},
    )
    group_id = path_param("group_id", INT)
    trader_id = path_param("trader_id", INT)
    w = ("401", "403", "404", "409", "422")
    return {
        "/api/traders": {
            "get": operation(
                "Your traders",
                obj(ok=BOOL, traders={"type": "array", "items": trader}),
                params=[query("recorder_id", INT)],
                errors=("401", "404", "422"),
            ),
            "post": operation(
                "Link a recorder to a subaccount",
                trader,
                status="201",
                body="TraderCreate",
                errors=("400", *w),
            ),
        },
        "/api/traders/{trader_id}": {
            "parameters": [trader_id],
            "get": operation("One trader", trader, errors=("401", "404")),
            "put": operation(
                "Change a trader (switching it on clears a pause)",
                trader,
                body="TraderUpdate",
                errors=("400", *w),
            ),
            "delete": operation("Unlink", obj(ok=BOOL, id=INT), errors=("401", "403", "404")),
        },
        "/api/orders": {
            "get": operation(
                "Order intents, newest first, with their broker results",
                obj(ok=BOOL, orders={"type": "array", "items": order}),
                params=[
                    query("trader_id", INT),
                    query("subaccount_id", INT),
                    query("status", STR),
                    query("limit", INT),
                ],
                errors=("401", "404", "422"),
            ),
        },
        "/api/manual-trade": {
            "post": operation(
                "Buy, sell, close or flatten on one subaccount (copied to its followers)",
                obj(ok=BOOL, order=order, copies={"type": "array", "items": order}),
                status="202",
                body="ManualTrade",
                errors=("400", "401", "403", "404", "422"),
            ),
        },
        "/api/control/flatten-all": {
            "post": operation(
                "Kill switch: every trader off, every subaccount flattened",
                obj(
                    ok=BOOL,
                    traders_switched_off=INT,
                    flatten_orders={"type": "array", "items": order},
                ),
                status="202",
                errors=("401", "403"),
            ),
        },
        "/api/copy-groups": {
            "get": operation(
                "Your copy groups", obj(ok=BOOL, copy_groups={"type": "array", "items": copy_group})
            ),
            "post": operation(
                "A leader subaccount and followers with multipliers",
                copy_group,
                status="201",
                body="CopyGroupCreate",
                errors=("400", *w),
            ),
        },
        "/api/copy-groups/{group_id}": {
            "parameters": [group_id],
            "get": operation("One copy group", copy_group, errors=("401", "404")),
            "put": _copy_group_update(
                operation(
                    "Change a copy group: only the fields sent",
                    copy_group,
                    errors=("400", "401", "403", "404", "422"),
                )
            ),
            "delete": operation(
                "Remove a copy group", obj(ok=BOOL, id=INT), errors=("401", "403", "404")
            ),
        },
        "/api/copy-groups/{group_id}/realign": {
            "parameters": [group_id],
            "post": operation(
                "Bring every follower in step with the leader now",
                obj(ok=BOOL, orders={"type": "array", "items": order}),
                status="202",
                errors=("401", "403", "404"),
            ),
        },
        "/api/contracts": {
            "get": operation(
                "The dated contract a ticker trades as today, and Tradovate's confirmation",
                obj(
                    ok=BOOL,
                    ticker=STR,
                    root=STR,
                    trade_date=STR,
                    contract=STR,
                    last_trading_day=STR,
                    rolls_on=nullable(STR),
                    tradovate_contract_id=nullable(INT),
                ),
                params=[query("ticker", STR, "e.g. MNQ1! or MNQZ6")],
                errors=("401", "422"),
            ),
        },
        "/api/orders/{order_id}": {
            "parameters": [path_param("order_id", STR)],
            "get": operation("One order intent", order, errors=("401", "404")),
        },
    }


def account_paths() -> dict[str, Any]:
    account_id = path_param("account_id", INT)
    connect = operation(
        "Connect an account: paper (fills at the last price), or Tradovate with API credentials "
        "(logged in at once; nothing is stored when Tradovate refuses). Connecting the same "
        "Tradovate user again renews that account and answers 200.",
        "Account",
        status="201",
        errors=("400", "401", "403", "422", "502", "503"),
    )
    connect["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [ref("PaperAccountCreate"), ref("TradovateAccountCreate")]}
            }
        },
    }
    return {
        "/api/accounts": {
            "get": operation(
                "Your broker accounts with their subaccounts",
                obj(ok=BOOL, accounts={"type": "array", "items": ref("Account")}),
            ),
            "post": connect,
        },
        "/api/accounts/{account_id}": {
            "parameters": [account_id],
            "get": operation("One account", "Account", errors=("401", "404")),
            "delete": operation(
                "Remove an account, its subaccounts and their traders",
                obj(ok=BOOL, id=INT),
                errors=("401", "403", "404"),
            ),
        },
        "/api/accounts/{account_id}/refresh": {
            "parameters": [account_id],
            "post": operation(
                "Ask Tradovate for the subaccounts and their risk status again (409 "
                "when the account must be reconnected)",
                "Account",
                errors=("401", "403", "404", "409", "502", "503"),
            ),
        },
        **_risk_paths(),
        "/oauth/tradovate/start": {
            "get": redirect_operation(
                "Browser, logged in: off to Tradovate's consent page "
                "(login page first when logged out)",
                [
                    query(
                        "environment",
                        {"enum": ["live", "demo"], "default": "live"},
                        "the host that exchanges the code first",
                    )
                ],
                ("400", "422"),
            )
        },
        "/oauth/tradovate/callback": {
            "get": redirect_operation(
                "Browser: back from Tradovate; stores the account, "
                "then redirects to /api/accounts/{id}",
                [query("code", STR), query("state", STR), query("error", STR)],
                ("400", "401", "502", "503"),
            )
        },
    }


def _risk_paths() -> dict[str, Any]:
    """The risk desk (docs/contract.md §4c)."""
    subaccount_id = path_param("subaccount_id", INT)
    money = {"type": ["number", "null"], "description": "USD; null: no limit"}
    count = {"type": ["integer", "null"], "minimum": 1, "description": "null: no limit"}
    limits = obj(
        daily_loss_limit=money,
        daily_profit_target=money,
        trailing_drawdown=money,
        max_trades_per_day=count,
        max_contracts=count,
    )
    view = obj(
        ok=BOOL,
        subaccount_id=INT,
        risk=limits,
        pending={"anyOf": [limits, {"type": "null"}]},
        effective_from={"type": ["string", "null"], "format": "date"},
        locked=BOOL,
        locked_until={"type": ["string", "null"], "format": "date"},
        lock_reason=nullable(STR),
    )
    return {
        "/api/subaccounts/{subaccount_id}/risk": {
            "parameters": [subaccount_id],
            "get": operation(
                "The limits in force, those waiting, and the lock", view, errors=("401", "404")
            ),
            "put": operation(
                "Change limits (only those sent): tighter at once, looser from the next trade "
                "date (effective_from)",
                view,
                body="RiskUpdate",
                errors=("401", "404", "422"),
            ),
        },
        "/api/subaccounts/{subaccount_id}/unlock": {
            "parameters": [subaccount_id],
            "post": operation(
                "Lift the lock: 409 while it holds (it lasts until the next trade date)",
                obj(ok=BOOL, locked=BOOL),
                errors=("401", "404", "409"),
            ),
        },
    }


def _copy_group_update(op: dict[str, Any]) -> dict[str, Any]:
    """The PUT body inline (its followers are the registered `Follower`)."""
    schema = CopyGroupUpdate.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return op
