"""The engine's stream adapter: read `jt:signals` and `jt:ticks`, apply, commit, publish, ack.

Entries are read through the `position_engine` consumer group in batches and applied in stream
order in one transaction; acknowledgements go out only after the commit. A signal's id is stored
with its effect, so a redelivered entry changes nothing; re-applying a tick is harmless (extremes
only widen, and a closed position takes no more ticks).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from libs.common import orders, streams
from libs.common.config import Settings
from libs.common.futures.instruments import contract_spec
from libs.common.serialize import num
from libs.common.storage.db import transaction
from libs.common.streams import MalformedMessage, SignalMessage
from services.position_engine import outbox as outbox_rules
from services.position_engine import rules
from services.position_engine import ticks as tick_rules
from services.position_engine.book import OpenBook
from services.position_engine.publisher import Outbox, Publisher
from services.position_engine.repository import (
    Batch,
    StaleBook,
    Tracked,
    ms_to_dt,
    recorder_settings,
)
from services.position_engine.tick_entries import Runs, TickReader

log = logging.getLogger("position_engine")

CLAIM_EVERY_S = 30.0
WINDOW_CHECK_EVERY_S = 15.0  # trading windows end on the minute; a flatten goes out within this
CLAIM_MIN_IDLE_MS = 60_000
# How often the active engine makes sure it still holds the leader lock (and after any database
# error); a standby that takes the lock waits longer than this before it applies anything.
LEAD_CHECK_EVERY_S = 0.2
NO_FRONTIER = (1 << 62, True, 0)  # after every possible order key
HOLD_WAIT_S = 0.001  # before reading again while ticks are held for their millisecond
NOTHING_APPLIED = (-1, -1)  # before every entry id


class LostLead(Exception):
    """Another engine may be applying entries now: this one must stop and stand by."""


@dataclass
class Stats:
    batches: int = 0
    signals: int = 0
    ticks: int = 0
    exits: int = 0
    rejected_entries: int = 0
    last_batch_at: float = 0.0
    last_batch_size: int = 0
    last_batch_ms: float = 0.0


class PositionEngine:
    # Entries per read of each stream: larger batches spread the per-batch load and commit over
    # more ticks; a batch still takes only milliseconds, which bounds the added signal latency.
    DEFAULT_BATCH = 2000

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        consumer: str | None = None,
        batch_size: int = DEFAULT_BATCH,
    ):
        self.settings = settings
        self.sessions = sessions
        self.redis = client
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.publisher = Publisher(settings, client, orders.rq_connection(settings.redis_url))
        self.signals_stream = settings.stream(streams.SIGNALS)
        self.ticks_stream = settings.stream(streams.TICKS)
        self.stats = Stats()
        self.on_batch: Callable[[int, float], None] = lambda size, seconds: None  # e.g. metrics
        self.last_prices: dict[str, Decimal] = {}
        self.book = OpenBook()  # the open positions, loaded at start and kept current
        self.tick_reader = TickReader()
        # Streams whose own pending entries are read before new ones: at the start, after a
        # failure or a claim, and when entries had to wait for the other stream.
        self._backlog = {self.signals_stream, self.ticks_stream}
        self._last_window_check = 0.0
        self._last_claim = 0.0
        # Whether this copy still holds the leader lock (the service's; always, by default).
        self.still_leading: Callable[[], bool] = lambda: True
        self._lead_checked_at = float("-inf")  # -inf: check before the next batch
        # The `stream_offsets` row of the ticks as this engine last committed it; None: read it
        # (at the start, after a failed batch, whenever the book is reloaded).
        self._ticks_applied: tuple[int, int] | None = None
        self._held: list[tuple[str, str, dict]] = []  # ticks of the millisecond of the last read
        self._server_ms = 0  # Redis's clock at the last read

    # --- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        self._ticks_applied = None
        self._held = []
        self._backlog = {self.signals_stream, self.ticks_stream}
        for stream in (self.signals_stream, self.ticks_stream):
            streams.ensure_group(self.redis, stream, streams.ENGINE_GROUP)
        self.last_prices = {
            k: Decimal(v) for k, v in self.redis.hgetall(self.publisher.last_price_key).items()
        }
        with transaction(self.sessions) as session:
            self.book.load(session)  # started, or just took the lead: read what the last one left
            counts = Batch(session, self.book).open_symbol_counts()
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.settings.stream(streams.OPEN_SYMBOLS) + ":next")
        self.publisher.write_open_symbols(pipe, counts)
        pipe.execute()
        self.claim_abandoned(min_idle_ms=0)

    def claim_abandoned(self, min_idle_ms: int = CLAIM_MIN_IDLE_MS) -> int:
        """Take over entries another (dead) consumer read but never acknowledged."""
        claimed = 0
        for stream in (self.signals_stream, self.ticks_stream):
            start = "0-0"
            while True:
                # Redis 6.2 answers [next, entries]; 7.0 adds the ids it found deleted.
                start, entries = self.redis.xautoclaim(
                    stream, streams.ENGINE_GROUP, self.consumer, min_idle_ms, start, count=500
                )[:2]
                claimed += len(entries)
                if start in ("0-0", b"0-0"):
                    break
        if claimed:
            self._backlog = {self.signals_stream, self.ticks_stream}
            log.info("claimed abandoned entries", extra={"kv": {"count": claimed}})
        self._last_claim = time.monotonic()
        return claimed

    def run_forever(self, stop: Callable[[], bool] = lambda: False) -> None:
        self.prepare()
        while not stop():
            try:
                self.step(block_ms=200)
            except redis.ConnectionError:
                # Effects already committed are deduplicated when the entries come back.
                log.warning("redis unreachable; retrying")
                self._backlog = {self.signals_stream, self.ticks_stream}
                time.sleep(1.0)

    # --- one step ----------------------------------------------------------------------------

    def read(self, block_ms: int | None) -> list[tuple[str, str, dict]]:
        """The next entries of both streams in arrival order: our own unacknowledged ones first
        (after a failure, a claim or a deferral), then new ones.

        Both streams carry Redis server-time ids, so sorting by id restores arrival order to the
        millisecond (sequence numbers are per stream, so within one ms signals go first). An entry
        is handed out only when every entry of the other stream with an earlier id has been read
        as well: a backlog of ticks is never overtaken by a later signal, nor signals by later
        ticks. What must wait stays pending and is read again next time. Ticks of the millisecond
        Redis is in when they are read are held until it is over: a signal may still arrive in
        that millisecond, and it goes before them.
        """
        while True:
            entries, starts = self._read_round(block_ms)
            ready = self._in_order(entries, starts)
            # Nothing to hand out after reading pending entries: a stream has just caught up, or
            # what we hold waits for the other stream's next entries (or for the millisecond to
            # end). Read those now.
            if ready or (
                not self._held and ">" == starts[self.signals_stream] == starts[self.ticks_stream]
            ):
                return ready

    def _read_round(
        self, block_ms: int | None
    ) -> tuple[list[tuple[str, str, dict]], dict[str, str]]:
        """One XREADGROUP over both streams, after the ticks held from the last round; returns
        the entries and each stream's start id."""
        both = (self.signals_stream, self.ticks_stream)
        starts = {stream: "0" if stream in self._backlog else ">" for stream in both}
        held, self._held = ([], []) if self.ticks_stream in self._backlog else (self._held, [])
        if held:  # their millisecond ends within one; Redis's own block timeouts are far coarser
            time.sleep(HOLD_WAIT_S)
        entries = held + self._read(starts, None if self._backlog or held else block_ms)
        self._backlog -= {
            s for s, start in starts.items() if start == "0" and not any(e[0] == s for e in entries)
        }
        return entries, starts

    def _in_order(
        self, entries: list[tuple[str, str, dict]], starts: dict[str, str]
    ) -> list[tuple[str, str, dict]]:
        """The longest run, in arrival order, that no unread entry of the other stream precedes;
        the rest goes back to pending."""
        got = {stream: [e for e in entries if e[0] == stream] for stream in starts}
        frontier = {
            stream: self._read_up_to(stream, start, got[stream]) for stream, start in starts.items()
        }
        for other in (self.signals_stream, self.ticks_stream):
            if not got[other] and frontier[other] == NO_FRONTIER:
                return (
                    entries  # one stream's entries, in their order, and nothing of the other waits
                )
        if not got[self.signals_stream]:  # ticks only, in stream order: cut where signals may come
            index = len(entries)
            while index and _order_key(True, entries[index - 1][1]) > frontier[self.signals_stream]:
                index -= 1
        else:
            entries.sort(key=lambda e: _order_key(e[0] == self.ticks_stream, e[1]))
            index = next(
                (
                    i
                    for i, (stream, entry_id, _) in enumerate(entries)
                    if _order_key(stream == self.ticks_stream, entry_id)
                    > frontier[self._other(stream)]
                ),
                len(entries),
            )
        waiting = entries[index:]
        if (
            waiting
            and starts[self.ticks_stream] == ">"
            and all(e[0] == self.ticks_stream for e in waiting)
        ):
            self._held = waiting  # new ticks of this millisecond: read again with the next ones
        else:
            self._backlog.update(e[0] for e in waiting)
        return entries[:index]

    def _other(self, stream: str) -> str:
        return self.ticks_stream if stream == self.signals_stream else self.signals_stream

    def _read_up_to(
        self, stream: str, start: str, got: list[tuple[str, str, dict]]
    ) -> tuple[int, bool, int]:
        """The order key up to which every entry of `stream` is either done or in `got`."""
        is_tick = stream == self.ticks_stream
        if len(got) >= self.batch_size:  # a full batch: more may follow it
            return _order_key(is_tick, got[-1][1])
        if start == ">":  # read to the end; anything newer gets a later id than what we hold
            return self._newer_than_now(is_tick)
        # Our pending entries only: the group has handed out everything up to its last-delivered id.
        info = self.redis.xinfo_stream(stream)
        group = next(
            g for g in self.redis.xinfo_groups(stream) if g["name"] == streams.ENGINE_GROUP
        )
        delivered = group["last-delivered-id"]
        return (
            self._newer_than_now(is_tick)
            if delivered == info["last-generated-id"]
            else _order_key(is_tick, delivered)
        )

    def _newer_than_now(self, is_tick: bool) -> tuple[int, bool, int]:
        """The frontier of a stream read to its end: a tick written from now on sorts after every
        entry already written, but a signal can still take the current millisecond, before its
        ticks."""
        return NO_FRONTIER if is_tick else (self._server_ms, False, 0)

    def _read(self, starts: dict[str, str], block_ms: int | None) -> list[tuple[str, str, dict]]:
        """XREADGROUP, and Redis's clock right after it (in the same round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xreadgroup(
            streams.ENGINE_GROUP, self.consumer, starts, count=self.batch_size, block=block_ms
        )
        pipe.time()
        response, (seconds, micros) = pipe.execute()
        self._server_ms = seconds * 1000 + micros // 1000
        return [
            (stream, entry_id, fields)
            for stream, items in response or []
            for entry_id, fields in items
        ]

    def step(self, block_ms: int | None = 200) -> int:
        """Read and apply one batch; returns how many entries it held."""
        self.check_lead()
        if time.monotonic() - self._last_claim > CLAIM_EVERY_S:
            self.claim_abandoned()
            self.check_book()
        if time.monotonic() - self._last_window_check > WINDOW_CHECK_EVERY_S:
            try:
                self.check_trading_windows()
            except Exception:  # a failed check is retried on the next one; signals go on
                log.exception("trading window check failed")
        entries = self.read(block_ms)
        if not entries:
            return 0
        self.check_lead()  # entries read after the lock was lost stay pending for the next leader
        started = time.perf_counter()
        try:
            outbox = self.apply_batch(entries)
        except (OperationalError, redis.ConnectionError) as exc:
            # The database is away: acknowledge nothing, re-read our pending entries later.
            log.warning(
                "batch not applied, will retry", extra={"kv": {"error": type(exc).__name__}}
            )
            self._backlog = {self.signals_stream, self.ticks_stream}
            # A restarted PostgreSQL has let go of the leader lock: ask before the next batch.
            self._lead_checked_at = float("-inf")
            time.sleep(1.0)
            return len(entries)
        except Exception:
            log.exception("batch failed; applying its entries one at a time")
            outbox = self.apply_one_by_one(entries)
        self.publisher.publish(outbox)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        self.stats.last_batch_size = len(entries)
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000
        self.on_batch(len(entries), self.stats.last_batch_ms / 1000)
        return len(entries)

    def check_lead(self) -> None:
        """Raise LostLead when this copy no longer holds the leader lock; asked every
        LEAD_CHECK_EVERY_S, and before the first batch after a database error."""
        if time.monotonic() - self._lead_checked_at < LEAD_CHECK_EVERY_S:
            return
        if not self.still_leading():
            self._backlog = {self.signals_stream, self.ticks_stream}
            raise LostLead
        self._lead_checked_at = time.monotonic()

    def apply_batch(self, entries: list[tuple[str, str, dict]]) -> Outbox:
        runs = self._tick_runs(entries)
        if runs is not None and self._leaves_positions_unchanged(runs):
            return self._apply_quiet_ticks(entries, runs)
        try:
            return self._apply_batch(entries, runs)
        except StaleBook:
            log.warning(
                "open positions changed outside the engine; book reloaded, batch applied again"
            )
            return self._apply_batch(entries, runs)

    def _tick_runs(self, entries: list[tuple[str, str, dict]]) -> Runs | None:
        """The runs of a batch of ticks only, past the committed offset; None for a batch with
        signals, or before the offset is known."""
        done = self._ticks_applied
        if done is None or not self.book.loaded or any(e[0] != self.ticks_stream for e in entries):
            return None
        runs: Runs = {}
        self._collect_ticks([f for _, i, f in entries if _entry_id(i) > done], runs)
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

    def _apply_quiet_ticks(self, entries: list[tuple[str, str, dict]], runs: Runs) -> Outbox:
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

    def _apply_batch(
        self, entries: list[tuple[str, str, dict]], collected: Runs | None = None
    ) -> Outbox:
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
                done = self._ticks_applied
                if done is None or not self.book.loaded:
                    done = batch.applied_up_to(streams.ENGINE_GROUP, (self.ticks_stream,)).get(
                        self.ticks_stream, NOTHING_APPLIED
                    )
                last_tick = NOTHING_APPLIED
                # Ticks wait in a run per symbol until a signal of that symbol (or the batch end)
                # needs the positions up to date; a run is applied in one pass per position.
                runs: Runs = {}
                signal_ids: list[str] = []
                tick_ids: list[str] = []
                ticks: list[dict] = []  # read into runs at the next signal, or at the batch end
                for stream, entry_id, fields in entries:
                    if stream == self.ticks_stream:
                        tick_ids.append(entry_id)
                        if (position := _entry_id(entry_id)) > done:
                            ticks.append(fields)
                            last_tick = max(last_tick, position)
                        continue
                    signal_ids.append(entry_id)
                    self._collect_ticks(ticks, runs)
                    ticks = []
                    symbol = str(fields.get("symbol", "")).strip()
                    if symbol in runs:
                        self._apply_ticks(batch, symbol, runs.pop(symbol), outbox)
                    self._apply_signal_entry(batch, entry_id, fields, outbox)
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
                if last_tick > done:
                    batch.record_applied(streams.ENGINE_GROUP, {self.ticks_stream: last_tick})
                batch.flush_positions()
                if any(t in ("position.opened", "position.closed") for t, _ in outbox.events):
                    outbox.open_symbols = batch.open_symbol_counts()
                self.publisher.resolve_events(outbox)
        except Exception:
            # Rolled back: the book may hold changes that never reached PostgreSQL.
            self.last_prices = prices_before
            self.book.invalidate()
            self._ticks_applied = None
            raise
        self._ticks_applied = max(done, last_tick)
        return outbox

    def apply_one_by_one(self, entries: list[tuple[str, str, dict]]) -> Outbox:
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
                outbox = self._reject_entry(
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

    def check_book(self) -> None:
        """Load the book again when the open rows are no longer the ones it holds (a recorder
        deleted with its open positions, which no write of the engine has run into yet)."""
        if not self.book.loaded:
            return
        try:
            with transaction(self.sessions) as session:
                if self.book.matches(session):
                    return
            log.warning("open positions changed outside the engine; book reloaded")
        except OperationalError:
            pass  # the batch that reloads it meets the outage too, and retries
        self.book.invalidate()

    # --- signals -----------------------------------------------------------------------------

    def _apply_signal_entry(
        self, batch: Batch, entry_id: str, fields: dict, outbox: Outbox
    ) -> None:
        try:
            message = SignalMessage.from_fields(fields)
            signal_id = uuid.UUID(message.signal_id)
        except (MalformedMessage, ValueError) as exc:
            self._record_malformed(batch, entry_id, fields, str(exc), outbox)
            return
        if batch.signal_seen(signal_id):
            log.info("signal already applied; skipped", extra={"kv": {"signal_id": signal_id}})
            outbox.settled.append(str(signal_id))
            return
        recorder = batch.recorder(message.recorder_id)
        if recorder is None:
            self._dead_letter(entry_id, fields, "the recorder no longer exists", outbox)
            return
        spec = contract_spec(message.symbol)
        tracked = batch.open_position(recorder.id, message.symbol)
        current = tracked.state if tracked else None
        signal_input = rules.SignalInput(
            signal_id=message.signal_id,
            symbol=message.symbol,
            action=message.action,
            price=message.price,
            qty=message.qty,
            position_size=message.position_size,
            market_position=message.market_position,
            received_ms=message.received_at,
        )
        outcome = rules.apply_signal(
            current,
            signal_input,
            recorder_settings(recorder),
            spec,
            self.last_prices.get(message.symbol),
        )
        position_id = None
        for change in outcome.changes:
            touched = batch.apply_change(change, recorder, tracked, message.received_at, signal_id)
            position_id = touched.id
            outbox.events.append((f"position.{change.event}", {"_tracked": touched}))
        now = ms_to_dt(message.received_at)
        queued, notes = outbox_rules.intents_for_signal(
            batch.session,
            batch.traders(recorder.id),
            outcome,
            symbol=message.symbol,
            ticker=message.ticker,
            signal_id=signal_id,
            now=now,
        )
        if any(c.event == "closed" for c in outcome.changes):
            batch.flush_positions()
            guarded, guard_notes = outbox_rules.daily_loss_guard(
                batch.session, recorder, batch.traders(recorder.id), now, symbol=message.symbol
            )
            queued, notes = queued + guarded, notes + guard_notes
        self._add_intents(outbox, queued, notes)
        for intent in queued:
            log.info(
                "order intent queued",
                extra={
                    "kv": {
                        "signal_id": signal_id,
                        "intent_id": intent.intent_id,
                        "recorder_id": recorder.id,
                        "subaccount_id": intent.subaccount_id,
                        "priority": intent.priority,
                    }
                },
            )
        batch.add_signal(
            dict(
                id=signal_id,
                recorder_id=recorder.id,
                stream_id=entry_id,
                received_at=now,
                action=message.action,
                ticker=message.ticker,
                symbol=message.symbol,
                price=message.price,
                qty=message.qty,
                position_size=message.position_size,
                market_position=message.market_position,
                raw=message.raw,
                status=outcome.status,
                reason=outcome.reason,
                position_id=position_id,
            )
        )
        self.stats.signals += 1
        outbox.settled.append(str(signal_id))
        outbox.events.append(
            (
                f"signal.{outcome.status}",
                {
                    "signal_id": str(signal_id),
                    "recorder_id": recorder.id,
                    "user_id": recorder.user_id,
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "position_id": position_id,
                    "price": num(outcome.price),
                },
            )
        )
        log.info(
            "signal processed",
            extra={
                "kv": {
                    "signal_id": signal_id,
                    "recorder_id": recorder.id,
                    "status": outcome.status,
                    "position_id": position_id,
                }
            },
        )

    def _record_malformed(
        self, batch: Batch, entry_id: str, fields: dict, reason: str, outbox: Outbox
    ) -> None:
        """Mark a malformed entry rejected when it names a signal of a known recorder."""
        reason = f"malformed stream entry: {reason}"
        try:
            signal_id = uuid.UUID(str(fields.get("signal_id", "")))
            recorder = batch.recorder(int(fields.get("recorder_id", "")))
        except ValueError:
            recorder = None
        if recorder is None or batch.signal_seen(signal_id):
            self._dead_letter(entry_id, fields, reason, outbox)
            return
        batch.add_signal(
            dict(
                id=signal_id,
                recorder_id=recorder.id,
                stream_id=entry_id,
                received_at=ms_to_dt(streams.now_ms()),
                raw=fields.get("raw") or json.dumps(fields),
                status="rejected",
                reason=reason,
            )
        )
        self.stats.rejected_entries += 1
        outbox.settled.append(str(signal_id))
        outbox.events.append(
            (
                "signal.rejected",
                {
                    "signal_id": str(signal_id),
                    "recorder_id": recorder.id,
                    "user_id": recorder.user_id,
                    "status": "rejected",
                    "reason": reason,
                    "position_id": None,
                },
            )
        )
        log.warning(
            "malformed signal entry rejected",
            extra={"kv": {"entry_id": entry_id, "signal_id": signal_id}},
        )

    def _dead_letter(self, entry_id: str, fields: dict, reason: str, outbox: Outbox) -> None:
        self.stats.rejected_entries += 1
        outbox.dead_letters.append(
            {"entry_id": entry_id, "reason": reason, "fields": json.dumps(fields)}
        )
        log.warning(
            "stream entry set aside", extra={"kv": {"entry_id": entry_id, "reason": repr(reason)}}
        )

    def _reject_entry(self, entry: tuple[str, str, dict], reason: str) -> Outbox:
        stream, entry_id, fields = entry
        outbox = Outbox(acks={stream: [entry_id]})
        if stream == self.signals_stream:
            try:
                with transaction(self.sessions) as session:
                    batch = Batch(session, self.book)
                    self._record_malformed(batch, entry_id, fields, reason, outbox)
                    batch.flush_positions()
                return outbox
            except Exception:
                log.exception("could not record the rejected entry")
        self._dead_letter(entry_id, fields, reason, outbox)
        return outbox

    # --- ticks -------------------------------------------------------------------------------

    def _collect_ticks(self, entries: list[dict], runs: Runs) -> None:
        for refused in self.tick_reader.collect(entries, runs):
            log.warning("malformed tick skipped", extra={"kv": {"reason": repr(str(refused))}})
            self.stats.rejected_entries += 1

    def _take_last_price(self, symbol: str, prices: list[Decimal], outbox: Outbox) -> None:
        self.stats.ticks += len(prices)
        self.last_prices[symbol] = prices[-1]
        outbox.last_prices[symbol] = str(prices[-1])

    def _apply_ticks(
        self,
        batch: Batch,
        symbol: str,
        run: tuple[list[Decimal], list[int], list[bool]],
        outbox: Outbox,
    ) -> None:
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
                if ticks.min_ts >= tracked.state.opened_ms:  # every tick marked it
                    tracked.fold(ticks.low, ticks.high)
                continue
            batch.set_state(tracked, result.position)
            batch.flush_positions()  # the row first: one gone meanwhile (StaleBook) takes no fill
            batch.add_fills(tracked, result.exit, result.position.closed_ms, None)
            outbox.events.append(("position.closed", {"_tracked": tracked}))
            self._guard_after_exit(batch, tracked, outbox)
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

    def check_trading_windows(self, now: datetime | None = None) -> int:
        """Flatten traders whose trading window just ended; returns how many intents went out."""
        self._last_window_check = time.monotonic()
        now = now or datetime.now(UTC)

        def claim(trader_id: int, day) -> bool:
            key = self.settings.stream(f"window_flattened:{trader_id}:{day.isoformat()}")
            return bool(self.redis.set(key, "1", nx=True, ex=3 * 86_400))

        outbox = Outbox()
        with transaction(self.sessions) as session:
            queued, notes = outbox_rules.window_end_flattens(session, now, claim)
            self._add_intents(outbox, queued, notes)
        self.publisher.publish(outbox)
        return len(queued)

    def _guard_after_exit(self, batch: Batch, tracked: Tracked, outbox: Outbox) -> None:
        recorder = batch.recorder(tracked.recorder_id)
        if recorder is None:
            return
        batch.flush_positions()
        closed_at = ms_to_dt(tracked.state.closed_ms)
        queued, notes = outbox_rules.daily_loss_guard(
            batch.session,
            recorder,
            batch.traders(recorder.id),
            closed_at,
            symbol=tracked.state.symbol,
        )
        self._add_intents(outbox, queued, notes)

    @staticmethod
    def _add_intents(outbox: Outbox, queued: list[orders.QueuedIntent], notes: list) -> None:
        outbox.intents += queued
        for note in notes:
            outbox.events.append(
                (
                    f"account.trader_{note.kind}",
                    {"trader_id": note.trader_id, "user_id": note.user_id, "message": note.message},
                )
            )


def _entry_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _order_key(is_tick: bool, entry_id: str) -> tuple[int, bool, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), is_tick, int(seq or 0)
