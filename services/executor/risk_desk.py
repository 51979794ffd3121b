"""The risk desk (docs/contract.md §4c): each subaccount with limits is judged a few times a second
on the broker's figures — net PnL of the trade date including open PnL at the feed's last price,
the trailing drawdown from the highest balance, trades today, contracts held.

A breach locks new entries until the next trade date (the engine skips them, with the reason)
and, for every rule but the trade count, flattens the subaccount: a `flatten` intent (every
contract liquidated, every working order cancelled), sent at exits' priority. Positions the
recorders opened before that are no longer the traders' at the broker (`flattened_at`), so their
exits are not sent. The lock, the flatten and the event come from one transaction.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common import events, orders, streams
from libs.common.account_figures import broker_figures, last_prices
from libs.common.account_risk import Breach, breach, in_force, next_trade_date
from libs.common.futures.exchange_calendar import trade_date
from libs.common.storage.db import transaction
from libs.common.storage.models import Subaccount, SubaccountRisk
from services.executor.jobs import ExecutorContext
from services.executor.upkeep import run_every

log = logging.getLogger("executor")

CHECK_EVERY_S = 0.25  # a loss reached by the open PnL alone is seen within this


@dataclass(frozen=True)
class Lock:
    subaccount_id: int
    event: events.LockedData
    intent: orders.QueuedIntent | None


class RiskDesk:
    def __init__(self, ctx: ExecutorContext, rq_conn: redis.Redis):
        self.ctx = ctx
        self.rq = rq_conn

    def check_all(self, now: datetime | None = None) -> list[Lock]:
        """Judge every subaccount that has limits and is not locked; lock those in breach."""
        now = now or datetime.now(UTC)
        day = trade_date(now)
        with self.ctx.sessions() as s:
            ids = list(
                s.scalars(
                    select(SubaccountRisk.subaccount_id)
                    .join(Subaccount, Subaccount.id == SubaccountRisk.subaccount_id)
                    .where(
                        Subaccount.active.is_(True),
                        (Subaccount.locked_until.is_(None)) | (Subaccount.locked_until <= day),
                    )
                )
            )
        locks = [lock for sub_id in ids if (lock := self.check(sub_id, now)) is not None]
        for lock in locks:
            self._announce(lock)
        return locks

    def check(self, subaccount_id: int, now: datetime) -> Lock | None:
        """Judge one subaccount (its row locked for the transaction: one verdict at a time)."""
        day = trade_date(now)
        with transaction(self.ctx.sessions) as s:
            sub = s.get(Subaccount, subaccount_id, with_for_update=True)
            if sub is None or sub.lock_until(day) is not None:
                return None
            limits, _, _ = in_force(s.get(SubaccountRisk, subaccount_id), day)
            held = broker_figures(s, self.ctx.redis, self.ctx.settings, sub, now)
            if held is None:
                return None
            prices = last_prices(
                self.ctx.redis, self.ctx.settings, {h.symbol for h in held.positions}
            )
            figures = held.account_figures(prices, sub.high_balance)
            if figures is None:
                return None
            if figures.high_balance > sub.high_balance:
                sub.high_balance = figures.high_balance
            found = breach(limits, figures)
            if found is None:
                return None
            return self._lock(s, sub, found, now)

    def _lock(self, session: Session, sub: Subaccount, found: Breach, now: datetime) -> Lock:
        sub.locked_until = next_trade_date(trade_date(now))
        sub.lock_reason = found.message
        sub.locked_at = now
        queued = None
        if found.flatten:
            sub.flattened_at = now
            intent = orders.flatten_intent(sub.account.user_id, sub.id, "risk")
            session.add(intent)
            session.flush()
            queued = orders.QueuedIntent(intent.id, intent.subaccount_id, intent.priority)
        event: events.LockedData = {
            "user_id": sub.account.user_id,
            "subaccount_id": sub.id,
            "name": sub.name,
            "rule": found.rule,
            "reason": found.message,
            "locked_until": sub.locked_until.isoformat(),
            "flattened": found.flatten,
        }
        log.warning(
            "risk desk locked a subaccount",
            extra={"kv": {"subaccount_id": sub.id, "rule": found.rule, "flattened": found.flatten}},
        )
        return Lock(sub.id, event, queued)

    def _announce(self, lock: Lock) -> None:
        """After the commit: the flatten to the executor's queue, the event to the pages."""
        if lock.intent is not None:
            orders.enqueue(self.rq, self.ctx.settings.stream_prefix, [lock.intent])
        streams.publish_event(
            self.ctx.redis,
            self.ctx.settings.stream(streams.EVENTS),
            events.ACCOUNT_LOCKED,
            dict(lock.event),
        )


def run_risk_desk(
    ctx: ExecutorContext,
    rq_conn: redis.Redis,
    stop: threading.Event,
    every_s: float = CHECK_EVERY_S,
) -> None:
    run_every(RiskDesk(ctx, rq_conn).check_all, "risk desk", stop, every_s)
