"""PostgreSQL side of the engine: one `Batch` per transaction of stream entries.

A batch loads the open positions of the symbols it touches, keeps their state in memory while the
entries are applied in stream order, and writes back only what changed before the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common.models import Fill, Position, Recorder, Signal
from services.position_engine.rules import PositionChange, PositionState, RecorderSettings


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def state_of(row: Position) -> PositionState:
    return PositionState(
        symbol=row.symbol, side=row.side, quantity=row.quantity, entry_cost=row.entry_cost,
        opened_ms=row.opened_ms, tp_price=row.tp_price, sl_price=row.sl_price,
        realized_pnl=row.realized_pnl, max_favorable=row.max_favorable, max_adverse=row.max_adverse,
        worst_unrealized_pnl=row.worst_unrealized_pnl, best_unrealized_pnl=row.best_unrealized_pnl,
        status=row.status, exit_price=row.exit_price, exit_reason=row.exit_reason,
        closed_ms=None, id=row.id,
    )


def write_state(row: Position, state: PositionState) -> None:
    row.side = state.side
    row.quantity = state.quantity
    row.entry_cost = state.entry_cost
    row.avg_entry_price = state.avg_entry_price
    row.tp_price = state.tp_price
    row.sl_price = state.sl_price
    row.status = state.status
    row.realized_pnl = state.realized_pnl
    row.exit_price = state.exit_price
    row.exit_reason = state.exit_reason
    row.max_favorable = state.max_favorable
    row.max_adverse = state.max_adverse
    row.worst_unrealized_pnl = state.worst_unrealized_pnl
    row.best_unrealized_pnl = state.best_unrealized_pnl
    if state.closed_ms is not None:
        row.closed_at = ms_to_dt(state.closed_ms)


def recorder_settings(r: Recorder) -> RecorderSettings:
    return RecorderSettings(
        default_qty=r.default_qty, tp_ticks=r.tp_ticks, sl_ticks=r.sl_ticks,
        on_opposite=r.on_opposite, allow_dca=r.allow_dca, enabled=r.enabled,
        allow_delayed_exits=r.allow_delayed_exits,
    )


@dataclass
class Tracked:
    """A position row and its state as the batch goes; `written` is what the row holds."""

    row: Position
    state: PositionState
    written: PositionState
    user_id: int
    allow_delayed_exits: bool
    last_price: Decimal | None = None  # of the last tick applied, for position.marked
    unrealized: Decimal | None = None


class Batch:
    def __init__(self, session: Session):
        self.session = session
        self.open: dict[tuple[int, str], Tracked] = {}  # (recorder_id, symbol) → open position
        self.by_symbol: dict[str, list[Tracked]] = {}
        self.touched: dict[int, Tracked] = {}  # every position changed in this batch, closed ones too
        self._loaded: set[str] = set()
        self._recorders: dict[int, Recorder | None] = {}
        self._seen_signals: set[uuid.UUID] = set()

    # --- reads -------------------------------------------------------------------------------

    def load_symbols(self, symbols: set[str]) -> None:
        missing = symbols - self._loaded
        if not missing:
            return
        rows = self.session.execute(
            select(Position, Recorder.user_id, Recorder.allow_delayed_exits)
            .join(Recorder, Recorder.id == Position.recorder_id)
            .where(Position.status == "open", Position.symbol.in_(missing))
            .order_by(Position.id)
        ).all()
        for row, user_id, allow_delayed in rows:
            state = state_of(row)
            self._track(Tracked(row, state, state, user_id, allow_delayed))
        self._loaded |= missing

    def open_symbol_counts(self) -> dict[str, int]:
        self.flush_positions()
        rows = self.session.execute(
            select(Position.symbol, func.count()).where(Position.status == "open").group_by(Position.symbol)
        ).all()
        return {symbol: count for symbol, count in rows}

    def recorder(self, recorder_id: int) -> Recorder | None:
        if recorder_id not in self._recorders:
            self._recorders[recorder_id] = self.session.get(Recorder, recorder_id)
        return self._recorders[recorder_id]

    def signal_seen(self, signal_id: uuid.UUID) -> bool:
        """True when this signal was already recorded, in this batch or an earlier commit."""
        if signal_id in self._seen_signals:
            return True
        self._seen_signals.add(signal_id)
        return self.session.get(Signal, signal_id) is not None

    def open_position(self, recorder_id: int, symbol: str) -> Tracked | None:
        self.load_symbols({symbol})
        return self.open.get((recorder_id, symbol))

    # --- writes ------------------------------------------------------------------------------

    def _track(self, tracked: Tracked) -> None:
        key = (tracked.row.recorder_id, tracked.state.symbol)
        self.open[key] = tracked
        self.by_symbol.setdefault(tracked.state.symbol, []).append(tracked)

    def _untrack(self, tracked: Tracked) -> None:
        key = (tracked.row.recorder_id, tracked.state.symbol)
        if self.open.get(key) is tracked:
            del self.open[key]
        self.by_symbol[tracked.state.symbol].remove(tracked)

    def set_state(self, tracked: Tracked, state: PositionState) -> None:
        self.touched[id(tracked)] = tracked
        tracked.state = state
        if state.status != "open":
            self._untrack(tracked)

    def apply_change(
        self, change: PositionChange, recorder: Recorder, current: Tracked | None,
        at_ms: int, signal_id: uuid.UUID | None,
    ) -> Tracked:
        """Record one position change from a signal; returns the tracked position it concerns."""
        if change.event == "opened":
            tracked = self._insert(change.position, recorder)
        else:
            assert current is not None
            tracked = current
            self.set_state(tracked, change.position)
        self.add_fills(tracked, change, at_ms, signal_id)
        return tracked

    def _insert(self, state: PositionState, recorder: Recorder) -> Tracked:
        self.flush_positions()  # a reversal's closed row must leave 'open' before the new row
        row = Position(
            recorder_id=recorder.id, symbol=state.symbol, opened_at=ms_to_dt(state.opened_ms),
            opened_ms=state.opened_ms,
        )
        write_state(row, state)
        self.session.add(row)
        self.session.flush()  # the id is needed by fills and by the signal row
        tracked = Tracked(row, state, state, recorder.user_id, recorder.allow_delayed_exits)
        self._loaded.add(state.symbol)
        self._track(tracked)
        self.touched[id(tracked)] = tracked
        return tracked

    def add_fills(self, tracked: Tracked, change: PositionChange, at_ms: int, signal_id: uuid.UUID | None) -> None:
        for fill in change.fills:
            self.session.add(
                Fill(
                    position_id=tracked.row.id, signal_id=signal_id, kind=fill.kind, side=fill.side,
                    quantity=fill.quantity, price=fill.price, realized_pnl=fill.realized_pnl,
                    reason=fill.reason, filled_at=ms_to_dt(at_ms),
                )
            )

    def add_signal(self, row: Signal) -> None:
        self.session.add(row)

    def flush_positions(self) -> None:
        for tracked in self.touched.values():
            if tracked.state != tracked.written:
                write_state(tracked.row, tracked.state)
                tracked.written = tracked.state
        self.session.flush()
