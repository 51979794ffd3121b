"""Turning a recorder's position changes into orders for one trader (docs/contract.md §4), as pure
functions.

A trader holds the recorder's position times its multiplier, in whole contracts. An entry with
TP/SL is one bracket order (several target legs of an exit plan: one bracket per leg); an add or a
reduce is the order plus the protection re-armed for the new size; a close is a liquidation; a
reverse is the liquidation, then the new entry; a moved stop or target is one `move_stop` or
`move_target`. Exits the recorder's levels took (target legs, stops) send nothing: the broker
already holds the protective orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from services.position_engine.position_state import PositionChange, PositionState

ZERO = Decimal(0)
LEVEL_EXITS = ("tp", "sl", "breakeven", "trail")  # exits the broker's own orders take


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
    kind: str  # entry | add | reduce | close | move_stop | move_target
    side: str  # buy | sell
    quantity: Decimal  # whole contracts
    priority: str  # exit | entry
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    position_quantity: Decimal = ZERO  # the trader's size once this order is done, for protection
    targets: tuple[tuple[Decimal, Decimal], ...] = ()  # (price, contracts) per leg, when several
    entry_price: Decimal | None = None  # the recorder's average the levels came from


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
    shared: bool = False,
) -> tuple[list[PlannedIntent], list[str]]:
    """Orders for the trader from one signal's position changes, and why any part was skipped.

    `entries_allowed` is False outside the trading window or after the daily loss limit; exits go
    out regardless, so a trader can always get flat. `shared`: other traders hold this contract
    on the subaccount (§4b), so a close is an order for exactly this trader's contracts, never a
    liquidation of theirs.
    """
    planned: list[PlannedIntent] = []
    skipped: list[str] = []
    for change in changes:
        position = change.position
        if change.event == "closed":
            if position.exit_reason not in LEVEL_EXITS:
                planned.append(closing(position.side, position.quantity, rule, shared=shared))
            continue
        if change.moved:
            planned += level_moves(position, change.moved)
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
                _protected(
                    kind, _side(position.side, True), target - before, "entry", position, target
                )
            )
        elif target < before:
            planned.append(
                _protected(
                    "reduce", _side(position.side, False), before - target, "exit", position, target
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


def _protected(
    kind: str, side: str, quantity: Decimal, priority: str, position: PositionState, size: Decimal
) -> PlannedIntent:
    """An order with the protection for the trader's `size` after it: the stop and the target,
    or one leg per target of the exit plan that holds contracts."""
    legs = trader_legs(position, size)
    return PlannedIntent(
        kind,
        side,
        quantity,
        priority,
        position.tp_price,
        position.sl_price,
        size,
        legs if len(legs) >= 2 else (),
        position.avg_entry_price,
    )


def trader_legs(position: PositionState, size: Decimal) -> tuple[tuple[Decimal, Decimal], ...]:
    """The trader's `size` over the plan's open legs, in proportion to the recorder's allotment:
    each leg its share scaled and rounded, the last what is left (legs left with none dropped)."""
    if position.plan is None or position.plan_state is None or position.quantity <= 0:
        return ()
    open_legs = [
        (leg.level, leg.allotted)
        for leg in position.plan_state.legs(position.plan, position.quantity)
        if leg.allotted > 0
    ]
    scale = size / position.quantity
    out: list[tuple[Decimal, Decimal]] = []
    left = size
    for i, (level, allotted) in enumerate(open_legs):
        last = i == len(open_legs) - 1
        share = left if last else min(left, contracts(allotted, scale))
        if share > 0:
            out.append((level, share))
            left -= share
    return tuple(out)


def level_moves(position: PositionState, moved: tuple[str, ...]) -> list[PlannedIntent]:
    """`move_stop` / `move_target` for the levels a signal moved (nothing for a level removed)."""
    side = _side(position.side, False)
    planned = []
    if "stop" in moved and position.sl_price is not None:
        planned.append(PlannedIntent("move_stop", side, ZERO, "exit", None, position.sl_price))
    if "target" in moved and position.tp_price is not None:
        planned.append(PlannedIntent("move_target", side, ZERO, "exit", position.tp_price, None))
    return planned


def closing(
    position_side: str, quantity: Decimal, rule: TraderRule, *, shared: bool
) -> PlannedIntent:
    """The trader's way out of a recorder position of `quantity` on `position_side`: a liquidation
    of the contract when the trader holds it alone on the subaccount, else an opposite order for
    exactly its own contracts, its protective orders cancelled (`position_quantity` 0)."""
    side = _side(position_side, False)
    if not shared:
        return PlannedIntent("close", side, ZERO, "exit")
    size = _capped(rule, contracts(quantity, rule.multiplier))
    return PlannedIntent("reduce", side, size, "exit", position_quantity=ZERO)
