"""Which dated contract a ticker trades as today (futures.md §5), and whether Tradovate confirmed
it."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from libs.common import streams
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.instruments import parse_ticker
from libs.common.futures.rolls import (
    ROLL_RULES,
    ContractError,
    contract_year,
    last_trading_day,
    resolve_ticker,
    switch_date,
)
from services.ui.context import redis_client, settings
from services.ui.errors import ValidationFailed

bp = Blueprint("contracts", __name__, url_prefix="/api/contracts")


@bp.get("")
def contract_for() -> ResponseReturnValue:
    ticker = request.args.get("ticker", "").strip()
    if not ticker:
        raise ValidationFailed("ticker is required, e.g. ?ticker=MNQ1!")
    today = trade_date(datetime.now(UTC))
    try:
        contract = resolve_ticker(ticker, today)
    except ContractError as exc:
        raise ValidationFailed(
            f"ticker {ticker!r} does not name a futures contract: {exc}"
        ) from None
    root = parse_ticker(ticker).root
    month = contract[len(root)]
    full_year = contract_year(root, month, contract[len(root) + 1 :], today)
    confirmed = redis_client().hget(settings().stream(streams.CONFIRMED_CONTRACTS), contract)
    return jsonify(
        ok=True,
        ticker=ticker,
        root=root,
        trade_date=today.isoformat(),
        contract=contract,
        last_trading_day=last_trading_day(root, month, full_year).isoformat(),
        rolls_on=switch_date(root, month, full_year).isoformat() if root in ROLL_RULES else None,
        tradovate_contract_id=int(confirmed) if confirmed else None,
    )
