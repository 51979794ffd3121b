"""The recorder rules of docs/contract.md §3 and §3b as pure functions: no Redis, no SQL, no
clock.

`apply_signal` turns a signal into position changes and fills (the tick rules are in `ticks.py`,
the position itself in `position_state.py`, exit plans in `exit_plans.py`/`exit_plan_steps.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal

from libs.common.exit_plans import ExitPlan, ExitPlanError, check_plan, grid_level
from libs.common.futures.instruments import ContractSpec, round_to_tick
from services.position_engine.exit_plan_steps import start_plan, with_plan_levels
from services.position_engine.position_state import (
    COST_QUANTUM,
    PRICE_QUANTUM,
    ZERO,
    Fill,
    PositionChange,
    PositionState,
    close_position,
    reduce_position,
)

__all__ = [
    "COST_QUANTUM",
    "PRICE_QUANTUM",
    "ZERO",
    "Fill",
    "PositionChange",
    "PositionState",
    "RecorderSettings",
    "SignalInput",
    "SignalLevels",
    "SignalOutcome",
    "TEST_ALERT_REASON",
    "apply_signal",
    "close_position",
    "set_levels",
    "with_levels",
]


@dataclass(frozen=True)
class RecorderSettings:
    default_qty: Decimal = Decimal(1)
    tp_ticks: int | None = None
    sl_ticks: int | None = None
    on_opposite: str = "reverse"  # reverse | close
    allow_dca: bool = True
    enabled: bool = True
    allow_delayed_exits: bool = False
    exits: ExitPlan | None = None  # §3b; None: the one-leg plan of tp_ticks/sl_ticks


@dataclass(frozen=True)
class SignalLevels:
    """Levels a signal sets for the position it opens or holds (§3b): absolute prices (e.g. a
    Pine plot) or ticks from the average."""

    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    tp_ticks: int | None = None
    sl_ticks: int | None = None

    def __bool__(self) -> bool:
        return any(
            v is not None for v in (self.tp_price, self.sl_price, self.tp_ticks, self.sl_ticks)
        )


@dataclass(frozen=True)
class SignalInput:
    signal_id: str
    symbol: str
    action: str | None  # buy | sell | close | update; None for a pure target signal
    price: Decimal | None = None
    qty: Decimal | None = None
    position_size: Decimal | None = None
    market_position: str | None = None  # long | short | flat
    received_ms: int = 0
    levels: SignalLevels = SignalLevels()
    test: bool = False  # a test alert: recorded, never traded

    @property
    def is_target(self) -> bool:
        return self.position_size is not None or self.market_position is not None


@dataclass(frozen=True)
class SignalOutcome:
    status: str  # applied | ignored | rejected
    reason: str | None = None
    changes: tuple[PositionChange, ...] = ()
    price: Decimal | None = None  # the price the signal was applied at

    @property
    def open_position(self) -> PositionState | None:
        for change in reversed(self.changes):
            if change.position.status == "open":
                return change.position
        return None

    @property
    def resulting_position(self) -> PositionState | None:
        """The position the signal left open, else the one it closed."""
        if self.open_position is not None:
            return self.open_position
        return self.changes[-1].position if self.changes else None


TEST_ALERT_REASON = "a test alert: it reached the engine; nothing was traded"


def _ignored(reason: str) -> SignalOutcome:
    return SignalOutcome("ignored", reason)


def _rejected(reason: str) -> SignalOutcome:
    return SignalOutcome("rejected", reason)


# --- levels -----------------------------------------------------------------------------------


def _level(avg: Decimal, ticks: int, above: bool, tick: Decimal) -> Decimal:
    """avg ± ticks·tick on the tick grid; an exact half rounds away from the average."""
    raw = avg + ticks * tick if above else avg - ticks * tick
    mode = ROUND_HALF_UP if above else ROUND_HALF_DOWN  # prices are positive
    return (raw / tick).quantize(Decimal(1), rounding=mode) * tick


def with_levels(
    position: PositionState, recorder: RecorderSettings, spec: ContractSpec
) -> PositionState:
    """The levels after the average was set or changed: the position's exit plan started over
    (legs already filled stay filled), or the recorder's tp_ticks/sl_ticks."""
    if position.plan is not None:
        state = start_plan(position.plan, position, spec, position.plan_state)
        return with_plan_levels(replace(position, plan_state=state), state)
    avg = position.entry_cost / position.quantity
    long = position.side == "long"
    tp = _level(avg, recorder.tp_ticks, long, spec.tick_size) if recorder.tp_ticks else None
    sl = _level(avg, recorder.sl_ticks, not long, spec.tick_size) if recorder.sl_ticks else None
    return replace(position, tp_price=tp, sl_price=sl)


# --- position arithmetic ----------------------------------------------------------------------


def _side_of(action: str) -> str:
    return "long" if action == "buy" else "short"


