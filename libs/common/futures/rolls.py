"""Expiries, first notice days and the front contract per root (docs/outside/futures.md §2.1,
§5)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from typing import Literal

from libs.common.futures.exchange_calendar import (
    add_business_days,
    business_day_on_or_before,
    is_business_day,
    last_business_day_of_month,
    nth_weekday,
)
from libs.common.futures.instruments import CONTRACTS, MONTH_CODES, TickerError, parse_ticker

ALL_MONTHS = MONTH_CODES
QUARTERLY = "HMUZ"
FRIDAY, WEDNESDAY = 4, 2


class ContractError(ValueError):
    """A ticker or contract that cannot be turned into a dated, tradable contract."""


class ExpiryRule(Enum):
    """Which §2.1 last-trading-day rule a product follows."""

    EQUITY_INDEX = "3rd Friday, or the business day before if that is a holiday"
    CRUDE = "3rd business day before the 25th of the month before (4th if the 25th is a holiday)"
    MICRO_CRUDE = "1 business day before the matching CL last trading day"
    NATURAL_GAS = "3rd-last business day of the month before"
    COMEX_METAL = "3rd-last business day of the contract month"
    TREASURY_LONG = "7th business day before the last business day of the contract month"
    TREASURY_SHORT = "last business day of the contract month"
    CME_FX = "2nd business day before the 3rd Wednesday of the contract month"


# Physically delivered products whose first notice day, not the LTD, ends their useful life. Both
# FND rules (metals, Treasuries) are unverified against the rulebooks (§2.1).
_HAS_FIRST_NOTICE = {ExpiryRule.COMEX_METAL, ExpiryRule.TREASURY_LONG, ExpiryRule.TREASURY_SHORT}

Anchor = Literal["ltd", "fnd", "expiry"]


@dataclass(frozen=True)
class RollRule:
    """When a root's continuous `1!` moves from one contract to the next (§5.3 step 2).

    switch = anchor, minus `calendar_days_before` calendar days (then back to a business day),
    minus `switch_offset_business_days` business days. From that trade date on, the next contract
    in `cycle` is the front. "expiry" and "ltd" are the same date for every root here (each
    expires on its last trading day); "expiry" just reads like the CME equity roll wording.
    """

    cycle: str  # month codes of the front cycle, in calendar order
    expiry: ExpiryRule
    switch_anchor: Anchor
    switch_offset_business_days: int
    calendar_days_before: int | None = None

    def __post_init__(self) -> None:
        if not self.cycle or self.cycle != "".join(c for c in MONTH_CODES if c in self.cycle):
            raise ValueError(f"cycle {self.cycle!r} must be month codes in calendar order")
        if self.switch_anchor not in ("ltd", "fnd", "expiry"):
            raise ValueError(f"unknown switch anchor {self.switch_anchor!r}")
        if self.switch_anchor == "fnd" and self.expiry not in _HAS_FIRST_NOTICE:
            raise ValueError(f"{self.expiry.name} has no first notice day to anchor on")
        # Negative offsets would put the switch after the contract stops trading.
        if self.switch_offset_business_days < 0 or (self.calendar_days_before or 0) < 0:
            raise ValueError("roll offsets count backwards and must not be negative")


def _equity(cycle: str = QUARTERLY) -> RollRule:
    # The CME roll date, 8 calendar days before expiry (trader rule, high confidence). When expiry
    # moves to a Thursday (June 2026, June 2027) this takes the literal reading, the Wednesday 8
    # days before, not the usual Thursday: unverified (§5.2, §7), override per root if CME says
    # otherwise.
    return RollRule(cycle, ExpiryRule.EQUITY_INDEX, "expiry", 0, calendar_days_before=8)


# The TradingView `MNQ1!`/`MES1!` switch, 3 business days before expiry: one observation only
# (U6 → Z6 on 2026-09-15), unverified. Pass it in `overrides` to follow the chart instead of CME.
EQUITY_TRADINGVIEW_RULE = RollRule(QUARTERLY, ExpiryRule.EQUITY_INDEX, "expiry", 3)

_METAL_GOLD = RollRule("GJMQZ", ExpiryRule.COMEX_METAL, "fnd", 1)
_METAL_SILVER = RollRule("HKNUZ", ExpiryRule.COMEX_METAL, "fnd", 1)
# Treasuries FND−5 and FX LTD−5 are §5.3 placeholders: TradingView's switch for them is unknown.
_TREASURY_LONG = RollRule(QUARTERLY, ExpiryRule.TREASURY_LONG, "fnd", 5)
_TREASURY_SHORT = RollRule(QUARTERLY, ExpiryRule.TREASURY_SHORT, "fnd", 5)
_FX = RollRule(QUARTERLY, ExpiryRule.CME_FX, "ltd", 5)

# Per-root defaults (§5.3). Editable; `front_contract(..., overrides=...)` replaces one per call.
ROLL_RULES: dict[str, RollRule] = {
    **{root: _equity() for root in ("ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K")},
    # CL1! switches 2 business days before the CL LTD (13 live switches matched, high confidence).
    "CL": RollRule(ALL_MONTHS, ExpiryRule.CRUDE, "ltd", 2),
    # MCL1! switches on the same trade date as CL1!: its LTD is CL's − 1, so its own LTD − 1.
    "MCL": RollRule(ALL_MONTHS, ExpiryRule.MICRO_CRUDE, "ltd", 1),
    # NG1! switches on the LTD itself (2020–2025 switch list, medium confidence).
    "NG": RollRule(ALL_MONTHS, ExpiryRule.NATURAL_GAS, "ltd", 0),
    # GC1! walks G J M Q Z (high confidence); MGC is assumed identical (medium, unverified).
    "GC": _METAL_GOLD,
    "MGC": _METAL_GOLD,
    # SI1! and HG1! walk H K N U Z (medium confidence); SIL is assumed = SI (unverified).
    "SI": _METAL_SILVER,
    "SIL": _METAL_SILVER,
    "HG": _METAL_SILVER,
    "ZB": _TREASURY_LONG,
    "ZN": _TREASURY_LONG,
    "ZF": _TREASURY_SHORT,
    "ZT": _TREASURY_SHORT,
    **{root: _FX for root in ("6E", "6J", "6B", "M6E")},
}


def _month_before(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _equity_ltd(year: int, month: int) -> date:
    # The index is not published on a stock-exchange holiday, so expiry moves to the day before.
    return business_day_on_or_before(nth_weekday(year, month, FRIDAY, 3))


def _crude_ltd(year: int, month: int) -> date:
    the_25th = date(*_month_before(year, month), 25)
    if is_business_day(the_25th):
        return add_business_days(the_25th, -3)
    # 3rd business day before the last business day preceding the 25th = 4 business days before.
    return add_business_days(the_25th, -4)


def _micro_crude_ltd(year: int, month: int) -> date:
    return add_business_days(_crude_ltd(year, month), -1)


def _natural_gas_ltd(year: int, month: int) -> date:
    return add_business_days(last_business_day_of_month(*_month_before(year, month)), -2)


def _metal_ltd(year: int, month: int) -> date:
    return add_business_days(last_business_day_of_month(year, month), -2)


def _treasury_long_ltd(year: int, month: int) -> date:
    return add_business_days(last_business_day_of_month(year, month), -7)


def _treasury_short_ltd(year: int, month: int) -> date:
    return last_business_day_of_month(year, month)


def _fx_ltd(year: int, month: int) -> date:
    return add_business_days(nth_weekday(year, month, WEDNESDAY, 3), -2)


_LTD: dict[ExpiryRule, Callable[[int, int], date]] = {
    ExpiryRule.EQUITY_INDEX: _equity_ltd,
    ExpiryRule.CRUDE: _crude_ltd,
    ExpiryRule.MICRO_CRUDE: _micro_crude_ltd,
    ExpiryRule.NATURAL_GAS: _natural_gas_ltd,
    ExpiryRule.COMEX_METAL: _metal_ltd,
    ExpiryRule.TREASURY_LONG: _treasury_long_ltd,
    ExpiryRule.TREASURY_SHORT: _treasury_short_ltd,
    ExpiryRule.CME_FX: _fx_ltd,
}


def _rule(root: str, overrides: dict[str, RollRule] | None = None) -> RollRule:
    if overrides and root in overrides:
        return overrides[root]
    try:
        return ROLL_RULES[root]
    except KeyError:
        raise ContractError(f"{root!r} is not a futures root this platform knows") from None


def _month_number(month_code: str) -> int:
    if len(month_code) != 1 or month_code not in MONTH_CODES:
        raise ContractError(f"{month_code!r} is not a futures month code ({MONTH_CODES})")
    return MONTH_CODES.index(month_code) + 1


def _ltd(rule: RollRule, month_code: str, year: int) -> date:
    return _LTD[rule.expiry](year, _month_number(month_code))


def _fnd(rule: RollRule, month_code: str, year: int) -> date | None:
    if rule.expiry not in _HAS_FIRST_NOTICE:
        return None
    return last_business_day_of_month(*_month_before(year, _month_number(month_code)))


def last_trading_day(root: str, month_code: str, year: int) -> date:
    """The contract's last trading day (§2.1); `year` is the full contract year."""
    return _ltd(_rule(root), month_code, year)


