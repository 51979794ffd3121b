"""Exit plans at work (contract §3b), pure: levels from an average, the allotment of the open
quantity to target legs, and the per-tick step (stop exit, leg fills, marks, stop moves).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from libs.common.exit_plans import ExitPlan, PlanLevels, allot, plan_levels, trail_level
from libs.common.futures.instruments import ContractSpec
from services.position_engine.position_state import (
    PRICE_QUANTUM,
    ZERO,
    Fill,
    PositionState,
    close_position,
    reduce_position,
)


@dataclass(frozen=True)
class LegView:
    level: Decimal
    allotted: Decimal  # open contracts this leg would close
    filled: Decimal  # contracts it closed
    done: bool


@dataclass(frozen=True)
class PlanState:
    """Where a position's plan stands. `avg` is the average (to PRICE_QUANTUM) the levels were
    set from; `best` the most favourable price since then; `filled` one flag per leg and
    `filled_qty` the contracts each leg took."""

    avg: Decimal
    levels: PlanLevels
    stop: Decimal | None
    stop_reason: str  # sl | breakeven | trail
    best: Decimal | None
    filled: tuple[bool, ...]
    filled_qty: tuple[Decimal, ...] = ()

    def legs(self, plan: ExitPlan, open_qty: Decimal) -> list[LegView]:
        """Each leg's level, the open contracts allotted to it and the contracts it filled."""
        shares = allot(plan, open_qty, self.filled)
        taken = self.filled_qty or (ZERO,) * len(self.filled)
        return [
            LegView(level, share, qty, done)
            for level, share, qty, done in zip(
                self.levels.legs, shares, taken, self.filled, strict=True
            )
        ]

    def to_json(self) -> dict[str, Any]:
        lv = self.levels
        return {
            "avg": str(self.avg),
            "stop": _text(self.stop),
            "stop_reason": self.stop_reason,
            "best": _text(self.best),
            "filled": list(self.filled),
            "filled_qty": [str(q) for q in self.filled_qty],
            "levels": {
                "stop": _text(lv.stop),
                "legs": [str(x) for x in lv.legs],
                "breakeven_trigger": _text(lv.breakeven_trigger),
                "breakeven_stop": _text(lv.breakeven_stop),
                "trail_trigger": _text(lv.trail_trigger),
                "trail_points": _text(lv.trail_points),
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanState:
        lv = data["levels"]
        levels = PlanLevels(
            stop=_dec(lv["stop"]),
            legs=tuple(Decimal(x) for x in lv["legs"]),
            breakeven_trigger=_dec(lv["breakeven_trigger"]),
            breakeven_stop=_dec(lv["breakeven_stop"]),
            trail_trigger=_dec(lv["trail_trigger"]),
            trail_points=_dec(lv["trail_points"]),
        )
        return cls(
            avg=Decimal(data["avg"]),
            levels=levels,
            stop=_dec(data["stop"]),
            stop_reason=data["stop_reason"],
            best=_dec(data["best"]),
            filled=tuple(bool(f) for f in data["filled"]),
            filled_qty=tuple(Decimal(q) for q in data.get("filled_qty", ())),
        )

    @property
    def first_open_leg(self) -> Decimal | None:
        return next(
            (lv for lv, f in zip(self.levels.legs, self.filled, strict=True) if not f), None
        )


def start_plan(
    plan: ExitPlan,
    position: PositionState,
    spec: ContractSpec,
    prior: PlanState | None = None,
) -> PlanState:
    """The plan from the position's current average: the stop back at the plan's stop, break-even
    and trailing starting over; legs the `prior` state filled stay filled."""
    avg = position.entry_cost / position.quantity
    levels = plan_levels(plan, avg, position.side, spec)
    n = len(plan.targets)
    flags = prior.filled if prior is not None else (False,) * n
    taken = prior.filled_qty if prior is not None and prior.filled_qty else (ZERO,) * n
    return PlanState(position.avg_entry_price, levels, levels.stop, "sl", None, flags, taken)


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
        state = start_plan(plan, position, spec, state)
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
    took = dict(legs)
    filled = tuple(f or i in took for i, f in enumerate(state.filled))
    taken = state.filled_qty or (ZERO,) * len(filled)
    filled_qty = tuple(q + took.get(i, ZERO) for i, q in enumerate(taken))
    state = replace(state, filled=filled, filled_qty=filled_qty)
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
        position, fill = reduce_position(position, qty, level, spec, kind="tp", reason="tp")
        fills.append(fill)
    return position, tuple(fills)


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


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
