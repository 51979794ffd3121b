"""An account's risk desk (docs/contract.md §4c), pure: the limits a prop firm sets on a subaccount,
when a change of them takes effect, and whether the account's figures breach them.

Limits are judged on the account, not on a strategy: net PnL of the trade date *including open
PnL*, a trailing drawdown from the highest balance seen, a daily profit target, trades per day and
contracts held. A tighter limit applies at once; a looser one only from the next trade date, so a
limit can never be loosened in the heat of a session (and neither can a lock be lifted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from libs.common.futures.exchange_calendar import add_business_days

ZERO = Decimal(0)


@dataclass(frozen=True)
class RiskLimits:
    """None: no such limit. Money in USD; `trailing_drawdown` from the highest balance."""

    daily_loss_limit: Decimal | None = None
    daily_profit_target: Decimal | None = None
    trailing_drawdown: Decimal | None = None
    max_trades_per_day: int | None = None
    max_contracts: int | None = None

    def tighter_or_equal(self, other: RiskLimits) -> bool:
        """True when no limit of `self` is looser than the same limit of `other`: every limit of
        `other` is kept (None is no limit, the loosest) and none is raised."""
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if theirs is not None and (mine is None or mine > theirs):
                return False
        return True

    def tightest(self, other: RiskLimits) -> RiskLimits:
        """Each limit at the tighter of the two (a daily profit target too: reaching a lower
        target sooner stops trading sooner)."""
        values = {}
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            values[field.name] = (
                theirs if mine is None else mine if theirs is None else min(mine, theirs)
            )
        return RiskLimits(**values)


class RiskInputError(ValueError):
    """A limit that cannot be a limit; `field` names it."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field} {rule}")
        self.field = field
        self.rule = rule


def check_limits(limits: RiskLimits) -> None:
    """Raise RiskInputError for a limit that is zero or negative (null means none)."""
    for field in fields(limits):
        value = getattr(limits, field.name)
        if value is not None and value <= 0:
            kind = "a whole number of at least 1" if field.type == "int | None" else "above 0"
            raise RiskInputError(field.name, f"must be null (no limit) or {kind}")


@dataclass(frozen=True)
class LimitChange:
    """What a change of limits does: `now` applies at once (the tighter part), `later` from
    `effective_from` (the whole change, when it loosens anything)."""

    now: RiskLimits
    later: RiskLimits | None
    effective_from: date


def change_limits(current: RiskLimits, wanted: RiskLimits, today: date) -> LimitChange:
    """Tightening applies today; anything looser waits for the next trade date, and meanwhile
    the tighter of the two holds."""
    if wanted.tighter_or_equal(current):
        return LimitChange(wanted, None, today)
    return LimitChange(current.tightest(wanted), wanted, next_trade_date(today))


def next_trade_date(today: date) -> date:
    return add_business_days(today, 1)


def limits_from(values: Mapping[str, object]) -> RiskLimits:
    """Limits from their stored form (money as text, counts as numbers; absent or null: none)."""

    def money(name: str) -> Decimal | None:
        value = values.get(name)
        return None if value is None else Decimal(str(value))

    def count(name: str) -> int | None:
        value = values.get(name)
        return None if value is None else int(str(value))

    return RiskLimits(
        daily_loss_limit=money("daily_loss_limit"),
        daily_profit_target=money("daily_profit_target"),
        trailing_drawdown=money("trailing_drawdown"),
        max_trades_per_day=count("max_trades_per_day"),
        max_contracts=count("max_contracts"),
    )


def limits_json(limits: RiskLimits) -> dict[str, str | int | None]:
    """The stored form `limits_from` reads back."""
    return {
        f.name: None
        if getattr(limits, f.name) is None
        else (
            getattr(limits, f.name)
            if isinstance(getattr(limits, f.name), int)
            else str(getattr(limits, f.name))
        )
        for f in fields(RiskLimits)
    }


class RiskRow(Protocol):
    """A stored subaccount's limits (a `SubaccountRisk` row fits)."""

    daily_loss_limit: Decimal | None
    daily_profit_target: Decimal | None
    trailing_drawdown: Decimal | None
    max_trades_per_day: int | None
    max_contracts: int | None
    pending: dict[str, Any] | None
    pending_from: date | None


def in_force(row: RiskRow | None, today: date) -> tuple[RiskLimits, RiskLimits | None, date | None]:
    """The limits in force `today`, the looser ones still waiting and from when."""
    if row is None:
        return RiskLimits(), None, None
    current = RiskLimits(
        row.daily_loss_limit,
        row.daily_profit_target,
        row.trailing_drawdown,
        row.max_trades_per_day,
        row.max_contracts,
    )
    pending = None if row.pending is None else limits_from(row.pending)
    return effective_limits(current, pending, row.pending_from, today)


