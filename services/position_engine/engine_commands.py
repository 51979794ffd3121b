"""Changes to the engine's tables that the UI asks for on `jt:engine_commands`: a recorder deleted
with its signals and positions, or its history reset. The engine alone writes positions, fills
and signals, so its book never goes stale under it.

Each command is applied in its own transaction, which also moves the stream's offset (so one
redelivered after its commit changes nothing), then answered on `jt:events` and acknowledged.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, recorder_tokens, streams
from libs.common.config import Settings
from libs.common.storage.db import transaction
from libs.common.storage.models import Position, Recorder, Signal
from libs.common.streams import EngineCommand, MalformedMessage
from services.position_engine.arrival import Fields, claim_all, entry_position
from services.position_engine.book import OpenBook
from services.position_engine.publisher import Outbox, Publisher
from services.position_engine.repository import Batch

log = logging.getLogger("position_engine")

COMMANDS_PER_STEP = 50
READER_TTL_MS = 5_000  # the UI waits for an answer only while this key lives
READER_REFRESH_S = 1.0
ANSWERS = {
    streams.DELETE_RECORDER: events.RECORDER_DELETED,
    streams.RESET_HISTORY: events.RECORDER_HISTORY_RESET,
}


class CommandHandler:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        publisher: Publisher,
        book: OpenBook,
        consumer: str,
    ):
        self.settings = settings
        self.sessions = sessions
        self.redis = client
        self.publisher = publisher
        self.book = book
        self.consumer = consumer
        self.stream = settings.own_key(streams.ENGINE_COMMANDS)
        self.reader_key = settings.own_key(streams.ENGINE_COMMANDS_READER)
        self._pending_first = True  # our unacknowledged commands go before new ones
        self._announced_at = float("-inf")

    def start(self) -> None:
        streams.ensure_group(self.redis, self.stream, streams.ENGINE_GROUP)
        self._pending_first = True
        self._announced_at = float("-inf")

    def stop(self) -> None:
        """No longer reading: the UI stops waiting for answers (unless another engine reads)."""
        try:
            if self.redis.get(self.reader_key) == self.consumer:
                self.redis.delete(self.reader_key)
        except redis.RedisError:
            pass  # the key expires by itself

    def claim_abandoned(self, min_idle_ms: int) -> int:
        claimed = claim_all(self.redis, self.stream, self.consumer, min_idle_ms)
        if claimed:
            self._pending_first = True
            log.info("claimed abandoned engine commands", extra={"kv": {"count": claimed}})
        return claimed

    def apply_waiting(self) -> int:
        """Apply the commands waiting, in order, without blocking; returns how many were read."""
        entries = self._read()
        for entry_id, fields in entries:
            try:
                self._apply(entry_id, fields)
            except (OperationalError, redis.ConnectionError):
                self._pending_first = True  # unacknowledged: applied when the database is back
                raise
            except Exception as exc:  # rolled back; a poison command must not stop the engine
                log.exception("engine command failed; set aside", extra={"kv": {"id": entry_id}})
                self._set_aside(entry_id, fields, f"internal error: {type(exc).__name__}")
        return len(entries)

    def _set_aside(self, entry_id: str, fields: Fields, reason: str) -> None:
        """Acknowledged into the dead letter stream, where a person can look at it."""
        outbox = Outbox(acks={self.stream: [entry_id]})
        outbox.dead_letters.append(
            {"entry_id": entry_id, "reason": reason, "fields": json.dumps(fields)}
        )
        log.warning(
            "engine command set aside", extra={"kv": {"entry_id": entry_id, "reason": repr(reason)}}
        )
        self.publisher.publish(outbox)

    def _read(self) -> list[tuple[str, Fields]]:
        pipe = self.redis.pipeline(transaction=False)
        start = "0" if self._pending_first else ">"
        pipe.xreadgroup(
            streams.ENGINE_GROUP, self.consumer, {self.stream: start}, count=COMMANDS_PER_STEP
        )
        if time.monotonic() - self._announced_at > READER_REFRESH_S:
            pipe.set(self.reader_key, self.consumer, px=READER_TTL_MS)
            self._announced_at = time.monotonic()
        response = pipe.execute()[0]
        entries = [
            (entry_id, fields or {}) for _, items in response or [] for entry_id, fields in items
        ]
        if self._pending_first and not entries:
            self._pending_first = False
            return self._read()
        return entries

    def _apply(self, entry_id: str, fields: Fields) -> None:
        outbox = Outbox(acks={self.stream: [entry_id]})
        try:
            command = EngineCommand.from_fields(fields)
        except MalformedMessage as exc:
            self._set_aside(entry_id, fields, str(exc))
            return
        with transaction(self.sessions) as session:
            batch = Batch(session, self.book)
            done = batch.applied_up_to(streams.ENGINE_GROUP, (self.stream,)).get(self.stream)
            fresh = done is None or entry_position(entry_id) > done
            if fresh:
                recorder = session.get(Recorder, command.recorder_id)
                if recorder is not None and recorder.user_id != command.user_id:
                    recorder = None  # the UI checked the owner: not a recorder of theirs
                token = recorder.webhook_token if recorder is not None else None
                counts = _carry_out(session, command, recorder)
                batch.record_applied(streams.ENGINE_GROUP, {self.stream: entry_position(entry_id)})
        if fresh:
            self._after_commit(command, token, counts, outbox)
        else:  # committed, then the engine died before acknowledging it
            log.info("engine command already applied", extra={"kv": {"entry_id": entry_id}})
            self.publisher.publish(outbox)

    def _after_commit(
        self, command: EngineCommand, token: str | None, counts: tuple[int, int], outbox: Outbox
    ) -> None:
        if command.kind == streams.DELETE_RECORDER:
            gone = self.book.drop_recorder(command.recorder_id)
            for tracked in gone:
                self.publisher.forget_marked(tracked.id)
            if gone:  # the price feed follows the symbols with open positions
                outbox.open_symbols = {s: len(h) for s, h in self.book.by_symbol.items() if h}
            if token is not None:  # the gateway stops taking its signals (the UI did too)
                recorder_tokens.remove(self.redis, self.settings, token)
        signals, positions = counts
        outbox.events.append(
            (
                ANSWERS[command.kind],
                {
                    "command_id": command.command_id,
                    "recorder_id": command.recorder_id,
                    "user_id": command.user_id,
                    "found": token is not None,
                    "deleted_signals": signals,
                    "deleted_positions": positions,
                },
            )
        )
        self.publisher.publish(outbox)
        log.info(
            "engine command applied",
            extra={
                "kv": {
                    "command": command.kind,
                    "recorder_id": command.recorder_id,
                    "found": token is not None,
                    "deleted_signals": signals,
                    "deleted_positions": positions,
                }
            },
        )


def _carry_out(
    session: Session, command: EngineCommand, recorder: Recorder | None
) -> tuple[int, int]:
    """Delete what the command names; returns how many signals and positions went."""
    if recorder is None:
        return 0, 0
    positions = delete(Position).where(Position.recorder_id == recorder.id)
    if command.kind == streams.RESET_HISTORY:  # an open position is live state and stays
        positions = positions.where(Position.status == "closed")
    run = session.connection().execute  # a CursorResult, with its rowcount
    signals = run(delete(Signal).where(Signal.recorder_id == recorder.id)).rowcount
    deleted_positions = run(positions).rowcount  # their fills go by ON DELETE CASCADE
    if command.kind == streams.DELETE_RECORDER:
        run(delete(Recorder).where(Recorder.id == recorder.id))  # and its traders
    return signals, deleted_positions
