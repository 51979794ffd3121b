"""`POST /api/exit-plans/preview`: the levels an exit plan would set for a sample entry, computed by
the same rules the engine runs (libs/common/exit_plans.py), so the recorder form's preview is
never a second implementation."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs.common.exit_plans import ExitPlanError, allot, check_plan, parse_exit_plan, plan_levels
from libs.common.futures.instruments import TickerError, canonical_symbol, contract_spec
from libs.common.serialize import num
from services.ui.api.schemas import json_object, parse
from services.ui.errors import ValidationFailed

bp = Blueprint("exit_plans", __name__, url_prefix="/api/exit-plans")

Price = Annotated[Decimal, Field(gt=0, lt=Decimal("1e12"), allow_inf_nan=False)]
Contracts = Annotated[int, Field(ge=1, le=10_000)]


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exits: dict[str, Any]
    symbol: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    side: Literal["long", "short"] = "long"
    price: Price
    qty: Contracts = 1


@bp.post("/preview")
def preview() -> ResponseReturnValue:
    body = parse(PreviewRequest, json_object())
    try:
        symbol = canonical_symbol(body.symbol)
    except TickerError:
        raise ValidationFailed(f"symbol {body.symbol!r} is not a ticker such as MNQ1!.") from None
    spec = contract_spec(symbol)
    try:
        plan = parse_exit_plan(body.exits, spec)
        check_plan(plan, spec, body.price)
    except ExitPlanError as exc:
        return jsonify(ok=False, error=f"{exc.field}: {exc.rule}.", field=exc.field), 422
    levels = plan_levels(plan, body.price, body.side, spec)
    shares = allot(plan, Decimal(body.qty), (False,) * len(plan.targets))
    return jsonify(
        ok=True,
        symbol=symbol,
        tick_size=num(spec.tick_size),
        point_value=num(spec.point_value),
        stop=num(levels.stop),
        targets=[
            {"level": num(level), "allotted": num(share)}
            for level, share in zip(levels.legs, shares, strict=True)
        ],
        breakeven=None
        if levels.breakeven_trigger is None
        else {"trigger": num(levels.breakeven_trigger), "stop": num(levels.breakeven_stop)},
        trail=None
        if levels.trail_trigger is None
        else {"trigger": num(levels.trail_trigger), "distance": num(levels.trail_points)},
    )
