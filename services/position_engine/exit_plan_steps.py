"""Exit plans at work (contract §3b), pure: levels from an average, the allotment of the open
quantity to target legs, and the per-tick step (stop exit, leg fills, marks, stop moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal

from libs.common.futures.instruments import ContractSpec
from services.position_engine.exit_plans import Distance, ExitPlan
from services.position_engine.rules import (
    COST_QUANTUM,
    PRICE_QUANTUM,
    ZERO,
    Fill,
    PositionState,
    close_position,
)


@dataclass(frozen=True)
class PlanLevels:
    """A plan's prices for one average; `trail_points` is the trailing distance in points."""

    stop: Decimal | None
    legs: tuple[Decimal, ...]
    breakeven_trigger: Decimal | None = None
    breakeven_stop: Decimal | None = None
    trail_trigger: Decimal | None = None
    trail_points: Decimal | None = None


def grid_level(avg: Decimal, points: Decimal, above: bool, tick: Decimal) -> Decimal:
    """avg ± points on the tick grid, exact halves away from the average (§3). A zero distance
    rounds towards the profit side, so that a break-even stop never locks in a loss."""
    raw = avg + points if above else avg - points
    if points == 0:
        mode = ROUND_CEILING if above else ROUND_FLOOR
    else:
        mode = ROUND_HALF_UP if above else ROUND_HALF_DOWN  # prices are positive
    return (raw / tick).quantize(Decimal(1), rounding=mode) * tick


def trail_level(best: Decimal, points: Decimal, side: str, tick: Decimal) -> Decimal:
    """best − points for a long (+ for a short) on the nearest tick, exact halves away from best."""
    long = side == "long"
    raw = best - points if long else best + points
    mode = ROUND_HALF_DOWN if long else ROUND_HALF_UP
    return (raw / tick).quantize(Decimal(1), rounding=mode) * tick


def plan_levels(plan: ExitPlan, avg: Decimal, side: str, spec: ContractSpec) -> PlanLevels:
    """Stop, leg and trigger levels of `plan` for a position of `side` at average `avg`."""
    up = side == "long"  # targets and triggers of a long are above its average

    def level(distance: Distance | None, above: bool) -> Decimal | None:
        if distance is None:
            return None
        return grid_level(avg, distance.points(avg, spec), above, spec.tick_size)

    legs = tuple(
        grid_level(avg, leg.distance.points(avg, spec), up, spec.tick_size) for leg in plan.targets
    )
    b, t = plan.breakeven, plan.trail
    return PlanLevels(
        stop=level(plan.stop, not up),
        legs=legs,
        breakeven_trigger=level(b.trigger, up) if b else None,
        breakeven_stop=level(b.offset, up) if b else None,
        trail_trigger=level(t.trigger, up) if t else None,
        trail_points=t.distance.points(avg, spec) if t else None,
    )


def allot(plan: ExitPlan, open_qty: Decimal, filled_legs: Sequence[bool]) -> tuple[Decimal, ...]:
    """The open quantity per leg: each unfilled leg its qty or what is left, the last the rest;
    a filled leg holds none (it stays filled, so contracts added later go to the legs after it)."""
    left = open_qty
    out: list[Decimal] = []
    last = len(plan.targets) - 1
    for i, leg in enumerate(plan.targets):
        if filled_legs[i]:
            out.append(ZERO)
            continue
        share = left if i == last or leg.qty is None else min(Decimal(leg.qty), left)
        out.append(share)
        left -= share
    return tuple(out)


@dataclass(frozen=True)
class PlanState:
    """Where a position's plan stands. `avg` is the average (to PRICE_QUANTUM) the levels were
    set from; `best` the most favourable price since then; `filled` one flag per leg."""

    avg: Decimal
    levels: PlanLevels
    stop: Decimal | None
    stop_reason: str  # sl | breakeven | trail
    best: Decimal | None
    filled: tuple[bool, ...]

    @property
    def first_open_leg(self) -> Decimal | None:
        return next(
            (lv for lv, f in zip(self.levels.legs, self.filled, strict=True) if not f), None
        )


def start_plan(
    plan: ExitPlan,
    position: PositionState,
    spec: ContractSpec,
    filled: tuple[bool, ...] | None = None,
) -> PlanState:
    """The plan from the position's current average: the stop back at the plan's stop, break-even
    and trailing starting over; legs already `filled` stay filled."""
    avg = position.entry_cost / position.quantity
    levels = plan_levels(plan, avg, position.side, spec)
    flags = filled if filled is not None else (False,) * len(plan.targets)
    return PlanState(position.avg_entry_price, levels, levels.stop, "sl", None, flags)


def with_plan_levels(position: PositionState, state: PlanState) -> PositionState:
    """The position's `tp_price`/`sl_price`: the first unfilled leg and the current stop."""
    return replace(position, tp_price=state.first_open_leg, sl_price=state.stop)


@dataclass(frozen=True)
class PlanStep:
    """What one tick did: the position after it (marked, reduced by leg fills, closed when it
    exited), the plan state, the fills, and the unrealized PnL at the mark before the exits."""

    position: PositionState
    state: PlanState
    fills: tuple[Fill, ...]
    unrealized_pnl: Decimal
    marked: bool  # an excursion or an unrealized extreme moved, or a leg filled
    stop_moved: bool = False

    @property
    def closed(self) -> bool:
        return self.position.status == "closed"

    @property
    def exit_reason(self) -> str | None:
        return self.position.exit_reason if self.closed else None


