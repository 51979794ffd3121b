"""What runs beside the workers: handing over intents nobody enqueued, and the paper broker's
working orders filled by ticks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from libs.common import events, orders, streams
from libs.common.serialize import intent_dict, num
from libs.common.storage.db import transaction
from libs.common.storage.models import OrderIntent, PaperPosition
from libs.common.streams import MalformedMessage, TickMessage
from services.executor import owners
from services.executor.jobs import ExecutorContext
from services.executor.paper import fill_working, settle_entry, working_symbols
from services.executor.paper_orders import Extremes, OrderFill

log = logging.getLogger("executor")


def _bracket_event(session: Session, book: PaperPosition, fill: OrderFill) -> dict[str, Any]:
    data: events.BracketFilledData = {
        "user_id": owners.subaccount_owner(session, book.subaccount_id),
        "subaccount_id": book.subaccount_id,
        "contract": book.contract,
        "reason": fill.reason,
        "fill_price": num(fill.price),
        "quantity": num(fill.quantity),
        "net_qty": num(fill.net_qty),
        "realized_pnl": num(fill.book_pnl),
    }
    return dict(data)


QUEUED_GRACE = timedelta(seconds=3)  # the engine enqueues right after its commit
SENDING_GRACE = timedelta(seconds=30)  # longer than any broker request takes
PAPER_GROUP = "paper_broker"
PAPER_CLAIM_IDLE_MS = 30_000  # a live executor acknowledges within a second
PAPER_CLAIM_EVERY_S = 30.0


def sweep(ctx: ExecutorContext, rq_conn: redis.Redis) -> int:
    """Enqueue a drain for every subaccount with an intent left queued or stuck in sending."""
    now = datetime.now(UTC)
    with ctx.sessions() as session:
        rows = session.execute(
            select(OrderIntent.id, OrderIntent.subaccount_id, OrderIntent.priority)
            .where(
                or_(
                    (OrderIntent.status == "queued")
                    & (OrderIntent.created_at < now - QUEUED_GRACE),
                    (OrderIntent.status == "sending") & (OrderIntent.sent_at < now - SENDING_GRACE),
                )
            )
            .order_by(OrderIntent.sequence)
        ).all()
    first: dict[int, orders.QueuedIntent] = {}
    for intent_id, subaccount_id, priority in rows:
        first.setdefault(subaccount_id, orders.QueuedIntent(intent_id, subaccount_id, priority))
    orders.enqueue(rq_conn, ctx.settings.stream_prefix, first.values())
    return len(first)


def run_every(
    check: Callable[[], object], name: str, stop: threading.Event, every_s: float
) -> None:
    """`check()` every `every_s` until `stop`, an exception logged and the loop going on; a
    check that takes far longer than its period is logged too."""
    while not stop.wait(every_s):
        started = time.monotonic()
        try:
            check()
        except Exception:
            log.exception(f"{name} check failed")
        took = time.monotonic() - started
        if took > every_s * 4:
            log.warning(f"{name} check is slow", extra={"kv": {"seconds": round(took, 3)}})


def run_sweeper(
    ctx: ExecutorContext, rq_conn: redis.Redis, stop: threading.Event, every_s: float = 2.0
) -> None:
    while not stop.wait(every_s):
        try:
            sweep(ctx, rq_conn)
        except Exception:
            log.exception("sweep failed")


class PaperBracketWatcher:
    """Reads `jt:ticks` through its own consumer group and fills the working paper orders (targets,
    stops, resting limit entries) it reaches: one `order.bracket_filled` per fill, and
    `order.filled` for the intent of a resting entry.

    Like the engine, it acknowledges a batch only after its transaction, re-reads its own pending
    entries after a failure, and takes over what a killed executor read and never acknowledged.
    """

    def __init__(self, ctx: ExecutorContext, consumer: str):
        self.ctx = ctx
        self.consumer = consumer
        # Partition 0's copy: every partition's ticks stream carries every tick.
        self.stream = ctx.settings.partition_key(streams.TICKS, 0)
        self._backlog = True  # start with what this consumer name left pending, if anything
        self._last_claim = 0.0

    def prepare(self) -> None:
        # Start from new ticks: an old price must not fill a bracket placed after it.
        streams.ensure_group(self.ctx.redis, self.stream, PAPER_GROUP, start="$")

    def claim_abandoned(self, min_idle_ms: int = PAPER_CLAIM_IDLE_MS) -> int:
        """Take over ticks a killed executor read and never acknowledged."""
        claimed, start = 0, "0-0"
        while True:
            start, entries = self.ctx.redis.xautoclaim(
                self.stream, PAPER_GROUP, self.consumer, min_idle_ms, start, count=1000
            )[:2]
            claimed += len(entries)
            if start in ("0-0", b"0-0"):
                break
        self._last_claim = time.monotonic()
        if claimed:
            self._backlog = True
        return claimed

    def _read(self, block_ms: int | None) -> list[streams.Entry]:
        if time.monotonic() - self._last_claim > PAPER_CLAIM_EVERY_S:
            self.claim_abandoned()
        entries: list[streams.Entry] = []
        if self._backlog:
            entries = streams.read_entries(
                self.ctx.redis.xreadgroup(
                    PAPER_GROUP, self.consumer, {self.stream: "0"}, count=1000
                )
            )
            self._backlog = bool(entries)
        if not self._backlog:
            entries = streams.read_entries(
                self.ctx.redis.xreadgroup(
                    PAPER_GROUP, self.consumer, {self.stream: ">"}, count=1000, block=block_ms
                )
            )
        return entries

    def step(self, block_ms: int | None = 500) -> int:
        entries = self._read(block_ms)
        if not entries:
            return 0
        ticks: list[tuple[str, Decimal]] = []
        for _, fields in entries:
            try:
                tick = TickMessage.from_fields(fields)
            except MalformedMessage:
                continue
            ticks.append((tick.symbol, tick.price))
        outgoing = self._fill(ticks)
        for event_type, data in outgoing:
            streams.publish_event(
                self.ctx.redis, self.ctx.settings.stream(streams.EVENTS), event_type, data
            )
        self.ctx.redis.xack(self.stream, PAPER_GROUP, *(entry_id for entry_id, _ in entries))
        return len(entries)

    def _fill(self, ticks: list[tuple[str, Decimal]]) -> list[tuple[str, dict[str, Any]]]:
        """Fill what the ticks reach, in one transaction; the events to publish after it."""
        outgoing: list[tuple[str, dict[str, Any]]] = []
        now = datetime.now(UTC)
        with transaction(self.ctx.sessions) as session:
            symbols = working_symbols(session)
            seen = Extremes()
            for symbol, price in ticks:
                if symbol not in symbols or not seen.is_new(symbol, price):
                    continue
                for book, fill in fill_working(session, symbol, price, now):
                    intent = settle_entry(session, fill)
                    if intent is not None:
                        outgoing.append((events.ORDER_FILLED, intent_dict(intent)))
                    outgoing.append(
                        (events.ORDER_BRACKET_FILLED, _bracket_event(session, book, fill))
                    )
                    if fill.placed:  # new levels: any of them may be first reached from here
                        seen.restart(symbol, price)
        return outgoing

    def run(self, stop: threading.Event) -> None:
        self.prepare()
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("paper bracket step failed; its ticks are read again")
                self._backlog = True
                stop.wait(1.0)