def first_notice_day(root: str, month_code: str, year: int) -> date | None:
    """Last business day of the month before, for metals and Treasuries; None for the others."""
    return _fnd(_rule(root), month_code, year)


def _switch(rule: RollRule, month_code: str, year: int) -> date:
    fnd = _fnd(rule, month_code, year) if rule.switch_anchor == "fnd" else None
    anchor = fnd or _ltd(rule, month_code, year)
    if rule.calendar_days_before is not None:
        anchor = business_day_on_or_before(anchor - timedelta(days=rule.calendar_days_before))
    return add_business_days(anchor, -rule.switch_offset_business_days)


def switch_date(
    root: str, month_code: str, year: int, overrides: dict[str, RollRule] | None = None
) -> date:
    """The first trade date on which this contract is no longer the root's front."""
    return _switch(_rule(root, overrides), month_code, year)


def dated_name(root: str, month_code: str, year: int) -> str:
    """Tradovate's contract name: root, month code, one-digit year (`MNQZ6`)."""
    _month_number(month_code)
    return f"{root}{month_code}{year % 10}"


def _cycle_from(cycle: str, year: int, month: int) -> Iterator[tuple[str, int]]:
    """The cycle's contracts from the given month on, without end."""
    while True:
        for code in cycle:
            if _month_number(code) >= month:
                yield code, year
        year, month = year + 1, 1


