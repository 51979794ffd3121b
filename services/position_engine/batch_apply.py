"""A batch of entries, in arrival order, applied in one transaction: signals through
`SignalApplier`, ticks in runs per symbol, the ticks' committed offset, the last prices.

A signal's id is stored with its effect, so a redelivered entry changes nothing; ticks already
committed (the `stream_offsets` row) are only acknowledged when they come back.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, streams
from libs.common.futures.instruments import contract_spec
from libs.common.storage.db import transaction
from services.position_engine import ticks as tick_rules
from services.position_engine.arrival import Entry, Fields, entry_position
from services.position_engine.book import OpenBook, Tracked
from services.position_engine.publisher import Outbox, Publisher
from services.position_engine.repository import Batch, StaleBook
from services.position_engine.signal_apply import SignalApplier, Stats
from services.position_engine.tick_entries import Runs, TickReader
from services.position_engine.trader_guards import TraderGuards, after_stop_move

log = logging.getLogger("position_engine")

NOTHING_APPLIED = (-1, -1)  # before every entry id
OPENS_OR_CLOSES = (events.POSITION_OPENED, events.POSITION_CLOSED)

# One symbol's run: prices, times and delayed flags of its ticks, in stream order.
Run = tuple[list[Decimal], list[int], list[bool]]


class BatchApplier:
    def __init__(
        self,
        signals_stream: str,
        ticks_stream: str,
        sessions: sessionmaker[Session],
        book: OpenBook,
        publisher: Publisher,
        stats: Stats,
    ):
        self.signals_stream = signals_stream
        self.ticks_stream = ticks_stream
        self.sessions = sessions
        self.book = book
        self.publisher = publisher
        self.stats = stats
        self.last_prices: dict[str, Decimal] = {}  # shared with `signals`; changed in place only
        self.signals = SignalApplier(signals_stream, sessions, book, stats, self.last_prices)
        self.tick_reader = TickReader()
        # The `stream_offsets` row of the ticks as this engine last committed it; None: read it
        # (at the start, after a failed batch, whenever the book is reloaded).
        self.ticks_applied: tuple[int, int] | None = None

    def set_sessions(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = self.signals.sessions = sessions

    def set_last_prices(self, prices: dict[str, Decimal]) -> None:
        self.last_prices.clear()
        self.last_prices.update(prices)

    def apply_batch(self, entries: list[Entry]) -> Outbox:
        runs = self._tick_runs(entries)
        if runs is not None and self._leaves_positions_unchanged(runs):
            return self._apply_quiet_ticks(entries, runs)
        try:
            return self._apply_batch(entries, runs)
        except StaleBook:
            # Only the engine writes these rows; a database restored under it (or a hand-written
            # DELETE) is the one way a position it holds open can be gone.
            log.warning(
                "open positions changed outside the engine; book reloaded, batch applied again"
            )
            return self._apply_batch(entries, runs)

    def apply_one_by_one(self, entries: list[Entry]) -> Outbox:
        """Isolate a poison entry: each entry alone; one that still fails is set aside."""
        merged = Outbox()
        for entry in entries:
            try:
                outbox = self.apply_batch([entry])
            except (OperationalError, redis.ConnectionError):
                raise
            except Exception as exc:
                log.exception(
                    "entry failed on its own; rejecting it", extra={"kv": {"entry_id": entry[1]}}
                )
                outbox = self.signals.reject_entry(
                    entry, f"internal error while applying it: {type(exc).__name__}"
                )
            merged.events += outbox.events
            merged.last_prices.update(outbox.last_prices)
            merged.dead_letters += outbox.dead_letters
            merged.settled += outbox.settled
            merged.intents += outbox.intents
            if outbox.open_symbols is not None:
                merged.open_symbols = outbox.open_symbols
            for stream, ids in outbox.acks.items():
                merged.acks.setdefault(stream, []).extend(ids)
        return merged

    def _tick_runs(self, entries: list[Entry]) -> Runs | None:
        """The runs of a batch of ticks only, past the committed offset; None for a batch with
        signals, or before the offset is known."""
        done = self.ticks_applied
        if done is None or not self.book.loaded or any(e[0] != self.ticks_stream for e in entries):
            return None
        runs: Runs = {}
        self._collect_ticks([f for _, i, f in entries if entry_position(i) > done], runs)
        return runs

    def _leaves_positions_unchanged(self, runs: Runs) -> bool:
        """True when every open position takes these ticks without a change: prices inside the
        range its extremes already hold, no exit reached."""
        for symbol, (prices, ts, delayed) in runs.items():
            if held := self.book.by_symbol.get(symbol):
                run = tick_rules.TickRun.of_columns(prices, ts, delayed)
                if not all(
                    tick_rules.leaves_unchanged(t.state, run, folded=t.folded) for t in held
                ):
                    return False
        return True

    def _apply_quiet_ticks(self, entries: list[Entry], runs: Runs) -> Outbox:
        """Ticks that change no position, applied without a transaction: nothing to write. If the
        engine dies before acknowledging them, they are applied again and again change nothing,
        so no offset needs recording."""
        outbox = Outbox(acks={self.ticks_stream: [entry_id for _, entry_id, _ in entries]})
        for symbol, (prices, _, _) in runs.items():
            self._take_last_price(symbol, prices, outbox)
            for tracked in self.book.by_symbol.get(symbol) or ():
                tracked.last_price = prices[-1]
                outbox.marked[tracked.id] = tracked
        self.publisher.resolve_events(outbox)
        return outbox

    def _apply_batch(self, entries: list[Entry], collected: Runs | None = None) -> Outbox:
        """`collected`: the runs of a batch of ticks only, already read by `_tick_runs`."""
        outbox = Outbox()
        prices_before = dict(self.last_prices)
        try:
            with transaction(self.sessions) as session:
                batch = Batch(session, self.book)
                # Ticks already applied (committed, then the engine died before acknowledging
                # them) are only acknowledged: applied again after a later signal of their batch
                # changed a position, they would mark it against the wrong average. (A signal
                # is known by its id, and a repeated one is settled without effect.)
                done = self.ticks_applied
                if done is None or not self.book.loaded:
                    done = batch.applied_up_to(streams.ENGINE_GROUP, (self.ticks_stream,)).get(
                        self.ticks_stream, NOTHING_APPLIED
                    )
                last_tick = self._apply_entries(batch, entries, done, collected, outbox)
                if last_tick > done:
                    batch.record_applied(streams.ENGINE_GROUP, {self.ticks_stream: last_tick})
                batch.flush_positions()
                if any(t in OPENS_OR_CLOSES for t, _ in outbox.events):
                    outbox.open_symbols = batch.open_symbol_counts()
                self.publisher.resolve_events(outbox)
        except Exception:
            # Rolled back: the book may hold changes that never reached PostgreSQL.
            self.set_last_prices(prices_before)
            self.book.invalidate()
            self.ticks_applied = None
            raise
        self.ticks_applied = max(done, last_tick)
        return outbox

    def _apply_entries(
        self,
        batch: Batch,
        entries: list[Entry],
        done: tuple[int, int],
        collected: Runs | None,
        outbox: Outbox,
    ) -> tuple[int, int]:
        """Apply the entries in order and set what to acknowledge; returns the position of the
        last tick past `done`."""
        last_tick = NOTHING_APPLIED
        # Ticks wait in a run per symbol until a signal of that symbol (or the batch end) needs
        # the positions up to date; a run is applied in one pass per position.
        runs: Runs = {}
        signal_ids: list[str] = []
        tick_ids: list[str] = []
        ticks: list[Fields] = []  # read into runs at the next signal, or at the batch end
        self._prefetch(batch, entries)
        for stream, entry_id, fields in entries:
            if stream == self.ticks_stream:
                tick_ids.append(entry_id)
                if (position := entry_position(entry_id)) > done:
                    ticks.append(fields)
                    last_tick = max(last_tick, position)
                continue
            signal_ids.append(entry_id)
            self._collect_ticks(ticks, runs)
            ticks = []
            symbol = str(fields.get("symbol", "")).strip()
            if symbol in runs:
                self._apply_ticks(batch, symbol, runs.pop(symbol), outbox)
            self.signals.apply(batch, entry_id, fields, outbox)
        if collected is None:
            self._collect_ticks(ticks, runs)
        else:
            runs = collected
        for symbol, run in runs.items():
            self._apply_ticks(batch, symbol, run, outbox)
        outbox.acks = {
            s: ids
            for s, ids in ((self.signals_stream, signal_ids), (self.ticks_stream, tick_ids))
            if ids
        }
        return last_tick

    def _prefetch(self, batch: Batch, entries: list[Entry]) -> None:
        """The rows the batch's signals will ask about, read at once when there are several (an
        entry that does not parse is left to the signal's own checks)."""
        signal_ids: set[uuid.UUID] = set()
        recorder_ids: set[int] = set()
        for stream, _, fields in entries:
            if stream != self.signals_stream:
                continue
            try:
                signal_ids.add(uuid.UUID(str(fields.get("signal_id", ""))))
                recorder_ids.add(int(str(fields.get("recorder_id", ""))))
            except ValueError:
                continue
        if len(signal_ids) > 1:
            owned = {r for r in recorder_ids if 0 < r < 2**31 and batch.book.owns(r)}
            batch.prefetch(signal_ids, owned)

    # --- ticks -------------------------------------------------------------------------------

    @staticmethod
    def _plan_steps(
        batch: Batch, tracked: Tracked, result: tick_rules.TickOutcome, outbox: Outbox
    ) -> None:
        """What an exit plan did on these ticks besides closing: target legs filled and stop
        moves, recorded, shown, and (while the position is open) sent to the traders' brokers."""
        if not (result.leg_fills or result.stop_moves):
            return
        for fill, at_ms in result.leg_fills:
            batch.add_fill(tracked, fill, at_ms)
        for stop, reason, at_ms in result.stop_moves:
            batch.add_stop_move(tracked, stop, reason, at_ms)
        if result.exit is None:
            outbox.events.append((events.POSITION_CHANGED, {"_tracked": tracked}))
            if result.stop_moves:
                after_stop_move(batch, tracked, outbox)

    def _collect_ticks(self, entries: list[Fields], runs: Runs) -> None:
        for refused in self.tick_reader.collect(entries, runs):
            log.warning("malformed tick skipped", extra={"kv": {"reason": repr(str(refused))}})
            self.stats.rejected_entries += 1

    def _take_last_price(self, symbol: str, prices: list[Decimal], outbox: Outbox) -> None:
        self.stats.ticks += len(prices)
        self.last_prices[symbol] = prices[-1]
        outbox.last_prices[symbol] = str(prices[-1])

    def _apply_ticks(self, batch: Batch, symbol: str, run: Run, outbox: Outbox) -> None:
        """Apply consecutive ticks of one symbol to its open positions, in stream order."""
        prices, ts, delayed = run
        self._take_last_price(symbol, prices, outbox)
        held = batch.by_symbol.get(symbol)
        if not held:
            return
        ticks = tick_rules.TickRun.of_columns(prices, ts, delayed)
        spec = contract_spec(symbol)
        delayed_exits = batch.delayed_exits() if ticks.any_delayed else set()
        last_price, marked = prices[-1], outbox.marked
        for tracked in list(held):
            allow = tracked.recorder_id in delayed_exits
            if tick_rules.leaves_unchanged(
                tracked.state, ticks, allow_delayed_exits=allow, folded=tracked.folded
            ):
                tracked.last_price = last_price
                marked[tracked.id] = tracked
                continue
            result = tick_rules.apply_tick_run(
                tracked.state, ticks, spec, allow_delayed_exits=allow, folded=tracked.folded
            )
            if result is None:
                continue
            tracked.last_price = last_price
            marked[tracked.id] = tracked
            if result.exit is None:
                if result.position is not tracked.state:
                    batch.set_state(tracked, result.position, marks_only=True)
                self._plan_steps(batch, tracked, result, outbox)
                if ticks.min_ts >= tracked.state.opened_ms and (
                    tracked.state.plan is None or allow or not ticks.any_delayed
                ):  # every tick marked it (and, under a plan, could move its stop)
                    tracked.fold(ticks.low, ticks.high)
                continue
            batch.set_state(tracked, result.position)
            batch.flush_positions()  # the row first: one gone meanwhile (StaleBook) takes no fill
            self._plan_steps(batch, tracked, result, outbox)
            assert result.position.closed_ms is not None  # an exit closes it
            batch.add_fills(tracked, result.exit, result.position.closed_ms, None)
            outbox.events.append((events.POSITION_CLOSED, {"_tracked": tracked}))
            TraderGuards.after_exit(batch, tracked, outbox)
            self.stats.exits += 1
            log.info(
                "position exited",
                extra={
                    "kv": {
                        "position_id": tracked.id,
                        "reason": result.position.exit_reason,
                        "price": result.position.exit_price,
                    }
                },
            )
