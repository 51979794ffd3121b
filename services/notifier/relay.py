"""Reads `jt:events` with the notifier's own consumer group and enqueues one delivery job per
matching destination; the engine and the executor only publish, as they always did."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, streams
from libs.common.config import Settings
from libs.common.notify import delivery, rules
from libs.common.storage.models import NotificationDestination

log = logging.getLogger("notifier")

GROUP = "notifier"
BATCH = 100
BLOCK_MS = 1000
CLAIM_IDLE_MS = 60_000  # entries a dead notifier took but never acknowledged
CLAIM_EVERY_S = 30.0
FEED_STATE = "notify:feed_status"  # the last price.status the notifiers saw
FORGET_CONSUMER_IDLE_MS = 3_600_000  # consumers (one per process) gone this long, with nothing


def destinations_for(session: Session, notice: rules.Notice) -> list[int]:
    """The enabled destinations that asked for the notice's event (of its user, or anyone's)."""
    query = select(NotificationDestination.id).where(
        NotificationDestination.enabled.is_(True),
        NotificationDestination.events.contains([notice.event]),
    )
    if notice.user_id is not None:
        query = query.where(NotificationDestination.user_id == notice.user_id)
    return list(session.scalars(query.order_by(NotificationDestination.id)))


class EventRelay:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        rq_conn: redis.Redis,
        consumer: str,
    ):
        self.settings, self.sessions, self.redis, self.rq = settings, sessions, client, rq_conn
        self.stream = settings.stream(streams.EVENTS)
        self.consumer = consumer
        self.claim_idle_ms = CLAIM_IDLE_MS
        self._next_claim = 0.0

    def ensure_group(self) -> None:
        # "$": a new notifier tells of what happens from now on, not of old history.
        streams.ensure_group(self.redis, self.stream, GROUP, start="$")

    def step(self, block_ms: int = BLOCK_MS) -> int:
        """Claim what a dead notifier left, read one batch, enqueue its deliveries, acknowledge
        it; how many jobs were queued."""
        queued = 0
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + CLAIM_EVERY_S
            queued += self.claim_abandoned()
        answer = self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=BATCH, block=block_ms
        )
        return queued + self.handle_entries(streams.read_entries(answer))

    def handle_entries(self, entries: list[streams.Entry]) -> int:
        # Acknowledged after their jobs are queued: a crash in between tells twice, never never.
        queued = sum(self.handle(str(f.get("type", "")), f.get("data") or "{}") for _, f in entries)
        if entries:
            self.redis.xack(self.stream, GROUP, *(entry_id for entry_id, _ in entries))
        return queued

    def claim_abandoned(self) -> int:
        queued, start = 0, "0-0"
        while True:
            answer = self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, self.claim_idle_ms, start_id=start, count=BATCH
            )
            start, claimed = answer[0], answer[1]
            queued += self.handle_entries([e for e in claimed if e[1] is not None])
            if start in ("0-0", b"0-0"):
                break
        for info in self.redis.xinfo_consumers(self.stream, GROUP):
            if info["pending"] == 0 and info["idle"] > FORGET_CONSUMER_IDLE_MS:
                self.redis.xgroup_delconsumer(self.stream, GROUP, info["name"])
        return queued

    def notices(self, event_type: str, data: dict[str, Any]) -> list[rules.Notice]:
        if event_type == events.PRICE_STATUS:
            # Kept in Redis (swapped atomically), so several notifiers see each change once.
            raw = self.redis.getset(self.settings.stream(FEED_STATE), json.dumps(data))
            previous = json.loads(str(raw)) if raw else None
            return rules.feed_notices(previous, data)
        notice = rules.notice_for(event_type, data)
        return [notice] if notice is not None else []

    def handle(self, event_type: str, raw: str) -> int:
        try:
            data = json.loads(raw)
        except ValueError:
            return 0
        if not isinstance(data, dict):
            return 0
        queued = 0
        for notice in self.notices(event_type, data):
            with self.sessions() as session:
                targets = destinations_for(session, notice)
            for destination_id in targets:
                delivery.enqueue(self.rq, self.settings, destination_id, notice.event, notice.data)
                queued += 1
        return queued

    def run(self, stop: threading.Event) -> None:
        streams.keep_consuming(self.ensure_group, self.step, stop, log, "notifier relay")
