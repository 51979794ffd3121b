"""The tick rules of docs/contract.md §3 and §3b: a tick marks a position to its price and takes its
TP/SL exit; under an exit plan it also fills target legs and moves the stop.

`apply_tick` takes one tick; `apply_tick_run` takes a run of consecutive ticks of one symbol in one
pass per position, and equals folding `apply_tick` over them (a property test holds it to that).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from itertools import accumulate
from operator import itemgetter, neg

from libs.common.futures.instruments import ContractSpec
from services.position_engine.exit_plan_steps import step_plan
from services.position_engine.position_state import (
    PRICE_QUANTUM,
    ZERO,
    Fill,
    PositionChange,
    PositionState,
    close_position,
)


@dataclass(frozen=True)
class TickOutcome:
    position: PositionState  # marked, and closed when an exit level was reached
    exit: PositionChange | None = None
    marked: bool = False  # an excursion or an unrealized extreme moved (or the plan did)
    unrealized_pnl: Decimal = ZERO
    held_exit: str | None = field(default=None)  # tp | sl reached on a delayed tick, not taken
    # Under an exit plan: target legs filled without closing the position (fills of kind `tp`)
    # and the stop's moves, each with the time of its tick.
    leg_fills: tuple[tuple[Fill, int], ...] = ()
    stop_moves: tuple[tuple[Decimal, str, int], ...] = ()


def _exit_level(position: PositionState, price: Decimal) -> tuple[str, Decimal] | None:
    tp, sl = position.tp_price, position.sl_price
    if position.side == "long":
        if tp is not None and price >= tp:
            return "tp", tp
        if sl is not None and price <= sl:
            return "sl", sl
    else:
        if tp is not None and price <= tp:
            return "tp", tp
        if sl is not None and price >= sl:
            return "sl", sl
    return None


def apply_tick(
    position: PositionState,
    price: Decimal,
    ts: int,
    spec: ContractSpec,
    *,
    delayed: bool = False,
    allow_delayed_exits: bool = False,
) -> TickOutcome | None:
    """Mark `position` to a tick at `price`; None when the tick predates the position."""
    if ts < position.opened_ms or position.status != "open":
        return None
    if position.plan is not None:
        return _apply_plan_tick(position, price, ts, spec, delayed and not allow_delayed_exits)
    level = _exit_level(position, price)
    held = None
    if level and delayed and not allow_delayed_exits:
        held, level = level[0], None
    mark = level[1] if level else price

    move = (
        (mark * position.quantity - position.entry_cost) / position.quantity * position.direction
    ).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)
    unrealized = (
        (mark * position.quantity - position.entry_cost) * position.direction * spec.point_value
    )
    marked = replace(
        position,
        max_favorable=max(position.max_favorable, move),
        max_adverse=max(position.max_adverse, -move),
        worst_unrealized_pnl=min(position.worst_unrealized_pnl, unrealized),
        best_unrealized_pnl=max(position.best_unrealized_pnl, unrealized),
    )
    changed = marked != position
    if level is None:
        return TickOutcome(marked if changed else position, None, changed, unrealized, held)
    exit_change = close_position(marked, level[1], level[0], ts, spec)
    return TickOutcome(exit_change.position, exit_change, True, unrealized)


@dataclass(frozen=True)
class TickRun:
    """Consecutive ticks of one symbol, with running highs and lows, so that a position takes the
    whole run in O(log n): only the first tick that reaches a level, and the highest and lowest
    price before it, can change the position. `apply_tick_run` equals folding `apply_tick`."""

    prices: tuple[Decimal, ...]
    ts: tuple[int, ...]
    delayed: tuple[bool, ...]
    highs: tuple[Decimal, ...]  # highs[i] = max(prices[: i + 1]), nondecreasing
    lows: tuple[Decimal, ...]  # lows[i] = min(prices[: i + 1]), nonincreasing
    min_ts: int
    any_delayed: bool

    @classmethod
    def of(cls, ticks: list[tuple[Decimal, int, bool]]) -> TickRun:
        prices, ts, delayed = zip(*ticks, strict=True)
        return cls.of_columns(prices, ts, delayed)

    @classmethod
    def of_columns(
        cls, prices: Sequence[Decimal], ts: Sequence[int], delayed: Sequence[bool]
    ) -> TickRun:
        """A run from its prices, times and delayed flags, one entry per tick in stream order."""
        return cls(
            tuple(prices),
            tuple(ts),
            tuple(delayed),
            tuple(accumulate(prices, max)),
            tuple(accumulate(prices, min)),
            min(ts),
            any(delayed),
        )

    @property
    def high(self) -> Decimal:
        return self.highs[-1]

    @property
    def low(self) -> Decimal:
        return self.lows[-1]

    @property
    def last_ts(self) -> int:
        return self.ts[-1]


def apply_tick_run(
    position: PositionState,
    run: TickRun,
    spec: ContractSpec,
    *,
    allow_delayed_exits: bool = False,
    folded: tuple[Decimal, Decimal] | None = None,
) -> TickOutcome | None:
    """Mark `position` to every tick of `run` in order, stopping at the first exit.

    `folded` is a (low, high) price range whose marks the position's extremes already hold: a run
    inside it that reaches no exit level cannot widen them (marks only grow with the distance from
    the average), so they are not computed again.
    """
    if position.status != "open":
        return None
    if position.plan is not None:  # legs and stop moves: tick by tick, unless nothing can change
        if leaves_unchanged(position, run, allow_delayed_exits=allow_delayed_exits, folded=folded):
            return TickOutcome(position, None, False, _unrealized(position, run.prices[-1], spec))
        return _fold_ticks(position, run, spec, allow_delayed_exits)
    if run.min_ts < position.opened_ms or (run.any_delayed and not allow_delayed_exits):
        return _fold_ticks(position, run, spec, allow_delayed_exits)
    first_exit = _first_exit(position, run)
    if first_exit is None and _within(run, folded):
        return TickOutcome(position, None, False, _unrealized(position, run.prices[-1], spec))
    end = len(run.prices) if first_exit is None else first_exit[0]  # ticks before the exit tick
    high = run.highs[end - 1] if end else None
    low = run.lows[end - 1] if end else None
    level = None if first_exit is None else first_exit[2]
    if level is not None:
        high = level if high is None or level > high else high
        low = level if low is None or level < low else low
    best, worst = (high, low) if position.side == "long" else (low, high)
    marked = _widened(position, best, worst, spec)
    last_mark = level if level is not None else run.prices[-1]
    unrealized = _unrealized(position, last_mark, spec)
    changed = marked is not position
    if first_exit is None:
        return TickOutcome(marked, None, changed, unrealized)
    exit_at, reason, level = first_exit
    exit_change = close_position(marked, level, reason, run.ts[exit_at], spec)
    return TickOutcome(exit_change.position, exit_change, True, unrealized)


def leaves_unchanged(
    position: PositionState,
    run: TickRun,
    *,
    allow_delayed_exits: bool = False,
    folded: tuple[Decimal, Decimal] | None = None,
) -> bool:
    """True when `apply_tick_run` would mark every tick of `run` and change nothing: the quick
    answer for the common case of prices inside the range the extremes already hold."""
    return (
        _within(run, folded)
        and position.status == "open"
        and run.min_ts >= position.opened_ms
        and not (run.any_delayed and not allow_delayed_exits)
        and _first_exit(position, run) is None
    )


def _within(run: TickRun, folded: tuple[Decimal, Decimal] | None) -> bool:
    return folded is not None and folded[0] <= run.low and run.high <= folded[1]


def _unrealized(position: PositionState, price: Decimal, spec: ContractSpec) -> Decimal:
    return (price * position.quantity - position.entry_cost) * position.direction * spec.point_value


def _first_exit(position: PositionState, run: TickRun) -> tuple[int, str, Decimal] | None:
    """Index, reason and level of the first tick that reaches TP or SL; None when none does."""
    long = position.side == "long"
    hits: list[tuple[int, str, Decimal]] = []  # TP first: on the same tick, TP wins
    for reason, level in (("tp", position.tp_price), ("sl", position.sl_price)):
        if level is None:
            continue
        if long == (reason == "tp"):  # an exit above: TP of a long, SL of a short
            if run.high >= level:
                hits.append((bisect_left(run.highs, level), reason, level))
        elif run.low <= level:
            hits.append((bisect_left(run.lows, -level, key=neg), reason, level))
    return min(hits, key=itemgetter(0)) if hits else None


def _widened(
    position: PositionState, best: Decimal | None, worst: Decimal | None, spec: ContractSpec
) -> PositionState:
    """Extremes after marks at `best` (most favourable price) and `worst` (least); the same
    object when none of them moves."""
    if best is None or worst is None:
        return position

    def move(price: Decimal) -> Decimal:
        return (
            (price * position.quantity - position.entry_cost)
            / position.quantity
            * position.direction
        ).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)

    favorable = max(position.max_favorable, move(best))
    adverse = max(position.max_adverse, -move(worst))
    worst_pnl = min(position.worst_unrealized_pnl, _unrealized(position, worst, spec))
    best_pnl = max(position.best_unrealized_pnl, _unrealized(position, best, spec))
    if (favorable, adverse, worst_pnl, best_pnl) == (
        position.max_favorable,
        position.max_adverse,
        position.worst_unrealized_pnl,
        position.best_unrealized_pnl,
    ):
        return position
    return replace(
        position,
        max_favorable=favorable,
        max_adverse=adverse,
        worst_unrealized_pnl=worst_pnl,
        best_unrealized_pnl=best_pnl,
    )


def _fold_ticks(
    position: PositionState, run: TickRun, spec: ContractSpec, allow_delayed_exits: bool
) -> TickOutcome | None:
    """The tick-by-tick path, for runs with ticks older than the position or delayed ticks."""
    result: TickOutcome | None = None
    changed = False
    leg_fills: tuple[tuple[Fill, int], ...] = ()
    stop_moves: tuple[tuple[Decimal, str, int], ...] = ()
    for price, ts, delayed in zip(run.prices, run.ts, run.delayed, strict=True):
        step = apply_tick(
            position, price, ts, spec, delayed=delayed, allow_delayed_exits=allow_delayed_exits
        )
        if step is None:
            continue
        changed = changed or step.marked
        leg_fills += step.leg_fills
        stop_moves += step.stop_moves
        result = replace(step, marked=changed, leg_fills=leg_fills, stop_moves=stop_moves)
        position = step.position
        if step.exit is not None:
            break
    return result


def _apply_plan_tick(
    position: PositionState, price: Decimal, ts: int, spec: ContractSpec, hold_exits: bool
) -> TickOutcome:
    """One tick under the position's exit plan (§3b). A delayed tick whose exits are held only
    marks the position: it fills no leg and moves no stop."""
    plan, state = position.plan, position.plan_state
    assert plan is not None and state is not None, "a plan position carries its plan state"
    if hold_exits:
        level = _exit_level(position, price)
        widened = _widened(position, price, price, spec)
        unrealized = _unrealized(position, price, spec)
        held = None if level is None else level[0]
        return TickOutcome(widened, None, widened is not position, unrealized, held)
    step = step_plan(state, plan, position, price, ts, spec)
    after = replace(step.position, plan_state=step.state)
    if after == position:  # the same object: callers tell "nothing changed" by identity
        after = position
    partial = tuple((f, ts) for f in step.fills if f.kind == "tp")
    stop = step.state.stop
    moves = ((stop, step.state.stop_reason, ts),) if step.stop_moved and stop is not None else ()
    exit_change = None
    if step.closed:
        exit_change = PositionChange(
            "closed", after, tuple(f for f in step.fills if f.kind != "tp")
        )
    return TickOutcome(
        after, exit_change, after != position, step.unrealized_pnl, None, partial, moves
    )
