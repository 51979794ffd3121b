"""PostgreSQL side of the engine: one `Batch` per transaction of stream entries.

A batch works on the engine's book of open positions (`book.py`): signals and ticks change the
positions there, in stream order, and the batch writes back before the commit only the rows whose
values changed, in a few statements. A write that finds its row no longer open means the book
was out of date: `StaleBook` undoes the batch, and the engine loads the book again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from libs.common.exit_plans import parse_exit_plan
from libs.common.storage.models import Fill as FillRow
from libs.common.storage.models import (
    Position,
    Recorder,
    Signal,
    StopMove,
    StreamOffset,
    Subaccount,
    Trader,
)
from services.position_engine import trader_rules
from services.position_engine.book import OpenBook, Tracked, ms_to_dt, plan_columns, state_of
from services.position_engine.rules import Fill, PositionChange, PositionState, RecorderSettings

__all__ = ["Batch", "StaleBook", "Tracked", "ms_to_dt", "recorder_settings", "state_of"]

# Declarative types `__table__` as any FromClause; a mapped class's is its Table.
POSITIONS = cast(Table, Position.__table__)
FILLS = cast(Table, FillRow.__table__)
STOP_MOVES = cast(Table, StopMove.__table__)
SIGNALS = cast(Table, Signal.__table__)
SIGNAL_COLUMNS = tuple(c.name for c in SIGNALS.columns)
MARKS = ("max_favorable", "max_adverse", "worst_unrealized_pnl", "best_unrealized_pnl")
STATE_COLUMNS = (
    "side",
    "quantity",
    "entry_cost",
    "avg_entry_price",
    "tp_price",
    "sl_price",
    "status",
    "realized_pnl",
    "exit_price",
    "exit_reason",
    *MARKS,
)


class StaleBook(Exception):
    """A position the book holds open is no longer open in PostgreSQL."""


def recorder_settings(r: Recorder) -> RecorderSettings:
    return RecorderSettings(
        default_qty=r.default_qty,
        tp_ticks=r.tp_ticks,
        sl_ticks=r.sl_ticks,
        on_opposite=r.on_opposite,
        allow_dca=r.allow_dca,
        enabled=r.enabled,
        allow_delayed_exits=r.allow_delayed_exits,
        exits=None if r.exits is None else parse_exit_plan(r.exits),
    )


def _row_values(state: PositionState) -> dict:
    values = {name: getattr(state, name) for name in STATE_COLUMNS}
    values.update(plan_columns(state))
    values["closed_at"] = None if state.closed_ms is None else ms_to_dt(state.closed_ms)
    return values


# An UPDATE of open rows by id, run as executemany: its SET names the keys of the parameters.
# A closed or missing row matches nothing, which the rowcount shows.
UPDATE_OPEN = update(POSITIONS).where(
    POSITIONS.c.id == bindparam("_id"), POSITIONS.c.status == "open"
)
# Built once: the statement is the same on every batch that applied ticks.
_OFFSETS = cast(Table, StreamOffset.__table__)
_NEW_OFFSET = pg_insert(_OFFSETS).values(
    stream=bindparam("stream"),
    group_name=bindparam("group"),
    ms=bindparam("ms"),
    seq=bindparam("seq"),
)
RECORD_OFFSET = _NEW_OFFSET.on_conflict_do_update(
    index_elements=[_OFFSETS.c.stream, _OFFSETS.c.group_name],
    set_={"ms": _NEW_OFFSET.excluded.ms, "seq": _NEW_OFFSET.excluded.seq},
)

# The traders that are on, with their subaccounts, oldest first: of one recorder, or of several.
_TRADERS_ON = (
    select(Trader, Subaccount)
    .join(Subaccount, Subaccount.id == Trader.subaccount_id)
    .where(Trader.enabled.is_(True), Subaccount.active.is_(True))
    .order_by(Trader.id)
)
TRADERS_OF_RECORDER = _TRADERS_ON.where(Trader.recorder_id == bindparam("recorder_id"))
TRADERS_OF_RECORDERS = _TRADERS_ON.where(
    Trader.recorder_id.in_(bindparam("recorder_ids", expanding=True))
)


class Batch:
    """Changes to positions, fills and signal rows wait in memory until `flush_positions()`,
    which every use of a batch calls before its transaction commits."""

    def __init__(self, session: Session, book: OpenBook):
        self.session = session
        self.book = book
        self.touched: dict[
            int, Tracked
        ] = {}  # by position id: changed in this batch, closed ones too
        self._recorders: dict[int, Recorder | None] = {}
        self._traders: dict[int, list[tuple[Trader, Subaccount]]] = {}
        self._seen_signals: set[uuid.UUID] = set()
        # Signals `prefetch` asked PostgreSQL about, and those of them already recorded.
        self._looked_up: set[uuid.UUID] = set()
        self._recorded: set[uuid.UUID] = set()
        self._delayed_exits: set[int] | None = None
        self._fills: list[dict] = []  # written with the positions, in one statement each
        self._signals: list[dict] = []
        self._stop_moves: list[dict] = []
        self._orders_locked = False
        if not book.loaded:
            book.load(session)

    # --- reads -------------------------------------------------------------------------------

    @property
    def by_symbol(self) -> dict[str, list[Tracked]]:
        return self.book.by_symbol

    def open_symbol_counts(self) -> dict[str, int]:
        return {symbol: len(held) for symbol, held in self.book.by_symbol.items() if held}

    def applied_up_to(self, group: str, streams: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """Per stream, the id of the last entry whose effects are committed ("ms-seq" as a pair)."""
        rows = self.session.execute(
            select(StreamOffset.stream, StreamOffset.ms, StreamOffset.seq).where(
                StreamOffset.group_name == group, StreamOffset.stream.in_(streams)
            )
        )
        return {stream: (ms, seq) for stream, ms, seq in rows}

    def record_applied(self, group: str, last: dict[str, tuple[int, int]]) -> None:
        """Move the streams' offsets forward, in the transaction that holds the effects."""
        for stream, (ms, seq) in last.items():
            self.session.connection().execute(
                RECORD_OFFSET, {"stream": stream, "group": group, "ms": ms, "seq": seq}
            )

    def prefetch(self, signal_ids: set[uuid.UUID], recorder_ids: set[int]) -> None:
        """Read the batch's signals (already recorded?), recorders and traders in three
        statements, instead of three per signal: a batch of many signals is mostly round trips."""
        signal_ids -= self._looked_up
        if signal_ids:
            self._recorded |= set(
                self.session.scalars(select(Signal.id).where(Signal.id.in_(signal_ids)))
            )
            self._looked_up |= signal_ids
        recorder_ids -= self._recorders.keys()
        if not recorder_ids:
            return
        found = {
            r.id: r
            for r in self.session.scalars(select(Recorder).where(Recorder.id.in_(recorder_ids)))
        }
        for recorder_id in recorder_ids:
            self._recorders[recorder_id] = found.get(recorder_id)
            self._traders.setdefault(recorder_id, [])
        on = self.session.execute(TRADERS_OF_RECORDERS, {"recorder_ids": list(recorder_ids)})
        for trader, subaccount in on:
            self._traders[trader.recorder_id].append((trader, subaccount))

    def recorder(self, recorder_id: int) -> Recorder | None:
        if recorder_id not in self._recorders:
            self._recorders[recorder_id] = self.session.get(Recorder, recorder_id)
        return self._recorders[recorder_id]

    def traders(self, recorder_id: int) -> list[tuple[Trader, Subaccount]]:
        """The recorder's traders that are on, with their subaccounts, oldest first; read once
        per batch (a trader the batch pauses is the same object, so later signals see it)."""
        if recorder_id not in self._traders:
            on = self.session.execute(TRADERS_OF_RECORDER, {"recorder_id": recorder_id})
            self._traders[recorder_id] = [(trader, subaccount) for trader, subaccount in on]
        if self._traders[recorder_id] and not self._orders_locked:
            # Orders are decided from here on: alone, among several engine partitions.
            trader_rules.decide_orders_alone(self.session, self.book.partitions)
            self._orders_locked = True
        return self._traders[recorder_id]

    def delayed_exits(self) -> set[int]:
        """Recorders that take TP/SL exits on delayed ticks, read once per batch that needs it
        (a user may switch it at any time)."""
        if self._delayed_exits is None:
            self._delayed_exits = set(
                self.session.scalars(select(Recorder.id).where(Recorder.allow_delayed_exits))
            )
        return self._delayed_exits

    def signal_seen(self, signal_id: uuid.UUID) -> bool:
        """True when this signal was already recorded, in this batch or an earlier commit."""
        if signal_id in self._seen_signals:
            return True
        self._seen_signals.add(signal_id)
        if signal_id in self._looked_up:
            return signal_id in self._recorded
        return self.session.get(Signal, signal_id) is not None

    def open_position(self, recorder_id: int, symbol: str) -> Tracked | None:
        return self.book.open.get((recorder_id, symbol))

    # --- writes ------------------------------------------------------------------------------

    def set_state(
        self, tracked: Tracked, state: PositionState, *, marks_only: bool = False
    ) -> None:
        """The position's new state; `marks_only` when a tick moved only its extremes."""
        self.touched[tracked.id] = tracked
        tracked.state = state
        if not marks_only:
            tracked.folded = None  # the marks of other prices depend on the new average
        if state.status != "open":
            self.book.untrack(tracked)

    def apply_change(
        self,
        change: PositionChange,
        recorder: Recorder,
        current: Tracked | None,
        at_ms: int,
        signal_id: uuid.UUID | None,
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
        # A reversal's closed row must leave 'open' before the new row (one open row per recorder
        # and symbol); fills and signal rows wait for the batch's end.
        self._write_position_rows()
        opened_at = ms_to_dt(state.opened_ms)
        position_id = self.session.execute(
            insert(POSITIONS).returning(POSITIONS.c.id),
            {
                "recorder_id": recorder.id,
                "symbol": state.symbol,
                "opened_at": opened_at,
                "opened_ms": state.opened_ms,
                **_row_values(state),
            },
        ).scalar_one()
        tracked = Tracked(position_id, recorder.id, recorder.user_id, opened_at, state, state)
        self.book.track(tracked)
        self.touched[position_id] = tracked
        return tracked

    def add_fills(
        self, tracked: Tracked, change: PositionChange, at_ms: int, signal_id: uuid.UUID | None
    ) -> None:
        for fill in change.fills:
            self._fills.append(
                dict(
                    position_id=tracked.id,
                    signal_id=signal_id,
                    kind=fill.kind,
                    side=fill.side,
                    quantity=fill.quantity,
                    price=fill.price,
                    realized_pnl=fill.realized_pnl,
                    reason=fill.reason,
                    filled_at=ms_to_dt(at_ms),
                )
            )

    def add_fill(self, tracked: Tracked, fill: Fill, at_ms: int) -> None:
        """One fill a tick made (a target leg's part)."""
        self.add_fills(tracked, PositionChange("changed", tracked.state, (fill,)), at_ms, None)

    def add_stop_move(self, tracked: Tracked, stop: Decimal, reason: str, at_ms: int) -> None:
        self._stop_moves.append(
            dict(position_id=tracked.id, stop_price=stop, reason=reason, moved_at=ms_to_dt(at_ms))
        )

    def add_signal(self, values: dict) -> None:
        """A `signals` row (columns by name; those not given are NULL; `processed_at`: now)."""
        row = {name: values.get(name) for name in SIGNAL_COLUMNS}
        row["processed_at"] = values.get("processed_at") or datetime.now(UTC)
        self._signals.append(row)

    def flush_positions(self) -> None:
        """Write the rows whose values changed (most often only their extremes), then the rest
        of the session (fills, signals, intents)."""
        self._write_position_rows()
        for table, rows in (
            (FILLS, self._fills),
            (SIGNALS, self._signals),
            (STOP_MOVES, self._stop_moves),
        ):
            if rows:
                self.session.connection().execute(insert(table), rows)
                rows.clear()
        self.session.flush()  # order intents, trader changes

    def _write_position_rows(self) -> None:
        """UPDATE the position rows whose values changed since they were last written."""
        marks, full, written = [], [], []
        for tracked in self.touched.values():
            state, before = tracked.state, tracked.written
            if state is before or state == before:
                continue
            if _only_marks_differ(state, before):
                marks.append({"_id": tracked.id, **{name: getattr(state, name) for name in MARKS}})
            else:
                full.append({"_id": tracked.id, **_row_values(state)})
            written.append(tracked)
        for rows in (marks, full):
            # On the connection, without autoflush: fills may name these rows.
            if rows and self.session.connection().execute(UPDATE_OPEN, rows).rowcount != len(rows):
                raise StaleBook("a position the book holds open is no longer open")
        for tracked in written:
            tracked.written = tracked.state


def _only_marks_differ(state: PositionState, before: PositionState) -> bool:
    return (
        state.status == before.status
        and state.quantity == before.quantity
        and state.entry_cost == before.entry_cost
        and state.tp_price == before.tp_price
        and state.sl_price == before.sl_price
        and state.side == before.side
        and state.realized_pnl == before.realized_pnl
        and state.plan_state == before.plan_state
    )
