"""The copy keeper (docs/contract.md §4d): about once a second, each enabled copy group's followers
are compared with their leader at the broker — the leader's net per root × the follower's rule
against what the follower holds.

- A follower that differs for longer than the grace (fills lag orders) is out of step: the
  sentence is stored on its row, an `account.copy_drift` event tells the pages and, when the group
  asks for it, the orders that bring it back are written.
- When the leader is flat on a root (and did not just trade it, which its broker may not show
  yet), its followers are closed on that root at once, grace or not.
- When the risk desk locks a leader, the followers of a group with `follow_risk_lock` are locked
  until the same trade date and flattened.

Orders are written by copy_trading.align_follower, which holds the follower's row and re-reads
everything; one Redis lock keeps two executors from running a pass at the same time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from libs.common import events, orders, streams
from libs.common.copy_in_step import Drift, Pair, align_follower, busy, drifts_of
from libs.common.copy_trading import GROWING
from libs.common.futures.exchange_calendar import trade_date
from libs.common.orders import QueuedIntent
from libs.common.storage.db import transaction
from libs.common.storage.models import (
    CopyFollower,
    CopyGroup,
    Position,
    Subaccount,
    Trader,
)
from services.executor.jobs import ExecutorContext
from services.executor.upkeep import run_every

log = logging.getLogger("executor")

CHECK_EVERY_S = 1.0
GRACE_S = 5.0  # fills and the broker's positions lag an order by about this much at most
CHECKED_EVERY_S = 5.0  # how often an unchanged follower's `checked_at` is written
LOCK_TIMEOUT_S = 30
SINCE_TTL_S = 86_400


@dataclass
class Pass:
    """What one pass wrote and has to tell once its transactions committed."""

    queued: list[QueuedIntent] = field(default_factory=list)
    drifts: list[events.CopyDriftData] = field(default_factory=list)
    locks: list[events.LockedData] = field(default_factory=list)


class CopyKeeper:
    def __init__(self, ctx: ExecutorContext, rq_conn: redis.Redis, grace_s: float = GRACE_S):
        self.ctx = ctx
        self.rq = rq_conn
        self.grace = timedelta(seconds=grace_s)
        self.since_key = ctx.settings.stream("copy_keeper:since")

    def check_all(self, now: datetime | None = None) -> Pass | None:
        """One pass over every enabled group; None when another executor is running one."""
        now = now or datetime.now(UTC)
        lock = self.ctx.redis.lock(
            self.ctx.settings.stream("executor:copy_keeper"),
            timeout=LOCK_TIMEOUT_S,
            blocking_timeout=0,
        )
        if not lock.acquire(blocking=False):
            return None
        done = Pass()
        try:
            with self.ctx.sessions() as s:
                groups = [
                    (g.id, g.follow_risk_lock)
                    for g in s.scalars(
                        select(CopyGroup).where(CopyGroup.enabled.is_(True)).order_by(CopyGroup.id)
                    )
                ]
            for group_id, follows_lock in groups:
                if follows_lock:
                    self._follow_lock(group_id, now, done)
                self._check_group(group_id, now, done)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("copy keeper lock expired during a pass")
        self._announce(done)
        return done

    # --- follow_risk_lock -------------------------------------------------------------------

    def _follow_lock(self, group_id: int, now: datetime, done: Pass) -> None:
        with transaction(self.ctx.sessions) as s:
            group = s.get_one(CopyGroup, group_id)
            leader = s.get_one(Subaccount, group.leader_subaccount_id)
            until = leader.locked_until
            if until is None or until <= trade_date(now):
                return
            for follower in _enabled_followers(s, group.id):
                sub = s.get(Subaccount, follower.subaccount_id, with_for_update=True)
                if sub is None or not sub.active:
                    continue
                if sub.locked_until is not None and sub.locked_until >= until:
                    continue  # locked already (by us on an earlier pass, or its own desk)
                sub.locked_until, sub.locked_at, sub.flattened_at = until, now, now
                sub.lock_reason = f"the leader {leader.name} was locked: {leader.lock_reason}"
                flatten = orders.flatten_intent(group.user_id, sub.id, "risk")
                s.add(flatten)
                s.flush()
                done.queued.append(QueuedIntent(flatten.id, sub.id, flatten.priority))
                done.locks.append(
                    {
                        "user_id": group.user_id,
                        "subaccount_id": sub.id,
                        "name": sub.name,
                        "rule": "copy_leader",
                        "reason": sub.lock_reason,
                        "locked_until": until.isoformat(),
                        "flattened": True,
                    }
                )
                log.warning(
                    "copy keeper locked a follower with its leader",
                    extra={"kv": {"group_id": group.id, "subaccount_id": sub.id}},
                )

    # --- in step ----------------------------------------------------------------------------

    def _check_group(self, group_id: int, now: datetime, done: Pass) -> None:
        with self.ctx.sessions() as s:
            group = s.get(CopyGroup, group_id)
            if group is None:
                return
            leader = s.get_one(Subaccount, group.leader_subaccount_id)
            if not leader.active:
                return
            for follower in _enabled_followers(s, group_id):
                sub = s.get_one(Subaccount, follower.subaccount_id)
                if sub.active:
                    self._check_follower(s, Pair(group, follower, leader, sub), now, done)

    def _check_follower(self, s: Session, pair: Pair, now: datetime, done: Pass) -> None:
        drifts = drifts_of(s, self.ctx.redis, self.ctx.settings, pair, now)
        if drifts is None:
            return  # a broker not synced yet: nothing can be judged
        # A root the follower's own traders hold is theirs too (§4b): the keeper cannot tell
        # their contracts from the copy's, so it neither judges nor closes that root.
        own = _own_roots(s, pair.sub.id)
        drifts = [d for d in drifts if d.root not in own]
        at_once: list[str] = []  # roots to close now: the leader is flat there
        ripe: list[Drift] = []  # differing past the grace
        settling = False
        for drift in drifts:
            key = f"{pair.group.id}:{pair.sub.id}:{drift.root}"
            if drift.in_step or self._settling(s, pair, drift, now):
                settling = settling or not drift.in_step
                self.ctx.redis.hdel(self.since_key, key)
                continue
            if drift.expected == 0 and drift.leader_net == 0:
                at_once.append(drift.root)
                continue
            since = self._since(key, now)
            if now - since >= self.grace:
                ripe.append(drift)
        roots = at_once + ([d.root for d in ripe] if pair.group.realign else [])
        traded = self._align(pair, now, roots, done) if roots else set()
        for root in roots:  # a new difference waits for the grace again
            self.ctx.redis.hdel(self.since_key, f"{pair.group.id}:{pair.sub.id}:{root}")
        # Realigning: orders went out for a root shown out of step (an entry into a locked
        # follower does not).
        realigned = any(d.root in traded for d in ripe)
        text = "; ".join(d.sentence() for d in ripe) or None
        if text is None and settling:
            text = pair.follower.out_of_step  # orders in flight: judged again once they settle
        self._record(s, pair, text, realigned, now, done)

    def _settling(self, s: Session, pair: Pair, drift: Drift, now: datetime) -> bool:
        """Either side has orders of the root in flight (or just done, which the broker's figures
        may not show yet): what it holds is about to change."""
        if busy(s, pair.sub.id, (drift.root,), now, self.grace):
            return True
        # The leader's exits leave it flat at once; only a fresh entry may not show yet.
        return busy(s, pair.leader.id, drift.leader_roots, now, self.grace, GROWING)

    def _since(self, key: str, now: datetime) -> datetime:
        """When the difference was first seen (kept in Redis: the next pass may be another
        executor's)."""
        if self.ctx.redis.hsetnx(self.since_key, key, str(now.timestamp())):
            self.ctx.redis.expire(self.since_key, SINCE_TTL_S)  # a deleted group's go away
        raw = self.ctx.redis.hget(self.since_key, key)
        return datetime.fromtimestamp(float(str(raw)), UTC) if raw is not None else now

    def _align(self, pair: Pair, now: datetime, roots: list[str], done: Pass) -> set[str]:
        """The orders that bring the follower in step on `roots`; returns the roots they trade."""
        with transaction(self.ctx.sessions) as s:
            fresh = Pair(
                s.get_one(CopyGroup, pair.group.id),
                s.get_one(CopyFollower, {"group_id": pair.group.id, "subaccount_id": pair.sub.id}),
                s.get_one(Subaccount, pair.leader.id),
                s.get_one(Subaccount, pair.sub.id),
            )
            written = align_follower(
                s, self.ctx.redis, self.ctx.settings, fresh, now, roots=roots, grace=self.grace
            )
            done.queued += [QueuedIntent(i.id, i.subaccount_id, i.priority) for i in written]
            traded = {i.symbol for i in written}
            ids = ",".join(str(i.id) for i in written)
        if written:
            log.info(
                "copy keeper brought a follower in step",
                extra={
                    "kv": {
                        "group_id": pair.group.id,
                        "subaccount_id": pair.sub.id,
                        "intents": ids,
                    }
                },
            )
        return traded

    def _record(
        self, s: Session, pair: Pair, text: str | None, realigning: bool, now: datetime, done: Pass
    ) -> None:
        follower = pair.follower
        changed = text != follower.out_of_step
        stale = follower.checked_at is None or now - follower.checked_at >= timedelta(
            seconds=CHECKED_EVERY_S
        )
        if not changed and not stale:
            return
        # Only these two columns: the UI may be changing the follower's rule meanwhile.
        s.execute(
            update(CopyFollower)
            .where(
                CopyFollower.group_id == follower.group_id,
                CopyFollower.subaccount_id == follower.subaccount_id,
            )
            .values(out_of_step=text, checked_at=now)
        )
        s.commit()
        if changed:
            done.drifts.append(
                {
                    "user_id": pair.group.user_id,
                    "group_id": pair.group.id,
                    "group_name": pair.group.name,
                    "leader_subaccount_id": pair.leader.id,
                    "subaccount_id": pair.sub.id,
                    "name": pair.sub.name,
                    "out_of_step": text,
                    "realigning": realigning,
                }
            )

    def _announce(self, done: Pass) -> None:
        """After the commits: the orders to the executor's queues, the events to the pages."""
        if done.queued:
            orders.enqueue(self.rq, self.ctx.settings.stream_prefix, done.queued)
        stream = self.ctx.settings.stream(streams.EVENTS)
        for lock in done.locks:
            streams.publish_event(self.ctx.redis, stream, events.ACCOUNT_LOCKED, dict(lock))
        for drift in done.drifts:
            streams.publish_event(self.ctx.redis, stream, events.ACCOUNT_COPY_DRIFT, dict(drift))


def _own_roots(s: Session, subaccount_id: int) -> set[str]:
    """Roots of the open positions of the recorders the subaccount's own traders follow."""
    return set(
        s.scalars(
            select(Position.symbol)
            .join(Trader, Trader.recorder_id == Position.recorder_id)
            .where(
                Trader.subaccount_id == subaccount_id,
                Trader.enabled.is_(True),
                Position.status == "open",
            )
        )
    )


def _enabled_followers(s: Session, group_id: int) -> list[CopyFollower]:
    return list(
        s.scalars(
            select(CopyFollower)
            .where(CopyFollower.group_id == group_id, CopyFollower.enabled.is_(True))
            .order_by(CopyFollower.subaccount_id)
        )
    )


def run_copy_keeper(
    ctx: ExecutorContext,
    rq_conn: redis.Redis,
    stop: threading.Event,
    every_s: float = CHECK_EVERY_S,
) -> None:
    run_every(CopyKeeper(ctx, rq_conn).check_all, "copy keeper", stop, every_s)