def _entry_side(side: str) -> str:
    return "buy" if side == "long" else "sell"


def _open(
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    ms: int,
    recorder: RecorderSettings,
    spec: ContractSpec,
) -> PositionChange:
    position = PositionState(
        symbol=symbol,
        side=side,
        quantity=qty,
        entry_cost=qty * price,
        opened_ms=ms,
        plan=recorder.exits,
    )
    fill = Fill("entry", _entry_side(side), qty, price)
    return PositionChange("opened", with_levels(position, recorder, spec), (fill,))


def _add(
    position: PositionState,
    qty: Decimal,
    price: Decimal,
    recorder: RecorderSettings,
    spec: ContractSpec,
) -> PositionChange:
    grown = replace(
        position, quantity=position.quantity + qty, entry_cost=position.entry_cost + qty * price
    )
    fill = Fill("entry", _entry_side(position.side), qty, price)
    return PositionChange("changed", with_levels(grown, recorder, spec), (fill,))


# --- signals ----------------------------------------------------------------------------------


def apply_signal(
    position: PositionState | None,
    signal: SignalInput,
    recorder: RecorderSettings,
    spec: ContractSpec,
    last_price: Decimal | None = None,
) -> SignalOutcome:
    """Apply one signal to the recorder's open position of its symbol (None when flat)."""
    if signal.test:  # before anything else: whatever the recorder, a test never trades
        return _ignored(TEST_ALERT_REASON)
    if not recorder.enabled:
        return _ignored("the recorder is disabled")
    raw_price = signal.price if signal.price is not None else last_price
    if raw_price is None:
        return _rejected(
            f"the signal has no price and no tick of {signal.symbol} has been received yet"
        )
    if raw_price <= 0:
        return _rejected("the price must be positive")
    price = round_to_tick(raw_price, spec.tick_size)
    if price <= 0:
        return _rejected(
            f"the price {raw_price} rounds to zero on the tick grid of {signal.symbol}"
        )
    if signal.action == "update":
        return replace(_apply_update(position, signal, spec, price), price=price)
    if recorder.exits is not None and signal.action != "close":
        try:
            check_plan(recorder.exits, spec, price)
        except ExitPlanError as exc:
            return _ignored(f"the recorder's exit plan does not fit {signal.symbol}: {exc}")
    if signal.is_target:
        outcome = _apply_target(position, signal, recorder, spec, price)
    else:
        outcome = _apply_action(position, signal, recorder, spec, price)
    if signal.levels and outcome.status == "applied":
        outcome = _with_signal_levels(outcome, signal.levels, spec, price)
    return replace(outcome, price=price)


def _apply_action(
    position: PositionState | None,
    signal: SignalInput,
    recorder: RecorderSettings,
    spec: ContractSpec,
    price: Decimal,
) -> SignalOutcome:
    qty = signal.qty if signal.qty is not None else recorder.default_qty
    ms = signal.received_ms
    if signal.action == "close":
        if position is None:
            return _ignored(f"there is no open {signal.symbol} position to close")
        return SignalOutcome(
            "applied", changes=(close_position(position, price, "signal", ms, spec),)
        )
    if signal.action not in ("buy", "sell"):
        return _rejected(f"unknown action {signal.action!r}")
    side = _side_of(signal.action)
    if position is None:
        return SignalOutcome(
            "applied", changes=(_open(signal.symbol, side, qty, price, ms, recorder, spec),)
        )
    if position.side == side:
        if not recorder.allow_dca:
            return _ignored(f"already {side} {signal.symbol} and DCA is off for this recorder")
        return SignalOutcome("applied", changes=(_add(position, qty, price, recorder, spec),))
    if recorder.on_opposite == "close":
        return SignalOutcome(
            "applied", changes=(close_position(position, price, "signal", ms, spec),)
        )
    closed = close_position(position, price, "reverse", ms, spec)
    opened = _open(signal.symbol, side, qty, price, ms, recorder, spec)
    return SignalOutcome("applied", changes=(closed, opened))


def target_quantity(signal: SignalInput) -> Decimal:
    """The signed target of a Pine strategy signal; raises ValueError when its fields disagree."""
    mp = signal.market_position
    size = signal.position_size
    if mp == "flat":
        if size is not None and size != 0:
            raise ValueError(f"market_position is flat but position_size is {size}")
        return ZERO
    if size is None:
        raise ValueError(f"market_position is {mp} but position_size is missing")
    if (mp == "long" and size <= 0) or (mp == "short" and size >= 0):
        raise ValueError(f"position_size {size} disagrees with market_position {mp}")
    return size


