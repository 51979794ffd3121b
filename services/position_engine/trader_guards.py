"""The engine's side of the trader rules (trader_rules.py): the daily loss guard after an exit, the
flatten at a trading window's end, and the events that tell users about them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, date, datetime

import redis
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, orders
from libs.common.config import Settings
from libs.common.storage.db import transaction
from services.position_engine import trader_rules
from services.position_engine.book import Tracked, ms_to_dt
from services.position_engine.publisher import Outbox, Publisher
from services.position_engine.repository import Batch

WINDOW_CHECK_EVERY_S = 15.0  # trading windows end on the minute; a flatten goes out within this
WINDOW_FLATTENED_TTL_S = 3 * 86_400  # the once-per-trade-date claim outlives its trade date


class TraderGuards:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        client: redis.Redis,
        publisher: Publisher,
    ):
        self.settings = settings
        self.sessions = sessions
        self.redis = client
        self.publisher = publisher
        self.last_window_check = 0.0  # time.monotonic() of the last trading window check

    def window_check_due(self) -> bool:
        return time.monotonic() - self.last_window_check > WINDOW_CHECK_EVERY_S

    def check_trading_windows(self, now: datetime | None = None) -> int:
        """Flatten traders whose trading window just ended; returns how many intents went out."""
        self.last_window_check = time.monotonic()
        now = now or datetime.now(UTC)

        def claim(trader_id: int, day: date) -> bool:
            key = self.settings.stream(f"window_flattened:{trader_id}:{day.isoformat()}")
            return bool(self.redis.set(key, "1", nx=True, ex=WINDOW_FLATTENED_TTL_S))

        outbox = Outbox()
        with transaction(self.sessions) as session:
            queued, notes = trader_rules.window_end_flattens(
                session,
                now,
                claim,
                (self.settings.engine_partition, self.settings.engine_partitions),
            )
            add_intents(outbox, queued, notes)
        self.publisher.publish(outbox)
        return len(queued)

    @staticmethod
    def after_exit(batch: Batch, tracked: Tracked, outbox: Outbox) -> None:
        """A tick closed the position: pause (and flatten) traders past their daily loss."""
        closed_ms = tracked.state.closed_ms  # set: the position is closed
        if closed_ms is None:
            return
        closed_at = ms_to_dt(closed_ms)
        watched = trader_rules.loss_watched(batch.traders(tracked.recorder_id), closed_at)
        if not watched:
            return
        batch.flush_positions()  # today's realized PnL is read from the rows
        queued, notes = trader_rules.daily_loss_guard(
            batch.session, tracked.recorder_id, watched, closed_at, symbol=tracked.state.symbol
        )
        add_intents(outbox, queued, notes)


def after_stop_move(batch: Batch, tracked: Tracked, outbox: Outbox) -> None:
    """A tick moved the position's stop: the traders' broker stops follow (`move_stop`)."""
    traders = batch.traders(tracked.recorder_id)
    if traders:
        batch.flush_positions()
        add_intents(
            outbox,
            trader_rules.stop_move_intents(batch.session, traders, tracked.state, tracked.id),
            (),
        )


def add_intents(
    outbox: Outbox, queued: list[orders.QueuedIntent], notes: Sequence[trader_rules.TraderNote]
) -> None:
    """Intents for the executor once committed, and an event per note for the trader's owner."""
    outbox.intents += queued
    for note in notes:
        outbox.events.append(
            (
                events.trader_event(note.kind),
                {"trader_id": note.trader_id, "user_id": note.user_id, "message": note.message},
            )
        )
