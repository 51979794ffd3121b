"""The risk desk's routes (docs/contract.md §4c): a subaccount's limits and its lock.

`PUT /api/subaccounts/<id>/risk` applies a tighter limit at once and a looser one from the next
trade date (`effective_from`); a lock set by a breach lasts until the next trade date and
`POST /api/subaccounts/<id>/unlock` refuses (409) while it holds. The executor judges the limits
and sets the lock; this module only stores what the user asked for.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict

from libs.common.account_risk import RiskLimits, change_limits, in_force, limits_json
from libs.common.futures.exchange_calendar import trade_date
from libs.common.serialize import usd
from libs.common.storage.models import Subaccount, SubaccountRisk
from services.ui.api.accounts import owned_subaccount
from services.ui.api.execution_schemas import Contracts, Money
from services.ui.api.schemas import FIELD_RULES, json_object, parse
from services.ui.context import db
from services.ui.errors import ApiError

bp = Blueprint("subaccount_risk", __name__, url_prefix="/api/subaccounts")

FIELD_RULES.update(
    {
        "daily_profit_target": "daily_profit_target must be null or a positive amount in USD",
        "trailing_drawdown": "trailing_drawdown must be null or a positive amount in USD",
        "max_trades_per_day": "max_trades_per_day must be null or a whole number from 1 to 10000",
    }
)


class Conflict(ApiError):
    status = 409


class RiskUpdate(BaseModel):
    """Only the limits present in the body change; null removes one (a loosening)."""

    model_config = ConfigDict(extra="forbid")

    daily_loss_limit: Money | None = None
    daily_profit_target: Money | None = None
    trailing_drawdown: Money | None = None
    max_trades_per_day: Contracts | None = None
    max_contracts: Contracts | None = None


def today() -> date:
    return trade_date(datetime.now(UTC))


def _limits_json(limits: RiskLimits | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {
        name: (usd(value) if isinstance(value, Decimal) else value)
        for name, value in asdict(limits).items()
    }


def risk_view(sub: Subaccount, row: SubaccountRisk | None, day: date) -> dict[str, Any]:
    now, later, from_ = in_force(row, day)
    until = sub.lock_until(day)
    return {
        "subaccount_id": sub.id,
        "risk": _limits_json(now),
        "pending": _limits_json(later),
        "effective_from": None if from_ is None else from_.isoformat(),
        "locked": until is not None,
        "locked_until": None if until is None else until.isoformat(),
        "lock_reason": None if until is None else sub.lock_reason,
    }


@bp.get("/<int:subaccount_id>/risk")
def get_risk(subaccount_id: int) -> ResponseReturnValue:
    sub = owned_subaccount(subaccount_id)
    return jsonify(ok=True, **risk_view(sub, db().get(SubaccountRisk, sub.id), today()))


@bp.put("/<int:subaccount_id>/risk")
def put_risk(subaccount_id: int) -> ResponseReturnValue:
    sub = owned_subaccount(subaccount_id)
    body = parse(RiskUpdate, json_object())
    session = db()
    row = session.get(SubaccountRisk, sub.id, with_for_update=True)
    day = today()
    current, pending, _ = in_force(row, day)
    # A change asked for while a looser one waits starts from what will be in force then.
    base = pending or current
    wanted = RiskLimits(
        **{
            f.name: getattr(body, f.name)
            if f.name in body.model_fields_set
            else getattr(base, f.name)
            for f in fields(RiskLimits)
        }
    )
    change = change_limits(current, wanted, day)
    if row is None:
        row = SubaccountRisk(subaccount_id=sub.id)
        session.add(row)
    for name, value in asdict(change.now).items():
        setattr(row, name, value)
    row.pending = None if change.later is None else limits_json(change.later)
    row.pending_from = None if change.later is None else change.effective_from
    session.commit()
    return jsonify(
        ok=True,
        **risk_view(sub, row, day),
    )


@bp.post("/<int:subaccount_id>/unlock")
def unlock(subaccount_id: int) -> ResponseReturnValue:
    sub = owned_subaccount(subaccount_id)
    day = today()
    if (until := sub.lock_until(day)) is not None:
        raise Conflict(
            f"The account {sub.name} is locked until {until.isoformat()} "
            f"({sub.lock_reason}); a risk lock cannot be lifted before the next trade date."
        )
    return jsonify(ok=True, locked=False)
