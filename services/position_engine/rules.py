"""The recorder rules of docs/contract.md §3 as pure functions: no Redis, no SQL, no clock.

`apply_signal` turns a signal into position changes and fills (the tick rules are in `ticks.py`).
Prices and money are `Decimal`; the open cost basis (Σ qty × price)
is kept exactly, so a flat-to-flat round trip realizes exactly the sum over its fills.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal

from libs.common.futures.instruments import ContractSpec, round_to_tick

ZERO = Decimal(0)
COST_QUANTUM = Decimal("1e-16")  # scale of the stored cost basis
PRICE_QUANTUM = Decimal("1e-12")  # scale of stored prices


@dataclass(frozen=True)
class RecorderSettings:
    default_qty: Decimal = Decimal(1)
    tp_ticks: int | None = None
    sl_ticks: int | None = None
    on_opposite: str = "reverse"  # reverse | close
    allow_dca: bool = True
    enabled: bool = True
    allow_delayed_exits: bool = False


@dataclass(frozen=True)
class SignalInput:
    signal_id: str
    symbol: str
    action: str | None  # buy | sell | close; None for a pure target signal
    price: Decimal | None = None
    qty: Decimal | None = None
    position_size: Decimal | None = None
    market_position: str | None = None  # long | short | flat
    received_ms: int = 0

    @property
    def is_target(self) -> bool:
        return self.position_size is not None or self.market_position is not None


@dataclass(frozen=True)
class PositionState:
    symbol: str
    side: str  # long | short
    quantity: Decimal
    entry_cost: Decimal  # Σ qty × price of the contracts still open
    opened_ms: int
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    max_favorable: Decimal = ZERO
    max_adverse: Decimal = ZERO
    worst_unrealized_pnl: Decimal = ZERO
    best_unrealized_pnl: Decimal = ZERO
    status: str = "open"
    exit_price: Decimal | None = None
    exit_reason: str | None = None
    closed_ms: int | None = None
    id: int | None = None  # the database row, carried through untouched

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.direction

    @property
    def avg_entry_price(self) -> Decimal:
        return (self.entry_cost / self.quantity).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)

    def unrealized_pnl(self, price: Decimal, spec: ContractSpec) -> Decimal:
        return (price * self.quantity - self.entry_cost) * self.direction * spec.point_value


@dataclass(frozen=True)
class Fill:
    kind: str  # entry | exit
    side: str  # buy | sell
    quantity: Decimal
    price: Decimal
    realized_pnl: Decimal = ZERO
    reason: str | None = None


@dataclass(frozen=True)
class PositionChange:
    """One position touched by a signal or tick: its new state and the fills that got it there."""

    event: str  # opened | changed | closed
    position: PositionState
    fills: tuple[Fill, ...] = ()


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


def _exit_side(side: str) -> str:
    return "sell" if side == "long" else "buy"


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
        symbol=symbol, side=side, quantity=qty, entry_cost=qty * price, opened_ms=ms
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


def _reduce(
    position: PositionState, qty: Decimal, price: Decimal, spec: ContractSpec
) -> PositionChange:
    """Close `qty` of a larger position at `price`; the average entry stays."""
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
    fill = Fill("exit", _exit_side(position.side), qty, price, pnl, "reduce")
    return PositionChange("changed", reduced, (fill,))


def close_position(
    position: PositionState, price: Decimal, reason: str, ms: int, spec: ContractSpec
) -> PositionChange:
    pnl = (price * position.quantity - position.entry_cost) * position.direction * spec.point_value
    closed = replace(
        position,
        status="closed",
        exit_price=price,
        exit_reason=reason,
        closed_ms=ms,
        realized_pnl=position.realized_pnl + pnl,
    )
    fill = Fill("exit", _exit_side(position.side), position.quantity, price, pnl, reason)
    return PositionChange("closed", closed, (fill,))


# --- signals ----------------------------------------------------------------------------------


def apply_signal(
    position: PositionState | None,
    signal: SignalInput,
    recorder: RecorderSettings,
    spec: ContractSpec,
    last_price: Decimal | None = None,
) -> SignalOutcome:
    """Apply one signal to the recorder's open position of its symbol (None when flat)."""
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
    if signal.is_target:
        outcome = _apply_target(position, signal, recorder, spec, price)
    else:
        outcome = _apply_action(position, signal, recorder, spec, price)
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
