"""The engine's reader of `jt:signals` and `jt:ticks`: entries of both streams handed out in the
order they arrived, through the `position_engine` consumer group, with Redis's own clock."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from libs.common import redis_conn, streams

log = logging.getLogger("position_engine")

CLAIM_MIN_IDLE_MS = 60_000
NO_FRONTIER = (1 << 62, True, 0)  # after every possible order key
HOLD_MARGIN_US = 50  # past the end of the held ticks' millisecond before reading again

Fields = dict[str, Any]  # a stream entry's fields, decoded
Entry = tuple[str, str, Fields]  # (stream, entry id, fields)
OrderKey = tuple[int, bool, int]


class ArrivalReader:
    """Owns the engine's consumer on both streams: its backlog of pending entries, the ticks held
    for their millisecond, and Redis's clock at the last read."""

    def __init__(
        self,
        client: redis.Redis,
        signals_stream: str,
        ticks_stream: str,
        consumer: str,
        batch_size: int,
    ):
        self.redis = client
        self.signals_stream = signals_stream
        self.ticks_stream = ticks_stream
        self.consumer = consumer
        self.batch_size = batch_size
        # Streams whose own pending entries are read before new ones: at the start, after a
        # failure or a claim, and when entries had to wait for the other stream.
        self._backlog = {signals_stream, ticks_stream}
        self._held: list[Entry] = []  # ticks of the millisecond of the last read
        self._server_us = 0  # Redis's clock at the last read, in microseconds

    def start(self) -> None:
        """Create the groups if missing and read our pending entries first."""
        self._held = []
        self.reread_pending()
        for stream in (self.signals_stream, self.ticks_stream):
            streams.ensure_group(self.redis, stream, streams.ENGINE_GROUP)

    def reread_pending(self) -> None:
        """Nothing read so far counts as applied: read our pending entries again, first."""
        self._backlog = {self.signals_stream, self.ticks_stream}

    def claim_abandoned(self, min_idle_ms: int = CLAIM_MIN_IDLE_MS) -> int:
        """Take over entries another (dead) consumer read but never acknowledged."""
        claimed = 0
        for stream in (self.signals_stream, self.ticks_stream):
            claimed += claim_all(self.redis, stream, self.consumer, min_idle_ms)
        if claimed:
            self.reread_pending()
            log.info("claimed abandoned entries", extra={"kv": {"count": claimed}})
        return claimed

    def read(self, block_ms: int | None) -> list[Entry]:
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

    def _read_round(self, block_ms: int | None) -> tuple[list[Entry], dict[str, str]]:
        """One XREADGROUP over both streams, after the ticks held from the last round; returns
        the entries and each stream's start id."""
        both = (self.signals_stream, self.ticks_stream)
        starts = {stream: "0" if stream in self._backlog else ">" for stream in both}
        held, self._held = ([], []) if self.ticks_stream in self._backlog else (self._held, [])
        if held:  # wait out the rest of their millisecond; Redis's block timeouts are far coarser
            time.sleep((1000 - self._server_us % 1000 + HOLD_MARGIN_US) / 1e6)
        entries = held + self._read(starts, None if self._backlog or held else block_ms)
        self._backlog -= {
            s for s, start in starts.items() if start == "0" and not any(e[0] == s for e in entries)
        }
        return entries, starts

    def _in_order(self, entries: list[Entry], starts: dict[str, str]) -> list[Entry]:
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
            while index and order_key(True, entries[index - 1][1]) > frontier[self.signals_stream]:
                index -= 1
        else:
            entries.sort(key=lambda e: order_key(e[0] == self.ticks_stream, e[1]))
            index = next(
                (
                    i
                    for i, (stream, entry_id, _) in enumerate(entries)
                    if order_key(stream == self.ticks_stream, entry_id)
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

    def _read_up_to(self, stream: str, start: str, got: list[Entry]) -> OrderKey:
        """The order key up to which every entry of `stream` is either done or in `got`."""
        is_tick = stream == self.ticks_stream
        if len(got) >= self.batch_size:  # a full batch: more may follow it
            return order_key(is_tick, got[-1][1])
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
            else order_key(is_tick, delivered)
        )

    def _newer_than_now(self, is_tick: bool) -> OrderKey:
        """The frontier of a stream read to its end: a tick written from now on sorts after every
        entry already written, but a signal can still take the current millisecond, before its
        ticks."""
        return NO_FRONTIER if is_tick else (self._server_us // 1000, False, 0)

    def _read(self, starts: dict[str, str], block_ms: int | None) -> list[Entry]:
        """XREADGROUP, and Redis's clock right after it (in the same round trip on a plain
        Redis; on a cluster, from the node that holds both streams, which wrote their ids)."""
        response: Any
        if redis_conn.is_cluster(self.redis):
            response = self.redis.xreadgroup(
                streams.ENGINE_GROUP,
                self.consumer,
                starts,  # type: ignore[arg-type]  # redis-py#2917: an invariant dict
                count=self.batch_size,
                block=block_ms,
            )
            self._server_us = redis_conn.server_time_us(self.redis, self.signals_stream)
        else:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xreadgroup(
                streams.ENGINE_GROUP,
                self.consumer,
                starts,  # type: ignore[arg-type]  # redis-py#2917: an invariant dict
                count=self.batch_size,
                block=block_ms,
            )
            pipe.time()
            response, (seconds, micros) = pipe.execute()
            self._server_us = seconds * 1_000_000 + micros
        return [
            (stream, entry_id, fields)
            for stream, items in response or []
            for entry_id, fields in items
        ]


def claim_all(client: redis.Redis, stream: str, consumer: str, min_idle_ms: int) -> int:
    """XAUTOCLAIM every entry of the engine's group idle for `min_idle_ms`; returns how many."""
    claimed, start = 0, "0-0"
    while True:
        # Redis 6.2 answers [next, entries]; 7.0 adds the ids it found deleted.
        start, entries = client.xautoclaim(
            stream, streams.ENGINE_GROUP, consumer, min_idle_ms, start, count=500
        )[:2]
        claimed += len(entries)
        if start in ("0-0", b"0-0"):
            return claimed


def entry_position(entry_id: str) -> tuple[int, int]:
    """An entry id ("ms-seq") as a pair that compares in stream order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def order_key(is_tick: bool, entry_id: str) -> OrderKey:
    ms, _, seq = entry_id.partition("-")
    return int(ms), is_tick, int(seq or 0)
