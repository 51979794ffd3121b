"""A recorder's position as the rules see it, and the two ways contracts leave it: a partial close
at a price (the average stays) and the close of the whole. Pure: no Redis, no SQL, no clock.

The open cost basis (Σ qty × price) is kept exactly, so a flat-to-flat round trip realizes
exactly the sum over its fills.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from libs.common.futures.instruments import ContractSpec

if TYPE_CHECKING:  # the plan modules import this one
    from libs.common.exit_plans import ExitPlan
    from services.position_engine.exit_plan_steps import PlanState

ZERO = Decimal(0)
COST_QUANTUM = Decimal("1e-16")  # scale of the stored cost basis
PRICE_QUANTUM = Decimal("1e-12")  # scale of stored prices


@dataclass(frozen=True)
class PositionState:
    symbol: str
    side: str  # long | short
    quantity: Decimal
    entry_cost: Decimal  # Σ qty × price of the contracts still open
    opened_ms: int
    tp_price: Decimal | None = None  # the first target leg not yet filled
    sl_price: Decimal | None = None  # the current stop
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
    # Under an exit plan (contract §3b): the plan, and where it stands. None: the one-leg plan of
    # the recorder's tp_ticks/sl_ticks, held in tp_price/sl_price alone.
    plan: ExitPlan | None = None
    plan_state: PlanState | None = None

    @property
    def direction(self) -> int:
        return 1 if self.side == "long" else -1

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.direction

    @property
    def avg_entry_price(self) -> Decimal:
        return (self.entry_cost / self.quantity).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)

    @property
    def stop_reason(self) -> str | None:
        """What set the stop: `sl` (the plan or a signal), `breakeven` or `trail`."""
        if self.plan_state is not None:
            return self.plan_state.stop_reason if self.plan_state.stop is not None else None
        return "sl" if self.sl_price is not None else None

    def unrealized_pnl(self, price: Decimal, spec: ContractSpec) -> Decimal:
        return (price * self.quantity - self.entry_cost) * self.direction * spec.point_value


@dataclass(frozen=True)
class Fill:
    kind: str  # entry | exit | tp (a target leg's part of the position)
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
    moved: tuple[str, ...] = ()  # levels an `update` signal moved without trading: stop, target


def exit_side(side: str) -> str:
    return "sell" if side == "long" else "buy"


def reduce_position(
    position: PositionState,
    qty: Decimal,
    price: Decimal,
    spec: ContractSpec,
    *,
    kind: str = "exit",
    reason: str = "reduce",
) -> tuple[PositionState, Fill]:
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
    return reduced, Fill(kind, exit_side(position.side), qty, price, pnl, reason)


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
    fill = Fill("exit", exit_side(position.side), position.quantity, price, pnl, reason)
    return PositionChange("closed", closed, (fill,))
