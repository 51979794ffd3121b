"""Turning a recorder's position changes into orders for one trader (docs/contract.md §4), as pure
functions.

A trader holds the recorder's position times its multiplier, in whole contracts. An entry with
TP/SL is one bracket order; an add or a reduce is the order plus the protection re-armed for the
new size; a close is a liquidation; a reverse is the liquidation, then the new entry. TP/SL exits
of the recorder send nothing: the broker already holds the protective orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from services.position_engine.rules import PositionChange

ZERO = Decimal(0)


@dataclass(frozen=True)
class TraderRule:
    trader_id: int
    subaccount_id: int
    multiplier: Decimal = Decimal(1)
    max_contracts: int | None = None
    window_start: time | None = None
    window_end: time | None = None
    window_tz: str = "America/New_York"


@dataclass(frozen=True)
class PlannedIntent:
    kind: str  # entry | add | reduce | close
    side: str  # buy | sell
    quantity: Decimal  # whole contracts
    priority: str  # exit | entry
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    position_quantity: Decimal = ZERO  # the trader's size once this order is done, for protection


def contracts(quantity: Decimal, multiplier: Decimal) -> Decimal:
    """The trader's size for a recorder size: scaled, rounded half up to whole contracts."""
    return (quantity * multiplier).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def in_window(rule: TraderRule, at: datetime) -> bool:
    """Inside the trading window (which may run over midnight); always True without one."""
    if rule.window_start is None or rule.window_end is None:
        return True
    local = at.astimezone(ZoneInfo(rule.window_tz)).time()
    if rule.window_start <= rule.window_end:
        return rule.window_start <= local < rule.window_end
    return local >= rule.window_start or local < rule.window_end


def _side(position_side: str, opening: bool) -> str:
    buys = (position_side == "long") == opening
    return "buy" if buys else "sell"


def _capped(rule: TraderRule, size: Decimal) -> Decimal:
    return size if rule.max_contracts is None else min(size, Decimal(rule.max_contracts))


def plan_intents(
    changes: tuple[PositionChange, ...],
    rule: TraderRule,
    *,
    entries_allowed: bool = True,
) -> tuple[list[PlannedIntent], list[str]]:
    """Orders for the trader from one signal's position changes, and why any part was skipped.

    `entries_allowed` is False outside the trading window or after the daily loss limit; exits go
    out regardless, so a trader can always get flat.
    """
    planned: list[PlannedIntent] = []
    skipped: list[str] = []
    for change in changes:
        position = change.position
        if change.event == "closed":
            if position.exit_reason not in ("tp", "sl"):  # a TP/SL exit the broker's bracket took
                planned.append(PlannedIntent("close", _side(position.side, False), ZERO, "exit"))
            continue
        before = _before(change, rule) if change.event == "changed" else ZERO
        wanted = contracts(position.quantity, rule.multiplier)
        target = _capped(rule, wanted)
        if target > before and not entries_allowed:
            skipped.append(
                "entries are off for this trader now (trading window or daily loss limit)"
            )
        elif target > before:
            kind = "entry" if change.event == "opened" else "add"
            planned.append(
                PlannedIntent(
                    kind,
                    _side(position.side, True),
                    target - before,
                    "entry",
                    position.tp_price,
                    position.sl_price,
                    target,
                )
            )
        elif target < before:
            planned.append(
                PlannedIntent(
                    "reduce",
                    _side(position.side, False),
                    before - target,
                    "exit",
                    position.tp_price,
                    position.sl_price,
                    target,
                )
            )
        elif wanted > target:
            skipped.append(
                f"the trader already holds its maximum of {rule.max_contracts} contracts"
            )
        elif change.event == "opened":
            skipped.append(f"{position.quantity} × {rule.multiplier} rounds to no whole contract")
    return planned, skipped


def _before(change: PositionChange, rule: TraderRule) -> Decimal:
    """The trader's size before an add or a reduce, from the recorder size before it."""
    delta = sum((f.quantity if f.kind == "entry" else -f.quantity) for f in change.fills)
    return _capped(rule, contracts(change.position.quantity - delta, rule.multiplier))
