"""What a committed batch tells the world: events, acknowledgements, last prices, open symbols,
and the order intents handed to the executor — all after the commit, never before."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal

import redis

from libs.common import orders, partitions, streams
from libs.common.config import Settings
from libs.common.futures.instruments import contract_spec
from libs.common.serialize import num, position_dict, usd
from services.position_engine.book import Tracked
from services.position_engine.rules import PositionState

MARK_INTERVAL_S = 0.5  # at most two position.marked events a second per position
TICKS_MAXLEN = 1_000_000


@dataclass
class Outbox:
    """What a committed batch publishes: events, last prices, and the ids to acknowledge."""

    events: list[tuple[str, dict]] = field(default_factory=list)
    acks: dict[str, list[str]] = field(default_factory=dict)
    last_prices: dict[str, str] = field(default_factory=dict)
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    marked: dict[int, Tracked] = field(default_factory=dict)  # positions a tick moved, by row id
    settled: list[str] = field(
        default_factory=list
    )  # signal ids now in PostgreSQL, no longer pending
    open_symbols: dict[str, int] | None = None  # recounted when a position opened or closed
    intents: list[orders.QueuedIntent] = field(default_factory=list)  # committed; tell the executor


@dataclass(frozen=True)
class _Marked:
    """The last position.marked of a position: when, at what price and state, its fields."""

    at: float
    price: Decimal | None
    state: PositionState
    fields: dict


class Publisher:
    def __init__(self, settings: Settings, client: redis.Redis, rq: redis.Redis):
        self.settings = settings
        self.redis = client
        self.rq = rq
        self.events_stream = settings.stream(streams.EVENTS)
        self.ticks_stream = settings.own_key(streams.TICKS)
        self.last_price_key = settings.own_key(partitions.LAST_PRICES)
        self._last_marked: dict[int, _Marked] = {}

    def forget_marked(self, position_id: int) -> None:
        self._last_marked.pop(position_id, None)

    def resolve_events(self, outbox: Outbox) -> None:
        """Turn position references into event payloads once the rows hold their final state."""
        resolved: list[tuple[str, dict]] = []
        for event_type, data in outbox.events:
            tracked: Tracked | None = data.get("_tracked")
            if event_type == "position.closed" and tracked is not None:
                self.forget_marked(tracked.id)
            resolved.append(
                (event_type, data if tracked is None else self._position_payload(tracked))
            )
        now = time.monotonic()
        for pid, tracked in outbox.marked.items():
            if tracked.state.status == "open" and (
                payload := self._marked_payload(pid, tracked, now)
            ):
                resolved.append(("position.marked", payload))
        outbox.events = resolved
        outbox.marked = {}

    def _marked_payload(self, pid: int, tracked: Tracked, now: float) -> dict | None:
        """The position.marked payload, or None when one went out less than MARK_INTERVAL_S ago
        or showed the same: a page shows the last price and the marks, nothing else moves."""
        price = tracked.last_price
        if price is None:  # never so: the tick that marked the position set it
            return None
        last = self._last_marked.get(pid)
        if last is not None and (
            now - last.at < MARK_INTERVAL_S
            or (last.price, last.state) == (tracked.last_price, tracked.state)
        ):
            return None
        # The position's own fields change seldom: reuse them while its state is the same.
        fields = (
            last.fields
            if last is not None and last.state is tracked.state
            else self._position_payload(tracked)
        )
        self._last_marked[pid] = _Marked(now, tracked.last_price, tracked.state, fields)
        unrealized = tracked.state.unrealized_pnl(price, contract_spec(tracked.state.symbol))
        return {**fields, "last_price": num(price), "unrealized_pnl": usd(unrealized)}

    @staticmethod
    def _position_payload(tracked: Tracked) -> dict:
        payload = position_dict(tracked)  # type: ignore[arg-type]  # reads like a Position row
        payload["user_id"] = tracked.user_id
        return payload

    def publish(self, outbox: Outbox) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for event_type, data in outbox.events:
            streams.publish_event(pipe, self.events_stream, event_type, data)
        for letter in outbox.dead_letters:
            streams.add(pipe, self.settings.stream("dead_letter"), letter, maxlen=10_000)
        if outbox.last_prices:
            streams.set_hash(pipe, self.last_price_key, outbox.last_prices)
        if outbox.settled:
            # DEL by name: a cluster pipeline's delete() takes one key; these share {pK}'s slot.
            pipe.execute_command(
                "DEL",
                *(self.settings.own_key(streams.SIGNAL_PENDING + sid) for sid in outbox.settled),
            )
        for stream, ids in outbox.acks.items():
            pipe.xack(stream, streams.ENGINE_GROUP, *ids)
        if self.ticks_stream in outbox.acks:
            pipe.xtrim(self.ticks_stream, maxlen=TICKS_MAXLEN, approximate=True)
        if outbox.open_symbols is not None:
            self.write_open_symbols(pipe, outbox.open_symbols)
        pipe.execute()
        # A crash before this line leaves the intents queued in PostgreSQL; the executor's sweep
        # finds intents nobody enqueued and hands them over.
        orders.enqueue(self.rq, self.settings.stream_prefix, outbox.intents)

    def write_open_symbols(self, pipe: redis.client.Pipeline, counts: dict[str, int]) -> None:
        """Replace `jt:open_symbols` (this partition's) at once: the price feed follows the
        symbols of every partition's hash."""
        key = self.settings.own_key(streams.OPEN_SYMBOLS)
        if not counts:
            pipe.delete(key)
            return
        streams.set_hash(pipe, key + ":next", counts)
        pipe.execute_command("RENAME", key + ":next", key)  # rename() is blocked on a cluster
