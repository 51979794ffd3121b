"""One `jt:signals` entry applied in the engine's batch: the recorder rules, the position rows,
the traders' intents, the `signals` row and its event; a malformed entry rejected or set aside."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, streams
from libs.common.futures.instruments import contract_spec
from libs.common.serialize import num
from libs.common.storage.db import transaction
from libs.common.storage.models import Recorder
from libs.common.streams import MalformedMessage, SignalMessage
from services.position_engine import rules, trader_rules
from services.position_engine.arrival import Entry, Fields
from services.position_engine.book import OpenBook
from services.position_engine.publisher import Outbox
from services.position_engine.repository import Batch, ms_to_dt, recorder_settings
from services.position_engine.trader_guards import add_intents

log = logging.getLogger("position_engine")


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


class SignalApplier:
    """`last_prices` is the engine's (shared, changed in place): a signal without a price takes
    the last tick's."""

    def __init__(
        self,
        signals_stream: str,
        sessions: sessionmaker[Session],
        book: OpenBook,
        stats: Stats,
        last_prices: dict[str, Decimal],
    ):
        self.signals_stream = signals_stream
        self.sessions = sessions
        self.book = book
        self.stats = stats
        self.last_prices = last_prices

    def apply(self, batch: Batch, entry_id: str, fields: Fields, outbox: Outbox) -> None:
        try:
            message = SignalMessage.from_fields(fields)
            signal_id = uuid.UUID(message.signal_id)
        except (MalformedMessage, ValueError) as exc:
            self.record_malformed(batch, entry_id, fields, str(exc), outbox)
            return
        if batch.signal_seen(signal_id):
            log.info("signal already applied; skipped", extra={"kv": {"signal_id": signal_id}})
            outbox.settled.append(str(signal_id))
            return
        if not self.book.owns(message.recorder_id):
            # Written by hand to the wrong stream: the recorder's own engine never sees it.
            reason = (
                f"recorder {message.recorder_id} belongs to engine partition "
                f"{message.recorder_id % self.book.partitions}, not to this stream's "
                f"{self.book.partition}"
            )
            self.dead_letter(entry_id, fields, reason, outbox)
            return
        recorder = batch.recorder(message.recorder_id)
        if recorder is None:
            self.dead_letter(entry_id, fields, "the recorder no longer exists", outbox)
            return
        taken_up = datetime.now(
            UTC
        )  # the engine's hop in the signal's timeline: before its intents
        outcome, position_id = self._change_position(batch, message, recorder, signal_id, outbox)
        batch.add_signal(
            dict(
                id=signal_id,
                processed_at=taken_up,
                recorder_id=recorder.id,
                stream_id=entry_id,
                received_at=ms_to_dt(message.received_at),
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
                events.signal_event(outcome.status),
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

    def _change_position(
        self,
        batch: Batch,
        message: SignalMessage,
        recorder: Recorder,
        signal_id: uuid.UUID,
        outbox: Outbox,
    ) -> tuple[rules.SignalOutcome, int | None]:
        """The recorder rules' outcome, written with its fills and the traders' intents; returns
        it and the id of the position it concerns."""
        tracked = batch.open_position(recorder.id, message.symbol)
        signal_input = rules.SignalInput(
            signal_id=message.signal_id,
            symbol=message.symbol,
            action=message.action,
            price=message.price,
            qty=message.qty,
            position_size=message.position_size,
            market_position=message.market_position,
            received_ms=message.received_at,
            levels=rules.SignalLevels(
                message.tp_price, message.sl_price, message.tp_ticks, message.sl_ticks
            ),
            test=message.test,
        )
        outcome = rules.apply_signal(
            tracked.state if tracked else None,
            signal_input,
            recorder_settings(recorder),
            contract_spec(message.symbol),
            self.last_prices.get(message.symbol),
        )
        position_id = None
        changes = []
        for change in outcome.changes:
            touched = batch.apply_change(change, recorder, tracked, message.received_at, signal_id)
            position_id = touched.id
            outbox.events.append((events.position_event(change.event), {"_tracked": touched}))
            # Each change names its row, so a trader's skipped entry can be remembered by it.
            changes.append(replace(change, position=replace(change.position, id=touched.id)))
        outcome = replace(outcome, changes=tuple(changes))
        self._queue_intents(batch, message, recorder, signal_id, outcome, outbox)
        return outcome, position_id

    @staticmethod
    def _queue_intents(
        batch: Batch,
        message: SignalMessage,
        recorder: Recorder,
        signal_id: uuid.UUID,
        outcome: rules.SignalOutcome,
        outbox: Outbox,
    ) -> None:
        now = ms_to_dt(message.received_at)
        queued, notes = trader_rules.intents_for_signal(
            batch.session,
            batch.traders(recorder.id),
            outcome,
            symbol=message.symbol,
            ticker=message.ticker,
            signal_id=signal_id,
            now=now,
            holds=lambda recorder_id, symbol: (
                batch.open_position(recorder_id, symbol) is not None
                if batch.book.owns(recorder_id)
                else None  # another partition's recorder: its rows tell
            ),
        )
        closed = any(c.event == "closed" for c in outcome.changes)
        if closed and (watched := trader_rules.loss_watched(batch.traders(recorder.id), now)):
            batch.flush_positions()  # today's realized PnL is read from the rows
            guarded, guard_notes = trader_rules.daily_loss_guard(
                batch.session, recorder.id, watched, now, symbol=message.symbol
            )
            queued, notes = queued + guarded, notes + guard_notes
        add_intents(outbox, queued, notes)
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

    def record_malformed(
        self, batch: Batch, entry_id: str, fields: Fields, reason: str, outbox: Outbox
    ) -> None:
        """Mark a malformed entry rejected when it names a signal of a known recorder."""
        reason = f"malformed stream entry: {reason}"
        try:
            signal_id = uuid.UUID(str(fields.get("signal_id", "")))
            recorder = batch.recorder(int(fields.get("recorder_id", "")))
        except ValueError:
            recorder = None
        if recorder is None or batch.signal_seen(signal_id):
            self.dead_letter(entry_id, fields, reason, outbox)
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
                events.SIGNAL_REJECTED,
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

    def dead_letter(self, entry_id: str, fields: Fields, reason: str, outbox: Outbox) -> None:
        self.stats.rejected_entries += 1
        outbox.dead_letters.append(
            {"entry_id": entry_id, "reason": reason, "fields": json.dumps(fields)}
        )
        log.warning(
            "stream entry set aside", extra={"kv": {"entry_id": entry_id, "reason": repr(reason)}}
        )

    def reject_entry(self, entry: Entry, reason: str) -> Outbox:
        """An entry that failed even on its own: a signal is recorded rejected when it can be,
        anything else is set aside."""
        stream, entry_id, fields = entry
        outbox = Outbox(acks={stream: [entry_id]})
        if stream == self.signals_stream:
            try:
                with transaction(self.sessions) as session:
                    batch = Batch(session, self.book)
                    self.record_malformed(batch, entry_id, fields, reason, outbox)
                    batch.flush_positions()
                return outbox
            except Exception:
                log.exception("could not record the rejected entry")
        self.dead_letter(entry_id, fields, reason, outbox)
        return outbox