def step_plan(
    state: PlanState,
    plan: ExitPlan,
    position: PositionState,
    price: Decimal,
    ts: int,
    spec: ContractSpec,
) -> PlanStep:
    """Apply one tick at `price` to an open `position` under `plan` (§3b, in its order); the
    caller has already checked that the tick applies to the position (§3)."""
    if position.avg_entry_price != state.avg:
        state = start_plan(plan, position, spec, state.filled)
    long = position.side == "long"
    if state.stop is not None and _reached(price, state.stop, not long):
        marked, unrealized = _mark(position, state.stop, spec)
        exit_change = close_position(marked, state.stop, state.stop_reason, ts, spec)
        return PlanStep(exit_change.position, state, exit_change.fills, unrealized, True)
    legs = _legs_reached(state, plan, position, price)
    closing = sum((qty for _, qty in legs), ZERO) == position.quantity and bool(legs)
    mark = state.levels.legs[legs[-1][0]] if closing else price
    marked, unrealized = _mark(position, mark, spec)
    changed = marked != position
    after, fills = _fill_legs(marked, state, legs, ts, spec)
    filled = tuple(f or any(i == j for j, _ in legs) for i, f in enumerate(state.filled))
    state = replace(state, filled=filled)
    if closing:
        return PlanStep(after, state, fills, unrealized, True)
    moved = _moved_stop(state, price, position.side, spec)
    after = with_plan_levels(after, moved)
    stop_moved = moved.stop != state.stop
    return PlanStep(after, moved, fills, unrealized, changed or bool(fills), stop_moved)


def _reached(price: Decimal, level: Decimal, above: bool) -> bool:
    return price >= level if above else price <= level


def _legs_reached(
    state: PlanState, plan: ExitPlan, position: PositionState, price: Decimal
) -> list[tuple[int, Decimal]]:
    """(leg, contracts) of every unfilled leg with contracts allotted that `price` reaches."""
    shares = allot(plan, position.quantity, state.filled)
    long = position.side == "long"
    return [
        (i, qty)
        for i, (qty, level) in enumerate(zip(shares, state.levels.legs, strict=True))
        if qty > 0 and _reached(price, level, long)
    ]


def _mark(
    position: PositionState, mark: Decimal, spec: ContractSpec
) -> tuple[PositionState, Decimal]:
    """Excursions and unrealized extremes at `mark`, with the quantity held (as §3)."""
    gain = (mark * position.quantity - position.entry_cost) * position.direction
    move = (gain / position.quantity).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)
    unrealized = gain * spec.point_value
    marked = replace(
        position,
        max_favorable=max(position.max_favorable, move),
        max_adverse=max(position.max_adverse, -move),
        worst_unrealized_pnl=min(position.worst_unrealized_pnl, unrealized),
        best_unrealized_pnl=max(position.best_unrealized_pnl, unrealized),
    )
    return (position if marked == position else marked), unrealized


def _fill_legs(
    position: PositionState,
    state: PlanState,
    legs: list[tuple[int, Decimal]],
    ts: int,
    spec: ContractSpec,
) -> tuple[PositionState, tuple[Fill, ...]]:
    """Each reached leg's contracts at its own level; the leg that takes the last contracts
    closes the position with `tp`, the others are partial closes (fills of kind `tp`)."""
    fills: list[Fill] = []
    for i, qty in legs:
        level = state.levels.legs[i]
        if qty == position.quantity:
            change = close_position(position, level, "tp", ts, spec)
            return change.position, (*fills, *change.fills)
        position, fill = _partial_close(position, qty, level, spec)
        fills.append(fill)
    return position, tuple(fills)


def _partial_close(
    position: PositionState, qty: Decimal, price: Decimal, spec: ContractSpec
) -> tuple[PositionState, Fill]:
    """Close `qty` at `price` with the arithmetic of a reduce (§3): the average stays."""
    removed_cost = (position.entry_cost * qty / position.quantity).quantize(
        COST_QUANTUM, rounding=ROUND_HALF_UP
    )
    pnl = (price * qty - removed_cost) * position.direction * spec.point_value
    reduced = replace(
        position,
        quantity=position.quantity - qty,
        entry_cost=position.entry_cost - removed_cost,
        realized_pnl=position.realized_pnl + pnl,
    )
    side = "sell" if position.side == "long" else "buy"
    return reduced, Fill("tp", side, qty, price, pnl, "tp")


def _moved_stop(state: PlanState, price: Decimal, side: str, spec: ContractSpec) -> PlanState:
    """Break-even and trailing proposals once their trigger is reached; the stop takes the most
    protective of itself and them, never loosens, and never reaches the price (it would be an
    exit at a better price than the market's). A tie between proposals counts as break-even."""
    long = side == "long"
    best = price if state.best is None else (max if long else min)(state.best, price)
    state = replace(state, best=best)
    lv = state.levels
    proposals: list[tuple[Decimal, str]] = []
    if lv.breakeven_trigger is not None and _reached(price, lv.breakeven_trigger, long):
        assert lv.breakeven_stop is not None
        proposals.append((lv.breakeven_stop, "breakeven"))
    if lv.trail_trigger is not None and _reached(price, lv.trail_trigger, long):
        assert lv.trail_points is not None
        proposals.append((trail_level(best, lv.trail_points, side, spec.tick_size), "trail"))
    for level, reason in proposals:
        tighter = state.stop is None or (level > state.stop if long else level < state.stop)
        if tighter and (level < price if long else level > price):
            state = replace(state, stop=level, stop_reason=reason)
    return state
