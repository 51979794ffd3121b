"""The engine's stream adapter: read `jt:signals` and `jt:ticks`, apply, commit, publish, ack.

Entries are read through the `position_engine` consumer group in batches and applied in stream
order in one transaction; acknowledgements go out only after the commit. `PositionEngine` ties
together the reader (arrival.py), the batch (batch_apply.py), the UI's commands
(engine_commands.py), the trader guards (trader_guards.py) and the leader lock checks.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import cast

import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from libs.common import orders, streams
from libs.common.config import Settings
from libs.common.storage.db import transaction
from services.position_engine.arrival import CLAIM_MIN_IDLE_MS, ArrivalReader, Entry
from services.position_engine.batch_apply import BatchApplier
from services.position_engine.book import OpenBook
from services.position_engine.engine_commands import CommandHandler
from services.position_engine.publisher import Outbox, Publisher
from services.position_engine.repository import Batch
from services.position_engine.signal_apply import Stats
from services.position_engine.trader_guards import TraderGuards

__all__ = ["LostLead", "PositionEngine", "Stats"]

log = logging.getLogger("position_engine")

CLAIM_EVERY_S = 30.0
# How often the active engine makes sure it still holds the leader lock (and after any database
# error); a standby that takes the lock waits longer than this before it applies anything.
LEAD_CHECK_EVERY_S = 0.2


class LostLead(Exception):
    """Another engine may be applying entries now: this one must stop and stand by."""


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
        self.redis = client
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.publisher = Publisher(settings, client, orders.rq_connection(settings.queue_url))
        self.partition = settings.engine_partition
        self.signals_stream = settings.own_key(streams.SIGNALS)
        self.ticks_stream = settings.own_key(streams.TICKS)
        self.stats = Stats()
        self.on_batch: Callable[[int, float], None] = lambda size, seconds: None  # e.g. metrics
        # The open positions of this partition's recorders, loaded at start and kept current.
        self.book = OpenBook(self.partition, settings.engine_partitions)
        self.arrival = ArrivalReader(
            client, self.signals_stream, self.ticks_stream, self.consumer, batch_size
        )
        self.applier = BatchApplier(
            self.signals_stream, self.ticks_stream, sessions, self.book, self.publisher, self.stats
        )
        self.commands = CommandHandler(
            settings, sessions, client, self.publisher, self.book, self.consumer
        )
        self.guards = TraderGuards(settings, sessions, client, self.publisher)
        self._sessions = sessions
        self._last_claim = 0.0
        # Whether this copy still holds the leader lock (the service's; always, by default).
        self.still_leading: Callable[[], bool] = lambda: True
        self._lead_checked_at = float("-inf")  # -inf: check before the next batch

    # --- what the parts share ----------------------------------------------------------------

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._sessions

    @sessions.setter
    def sessions(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = self.commands.sessions = self.guards.sessions = sessions
        self.applier.set_sessions(sessions)

    @property
    def last_prices(self) -> dict[str, Decimal]:
        return self.applier.last_prices

    @last_prices.setter
    def last_prices(self, prices: dict[str, Decimal]) -> None:
        self.applier.set_last_prices(prices)

    @property
    def batch_size(self) -> int:
        return self.arrival.batch_size

    @batch_size.setter
    def batch_size(self, size: int) -> None:
        self.arrival.batch_size = size

    # --- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> None:
        self.applier.ticks_applied = None
        self.arrival.start()
        self.commands.start()
        saved = cast(dict[str, str], self.redis.hgetall(self.publisher.last_price_key))
        self.last_prices = {k: Decimal(v) for k, v in saved.items()}
        with transaction(self.sessions) as session:
            self.book.load(session)  # started, or just took the lead: read what the last one left
            counts = Batch(session, self.book).open_symbol_counts()
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(self.settings.own_key(streams.OPEN_SYMBOLS) + ":next")
        self.publisher.write_open_symbols(pipe, counts)
        pipe.execute()
        self.claim_abandoned(min_idle_ms=0)

    def claim_abandoned(self, min_idle_ms: int = CLAIM_MIN_IDLE_MS) -> int:
        """Take over entries (and commands) another (dead) consumer read but never acknowledged."""
        claimed = self.arrival.claim_abandoned(min_idle_ms)
        claimed += self.commands.claim_abandoned(min_idle_ms)
        self._last_claim = time.monotonic()
        return claimed

    def run_forever(self, stop: Callable[[], bool] = lambda: False) -> None:
        self.prepare()
        try:
            while not stop():
                try:
                    self.step(block_ms=200)
                except redis.ConnectionError:
                    # Effects already committed are deduplicated when the entries come back.
                    log.warning("redis unreachable; retrying")
                    self.arrival.reread_pending()
                    time.sleep(1.0)
        finally:
            self.commands.stop()

    # --- one step ----------------------------------------------------------------------------

    def read(self, block_ms: int | None) -> list[Entry]:
        """The next entries of both streams in arrival order (see `ArrivalReader.read`)."""
        return self.arrival.read(block_ms)

    def step(self, block_ms: int | None = 200) -> int:
        """Apply the UI's waiting commands, then read and apply one batch; returns how many
        entries the batch held."""
        self.check_lead()
        if time.monotonic() - self._last_claim > CLAIM_EVERY_S:
            self.claim_abandoned()
        if self.guards.window_check_due():
            try:
                self.check_trading_windows()
            except Exception:  # a failed check is retried on the next one; signals go on
                log.exception("trading window check failed")
        try:
            self.commands.apply_waiting()
        except OperationalError as exc:
            self._database_away(exc, "engine command not applied, will retry")
            return 0
        entries = self.read(block_ms)
        if not entries:
            return 0
        self.check_lead()  # entries read after the lock was lost stay pending for the next leader
        started = time.perf_counter()
        try:
            outbox = self.apply_batch(entries)
        except (OperationalError, redis.ConnectionError) as exc:
            # The database is away: acknowledge nothing, re-read our pending entries later.
            self._database_away(exc, "batch not applied, will retry")
            return len(entries)
        except Exception:
            log.exception("batch failed; applying its entries one at a time")
            outbox = self.applier.apply_one_by_one(entries)
        self.publisher.publish(outbox)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        self.stats.last_batch_size = len(entries)
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000
        self.on_batch(len(entries), self.stats.last_batch_ms / 1000)
        return len(entries)

    def _database_away(self, exc: Exception, message: str) -> None:
        log.warning(message, extra={"kv": {"error": type(exc).__name__}})
        self.arrival.reread_pending()
        # A restarted PostgreSQL has let go of the leader lock: ask before the next batch.
        self._lead_checked_at = float("-inf")
        time.sleep(1.0)

    def check_lead(self) -> None:
        """Raise LostLead when this copy no longer holds the leader lock; asked every
        LEAD_CHECK_EVERY_S, and before the first batch after a database error."""
        if time.monotonic() - self._lead_checked_at < LEAD_CHECK_EVERY_S:
            return
        if not self.still_leading():
            self.arrival.reread_pending()
            raise LostLead
        self._lead_checked_at = time.monotonic()

    def apply_batch(self, entries: list[Entry]) -> Outbox:
        return self.applier.apply_batch(entries)

    def apply_one_by_one(self, entries: list[Entry]) -> Outbox:
        return self.applier.apply_one_by_one(entries)

    def check_trading_windows(self, now: datetime | None = None) -> int:
        """Flatten traders whose trading window just ended; returns how many intents went out."""
        return self.guards.check_trading_windows(now)
