"""The engine's book of open positions, held in memory between batches.

It is loaded from PostgreSQL once (at start, which is when the engine takes the lead) and again
after a batch that failed, or when a write finds its row gone or closed. Only the engine writes
positions: a recorder deleted from the UI goes through the engine's commands
(engine_commands.py), which drop its positions from the book too. A batch of ticks then reads
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.exit_plans import parse_exit_plan
from libs.common.storage.models import Position, Recorder
from services.position_engine.exit_plan_steps import PlanState
from services.position_engine.position_state import ZERO, PositionState


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def state_of(row: Position) -> PositionState:
    return PositionState(
        symbol=row.symbol,
        side=row.side,
        quantity=row.quantity,
        entry_cost=row.entry_cost,
        opened_ms=row.opened_ms,
        tp_price=row.tp_price,
        sl_price=row.sl_price,
        realized_pnl=row.realized_pnl,
        max_favorable=row.max_favorable,
        max_adverse=row.max_adverse,
        worst_unrealized_pnl=row.worst_unrealized_pnl,
        best_unrealized_pnl=row.best_unrealized_pnl,
        status=row.status,
        exit_price=row.exit_price,
        exit_reason=row.exit_reason,
        closed_ms=None,
        id=row.id,
        plan=None if row.exit_plan is None else parse_exit_plan(row.exit_plan),
        plan_state=None if row.plan_state is None else PlanState.from_json(row.plan_state),
    )


def plan_columns(state: PositionState) -> dict[str, object]:
    """The exit-plan columns of a position's row: the plan, where it stands, the stop's reason."""
    plan, progress = state.plan, state.plan_state
    return {
        "exit_plan": None if plan is None else plan.to_json(),
        "plan_state": None if plan is None or progress is None else plan_view(state),
        "stop_reason": state.stop_reason,
    }


def plan_view(state: PositionState) -> dict[str, object]:
    """The plan state as stored, with each leg's level, allotted and filled contracts (what the
    API and the events show as `targets`)."""
    assert state.plan is not None and state.plan_state is not None
    legs = state.plan_state.legs(state.plan, state.quantity if state.status == "open" else ZERO)
    return {
        **state.plan_state.to_json(),
        "targets": [
            {"level": str(leg.level), "allotted": str(leg.allotted), "filled": str(leg.filled)}
            for leg in legs
        ],
    }


@dataclass(eq=False)
class Tracked:
    """One position as the engine holds it; `written` is what its row holds."""

    id: int
    recorder_id: int
    user_id: int
    opened_at: datetime
    state: PositionState
    written: PositionState
    last_price: Decimal | None = None  # of the last tick applied, for position.marked
    # (low, high): prices whose marks the extremes already hold, since the average last changed.
    folded: tuple[Decimal, Decimal] | None = None

    def __getattr__(self, name: str) -> object:
        # Reads like a Position row (symbol, side, quantity, ...), for the events' payloads.
        if name.startswith("__") or name in ("state", "written"):
            raise AttributeError(name)
        return getattr(self.state, name)

    @property
    def exit_plan(self) -> object:
        return plan_columns(self.state)["exit_plan"]

    @property
    def plan_state(self) -> object:
        return plan_columns(self.state)["plan_state"]

    @property
    def closed_at(self) -> datetime | None:
        return None if self.state.closed_ms is None else ms_to_dt(self.state.closed_ms)

    def fold(self, low: Decimal, high: Decimal) -> None:
        if self.folded is not None:
            low, high = min(low, self.folded[0]), max(high, self.folded[1])
        self.folded = (low, high)


class OpenBook:
    """Open positions by (recorder, symbol) and by symbol."""

    def __init__(self, partition: int = 0, partitions: int = 1) -> None:
        # The engine partition whose recorders' positions it holds: K of N.
        self.partition, self.partitions = partition, partitions
        self.loaded = False
        self.open: dict[tuple[int, str], Tracked] = {}
        self.by_symbol: dict[str, list[Tracked]] = {}

    def load(self, session: Session) -> None:
        """The open positions of the recorders in the book's partition."""
        self.invalidate()
        query = (
            select(Position, Recorder.user_id)
            .join(Recorder, Recorder.id == Position.recorder_id)
            .where(Position.status == "open")
            .order_by(Position.id)
        )
        if self.partitions > 1:
            query = query.where(Position.recorder_id % self.partitions == self.partition)
        rows = session.execute(query).all()
        for row, user_id in rows:
            state = state_of(row)
            self.track(Tracked(row.id, row.recorder_id, user_id, row.opened_at, state, state))
        self.loaded = True

    def owns(self, recorder_id: int) -> bool:
        """Whether the recorder belongs to this book's partition."""
        return recorder_id % self.partitions == self.partition

    def invalidate(self) -> None:
        """Forget everything; the next batch loads the book again."""
        self.loaded = False
        self.open.clear()
        self.by_symbol.clear()

    def drop_recorder(self, recorder_id: int) -> list[Tracked]:
        """Forget a deleted recorder's open positions; returns them."""
        gone = [t for t in self.open.values() if t.recorder_id == recorder_id]
        for tracked in gone:
            self.untrack(tracked)
        return gone

    def track(self, tracked: Tracked) -> None:
        self.open[(tracked.recorder_id, tracked.state.symbol)] = tracked
        self.by_symbol.setdefault(tracked.state.symbol, []).append(tracked)

    def untrack(self, tracked: Tracked) -> None:
        key = (tracked.recorder_id, tracked.state.symbol)
        if self.open.get(key) is tracked:
            del self.open[key]
        self.by_symbol[tracked.state.symbol].remove(tracked)