def _apply_target(
    position: PositionState | None,
    signal: SignalInput,
    recorder: RecorderSettings,
    spec: ContractSpec,
    price: Decimal,
) -> SignalOutcome:
    try:
        target = target_quantity(signal)
    except ValueError as exc:
        return _rejected(str(exc))
    current = position.signed_quantity if position else ZERO
    ms = signal.received_ms
    if target == current:
        return _ignored(f"the position is already {target} {signal.symbol}")
    if position is None:
        side = "long" if target > 0 else "short"
        return SignalOutcome(
            "applied", changes=(_open(signal.symbol, side, abs(target), price, ms, recorder, spec),)
        )
    if target == 0:
        return SignalOutcome(
            "applied", changes=(close_position(position, price, "signal", ms, spec),)
        )
    if (target > 0) != (current > 0):
        closed = close_position(position, price, "reverse", ms, spec)
        side = "long" if target > 0 else "short"
        opened = _open(signal.symbol, side, abs(target), price, ms, recorder, spec)
        return SignalOutcome("applied", changes=(closed, opened))
    if abs(target) > abs(current):
        return SignalOutcome(
            "applied", changes=(_add(position, abs(target) - abs(current), price, recorder, spec),)
        )
    return SignalOutcome(
        "applied", changes=(_reduce(position, abs(current) - abs(target), price, spec),)
    )


def _reduce(
    position: PositionState, qty: Decimal, price: Decimal, spec: ContractSpec
) -> PositionChange:
    reduced, fill = reduce_position(position, qty, price, spec)
    return PositionChange("changed", reduced, (fill,))


# --- levels a signal sets (§3b) ---------------------------------------------------------------


def set_levels(
    position: PositionState, levels: SignalLevels, spec: ContractSpec, price: Decimal
) -> PositionState | str:
    """The open position with a signal's stop and/or single target, or why they cannot be set
    (a level on the wrong side of `price`, or a target for a plan with several legs open)."""
    long = position.side == "long"
    tick = spec.tick_size
    avg = position.entry_cost / position.quantity
    stop = _signal_level(levels.sl_price, levels.sl_ticks, avg, not long, tick)
    target = _signal_level(levels.tp_price, levels.tp_ticks, avg, long, tick)
    side = "long" if long else "short"
    for name, level, above in (("sl", stop, not long), ("tp", target, long)):
        if level is None:
            continue
        if level <= 0:
            return f"{name} rounds to {level}, which is not a price"
        if (level <= price) if above else (level >= price):
            where = "above" if above else "below"
            return (
                f"the {name} level {level} is not {where} the price {price}; the "
                f"{'stop' if name == 'sl' else 'target'} of a {side} must be {where} the market"
            )
    state = position.plan_state
    if state is None:
        return replace(
            position,
            tp_price=position.tp_price if target is None else target,
            sl_price=position.sl_price if stop is None else stop,
        )
    if stop is not None:
        state = replace(state, stop=stop, stop_reason="sl")
    if target is not None:
        open_legs = [i for i, done in enumerate(state.filled) if not done]
        if len(open_legs) != 1:
            return (
                f"a signal's tp sets a single target, but this position's exit plan has "
                f"{len(open_legs)} target legs open"
            )
        legs = list(state.levels.legs)
        legs[open_legs[0]] = target
        state = replace(state, levels=replace(state.levels, legs=tuple(legs)))
    return with_plan_levels(replace(position, plan_state=state), state)


def _signal_level(
    price: Decimal | None, ticks: int | None, avg: Decimal, above: bool, tick: Decimal
) -> Decimal | None:
    if price is not None:
        return round_to_tick(price, tick)
    if ticks is not None:
        return grid_level(avg, ticks * tick, above, tick)
    return None


def _with_signal_levels(
    outcome: SignalOutcome, levels: SignalLevels, spec: ContractSpec, price: Decimal
) -> SignalOutcome:
    """The outcome with the signal's levels on the position it left open; nothing applied when
    they cannot be set."""
    last = outcome.changes[-1] if outcome.changes else None
    if last is None or last.position.status != "open":
        return outcome
    leveled = set_levels(last.position, levels, spec, price)
    if isinstance(leveled, str):
        return _ignored(leveled)
    return replace(outcome, changes=(*outcome.changes[:-1], replace(last, position=leveled)))


def _apply_update(
    position: PositionState | None, signal: SignalInput, spec: ContractSpec, price: Decimal
) -> SignalOutcome:
    """`update`: move the open position's stop and/or single target, without trading."""
    if position is None:
        return _ignored(f"there is no open {signal.symbol} position to update")
    if not signal.levels:
        return _rejected("an update needs tp_price, sl_price, tp_ticks or sl_ticks")
    levels = signal.levels
    leveled = set_levels(position, levels, spec, price)
    if isinstance(leveled, str):
        return _ignored(leveled)
    moved = tuple(
        name
        for name, given in (
            ("stop", levels.sl_price is not None or levels.sl_ticks is not None),
            ("target", levels.tp_price is not None or levels.tp_ticks is not None),
        )
        if given
    )
    return SignalOutcome("applied", changes=(PositionChange("changed", leveled, (), moved),))