def effective_limits(
    current: RiskLimits, pending: RiskLimits | None, pending_from: date | None, today: date
) -> tuple[RiskLimits, RiskLimits | None, date | None]:
    """The limits in force `today`, the looser ones still waiting and from when: a change that
    waited becomes the limits once its trade date has come."""
    if pending is None or pending_from is None:
        return current, None, None
    if today >= pending_from:
        return pending, None, None
    return current, pending, pending_from


@dataclass(frozen=True)
class AccountFigures:
    """An account at one moment: PnL of the trade date (realized and open), the balance it has
    made since its risk desk was set up (realized to date plus open), trades of the trade date
    and the largest position held on one contract."""

    realized_today: Decimal
    open_pnl: Decimal
    balance: Decimal
    high_balance: Decimal
    trades_today: int
    max_position: Decimal
    # The realized PnL is the broker's own figure (lower than ours: fees), not ours.
    realized_by_broker: bool = False

    @property
    def net_today(self) -> Decimal:
        return self.realized_today + self.open_pnl

    @property
    def net_words(self) -> str:
        """How the daily limits' messages show the net: "(net -$25.00 including open PnL)"."""
        whose = (
            "; realized as the broker reports it, fees included" if self.realized_by_broker else ""
        )
        return f"(net {_usd(self.net_today)} including open PnL{whose})"


@dataclass(frozen=True)
class Breach:
    rule: str  # daily_loss_limit | daily_profit_target | trailing_drawdown | max_trades_per_day
    # | max_contracts
    message: str
    flatten: bool  # the account is flattened, not only locked for entries


def breach(limits: RiskLimits, figures: AccountFigures) -> Breach | None:
    """The first limit the figures breach, in the order a prop firm would act on them."""
    net = figures.net_today
    if limits.daily_loss_limit is not None and net <= -limits.daily_loss_limit:
        return Breach(
            "daily_loss_limit",
            f"the daily loss limit of ${limits.daily_loss_limit:,.2f} was reached "
            f"{figures.net_words}",
            True,
        )
    if limits.trailing_drawdown is not None:
        floor = figures.high_balance - limits.trailing_drawdown
        if figures.balance <= floor:
            return Breach(
                "trailing_drawdown",
                f"the trailing drawdown of ${limits.trailing_drawdown:,.2f} was reached (balance "
                f"{_usd(figures.balance)}, highest {_usd(figures.high_balance)})",
                True,
            )
    if limits.daily_profit_target is not None and net >= limits.daily_profit_target:
        return Breach(
            "daily_profit_target",
            f"the daily profit target of ${limits.daily_profit_target:,.2f} was reached "
            f"{figures.net_words}",
            True,
        )
    if limits.max_contracts is not None and figures.max_position > limits.max_contracts:
        return Breach(
            "max_contracts",
            f"{figures.max_position} contracts held on one contract, above the maximum of "
            f"{limits.max_contracts}",
            True,
        )
    if limits.max_trades_per_day is not None and figures.trades_today >= limits.max_trades_per_day:
        return Breach(
            "max_trades_per_day",
            f"{figures.trades_today} trades today: the maximum of {limits.max_trades_per_day} "
            "is reached, no new entries until the next trade date",
            False,
        )
    return None


def _usd(amount: Decimal) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def with_high(figures: AccountFigures) -> AccountFigures:
    """The figures with the highest balance moved up to this balance when it is a new high."""
    if figures.balance > figures.high_balance:
        return replace(figures, high_balance=figures.balance)
    return figures


def room(limits: RiskLimits, figures: AccountFigures) -> dict[str, Decimal | int | None]:
    """How far each limit is from breaching, in its own unit (USD, trades, contracts); None for a
    limit not set. What the account view shows beside each limit."""
    net = figures.net_today
    return {
        "daily_loss_limit": None
        if limits.daily_loss_limit is None
        else limits.daily_loss_limit + net,
        "daily_profit_target": None
        if limits.daily_profit_target is None
        else limits.daily_profit_target - net,
        "trailing_drawdown": None
        if limits.trailing_drawdown is None
        else figures.balance - (figures.high_balance - limits.trailing_drawdown),
        "max_trades_per_day": None
        if limits.max_trades_per_day is None
        else limits.max_trades_per_day - figures.trades_today,
        "max_contracts": None
        if limits.max_contracts is None
        else limits.max_contracts - int(figures.max_position),
    }