def front_contract(
    root: str, on: date, n: int = 1, overrides: dict[str, RollRule] | None = None
) -> str:
    """The dated name of the root's n-th contract on trade date `on` (n = 1 is the front)."""
    if n < 1:
        raise ContractError(f"continuous contract number must be 1 or more, got {n}")
    rule = _rule(root, overrides)
    # A contract's switch is never after its LTD, which is never after its contract month, so
    # nothing before `on`'s month can still be the front.
    contracts = _cycle_from(rule.cycle, on.year, on.month)
    for code, year in contracts:
        if _switch(rule, code, year) > on:
            break
    for _ in range(n - 1):
        code, year = next(contracts)
    return dated_name(root, code, year)


def _year_from_digit(rule: RollRule, month_code: str, digit: int, on: date) -> int:
    # §3 rule 4: the nearest year ending in `digit` whose contract has not expired by `on`.
    # A CL contract's LTD falls in the year before its contract year, so start a year back.
    first = on.year - 1 + (digit - (on.year - 1)) % 10
    for year in (first, first + 10):
        if _ltd(rule, month_code, year) >= on:
            return year
    raise AssertionError("unreachable: a contract ten years out has not expired")


def contract_year(root: str, month_code: str, year_digits: str, on: date) -> int:
    """The full contract year that 1, 2 or 4 written digits name on trade date `on`."""
    rule = _rule(root)
    if len(year_digits) == 1:
        return _year_from_digit(rule, month_code, int(year_digits), on)
    year = 2000 + int(year_digits) if len(year_digits) == 2 else int(year_digits)
    # Once expired, the one-digit name would point a decade ahead at a different contract.
    if _ltd(rule, month_code, year) < on:
        raise ContractError(f"{root}{month_code}{year} expired before trade date {on}")
    return year


def resolve_ticker(ticker: str, on: date) -> str:
    """The Tradovate contract name for an alert's ticker on trade date `on` (§5.3 steps 1–3)."""
    try:
        parsed = parse_ticker(ticker)
    except TickerError as exc:
        raise ContractError(str(exc)) from exc
    root = parsed.root
    if root not in CONTRACTS or root not in ROLL_RULES:
        raise ContractError(f"ticker {ticker!r} names no futures root this platform knows")
    if parsed.continuous is not None:
        return front_contract(root, on, parsed.continuous)
    if parsed.month is None or parsed.year is None:
        raise ContractError(
            f"ticker {ticker!r} names a product, not a contract: use {root}1! or a dated "
            f"ticker such as {front_contract(root, on)}"
        )
    return dated_name(root, parsed.month, contract_year(root, parsed.month, parsed.year, on))


def can_open(root: str, month_code: str, year: int, on: date) -> bool:
    """Whether a new position may be opened on trade date `on` (§5.3 step 5)."""
    rule = _rule(root)
    fnd = _fnd(rule, month_code, year)
    if fnd is not None and on >= fnd:
        return False
    return on < _ltd(rule, month_code, year)
