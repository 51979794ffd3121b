"""After the faults: wait until the system has caught up, then check its promises against what the
run recorded — every accepted signal applied once, positions equal to a replay of the signal log,
no stream entry pending, no order at the broker twice, the broker's positions equal the traders'."""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.config import Settings, load_settings
from libs.common.storage import db
from libs.common.storage.models import (
    Fill,
    OrderIntent,
    Position,
    Recorder,
    Signal,
    Subaccount,
    Trader,
    TraderSkip,
)
from services.executor.reconcile import expected_positions, root_of
from services.position_engine import rules
from services.position_engine.replay import TickInput, compared_fields, replay_log, stream_order
from services.position_engine.repository import recorder_settings
from tools.chaos.cluster import Cluster
from tools.chaos.flow import Answers
from tools.chaos.scenario import Scenario

SETTLED = ("applied", "ignored", "rejected")
UNFINISHED_INTENTS = ("queued", "sending")
SETTLE_TIMEOUT_S = 120.0

# A signal or tick of the log the engine applied: where it falls (`stream_order`), and the input.
Logged = tuple[tuple[int, bool, int], rules.SignalInput | TickInput]
# XRANGE on a client that decodes replies (redis-py's types cannot tell it from one that does not).
Entries = list[tuple[str, dict[str, str]]]


@dataclass
class Verdict:
    """The numbers of the table, and every broken promise spelled out."""

    accepted: int = 0
    applied: int = 0
    duplicated: int = 0
    lost: int = 0
    applied_unanswered: int = 0  # applied though the sender never got an answer (gateway died)
    orders_sent: int = 0
    orders_duplicated: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    pending: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Checker:
    def __init__(self, cluster: Cluster, scenario: Scenario, answers: Answers):
        self.cluster = cluster
        self.scenario = scenario
        self.answers = answers
        self.settings: Settings = load_settings(cluster.env)
        self.redis = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
        self.sessions = db.make_sessionmaker(db.make_engine(cluster.postgres.url, pool_size=2))

    # --- catching up -----------------------------------------------------------------------------

    def wait_until_settled(self, timeout: float = SETTLE_TIMEOUT_S) -> list[str]:
        """Wait for the backlog to drain; returns what was still outstanding at the timeout."""
        self.cluster.wait_healthy()
        deadline = time.monotonic() + timeout
        while True:
            outstanding = self._outstanding()
            if not outstanding or time.monotonic() > deadline:
                return outstanding
            time.sleep(0.5)

    def _outstanding(self) -> list[str]:
        found = []
        spool = self.settings.gateway_spool_dir
        spooled = len(list(spool.glob("*.json"))) if spool.exists() else 0
        if spooled:
            found.append(f"{spooled} signals still in the gateway's spool")
        for stream in (
            *self.settings.all_partition_keys(streams.SIGNALS),
            *self.settings.all_partition_keys(streams.TICKS),
        ):
            behind = self._engine_behind(stream)
            if behind:
                found.append(
                    f"the engine has not read or acknowledged everything on {stream}: {behind}"
                )
        with self.sessions() as s:
            decided = set(map(str, s.scalars(select(Signal.id).where(Signal.status.in_(SETTLED)))))
            unfinished = s.scalar(
                select(func.count()).where(OrderIntent.status.in_(UNFINISHED_INTENTS))
            )
        missing = set(self.answers.accepted) - decided
        if missing:
            found.append(f"{len(missing)} accepted signals not decided yet")
        if unfinished:
            found.append(f"{unfinished} order intents still queued or sending")
        pending = {k: v for k, v in self.pending_entries().items() if v}
        if pending:
            found.append(f"stream entries pending: {pending}")
        return found

    def _engine_behind(self, stream: str) -> str:
        last = self.redis.xinfo_stream(stream)["last-generated-id"]
        for group in self.redis.xinfo_groups(stream):
            if group["name"] == streams.ENGINE_GROUP:
                if group["pending"] or group["last-delivered-id"] != last:
                    return (
                        f"pending {group['pending']}, "
                        f"read up to {group['last-delivered-id']} of {last}"
                    )
                return ""
        return "no consumer group"

    def pending_entries(self) -> dict[str, int]:
        """Per stream:group, entries delivered and never acknowledged."""
        found: dict[str, int] = {}
        for key in self.redis.scan_iter(match=self.settings.stream("*"), _type="stream"):
            for group in self.redis.xinfo_groups(key):
                found[f"{key}:{group['name']}"] = group["pending"]
        return found

    # --- the checks ------------------------------------------------------------------------------

    def verdict(self, outstanding: list[str]) -> Verdict:
        verdict = Verdict(
            problems=[f"not settled after {SETTLE_TIMEOUT_S:.0f}s: {o}" for o in outstanding]
        )
        verdict.pending = self.pending_entries()
        verdict.problems += self.cluster.stalled_partitions
        with self.sessions() as s:
            self._check_signals(s, verdict)
            self._check_orders(s, verdict)
        return verdict

    def _check_signals(self, s: Session, verdict: Verdict) -> None:
        accepted = set(self.answers.accepted)
        rows = s.scalars(select(Signal)).all()
        decided = {str(r.id) for r in rows if r.status in SETTLED}
        verdict.accepted = len(accepted)
        verdict.applied = len(accepted & decided)
        verdict.lost = len(accepted - decided)
        verdict.applied_unanswered = len(decided - accepted)
        if verdict.lost:
            verdict.problems.append(f"{verdict.lost} signals answered 202 were never applied")
        fills = dict(s.execute(select(Fill.signal_id, func.count()).group_by(Fill.signal_id)).all())
        # Applied twice, a signal leaves the same fill twice (a reversal's two fills differ).
        same = (Fill.signal_id, Fill.position_id, Fill.kind, Fill.side, Fill.quantity, Fill.price)
        twice = (
            select(Fill.signal_id)
            .where(Fill.signal_id.is_not(None))
            .group_by(*same)
            .having(func.count() > 1)
        )
        verdict.duplicated = len(set(s.scalars(twice)))
        partition_ticks = {
            k: self._ticks_by_symbol(self.settings.partition_key(streams.TICKS, k))
            for k in range(self.settings.engine_partitions)
        }
        for recorder in s.scalars(select(Recorder).order_by(Recorder.id)):
            ticks = partition_ticks[self.settings.partition_of(recorder.id)]
            mine = [r for r in rows if r.recorder_id == recorder.id and r.stream_id]
            signals = sorted((_logged_signal(r) for r in mine), key=lambda e: e[0])
            merged = heapq.merge(
                signals,
                *(ticks[symbol] for symbol in {i.symbol for _, i in signals}),
                key=lambda e: e[0],
            )
            replay = replay_log((item for _, item in merged), recorder_settings(recorder))
            for row in mine:
                status, expected_fills = replay.outcomes[str(row.id)]
                got = fills.get(row.id, 0)
                if (row.status, got) != (status, expected_fills):
                    verdict.problems.append(
                        f"signal {row.id}: {row.status} with {got} fills, "
                        f"the rules give {status} with {expected_fills}"
                    )
            positions = s.scalars(
                select(Position).where(Position.recorder_id == recorder.id).order_by(Position.id)
            ).all()
            want = [compared_fields(p) for p in replay.positions]
            have = [compared_fields(p) for p in positions]
            if want != have:
                verdict.problems.append(
                    f"recorder {recorder.id} ({recorder.name}): " + _difference(have, want)
                )
        if verdict.duplicated:
            verdict.problems.append(f"{verdict.duplicated} signals were applied more than once")

    def _ticks_by_symbol(self, stream: str) -> dict[str, list[Logged]]:
        """Every tick still on a partition's stream, per symbol, in its engine's order."""
        found: dict[str, list[Logged]] = defaultdict(list)
        start = "-"
        while batch := cast(Entries, self.redis.xrange(stream, start, "+", count=10_000)):
            for entry_id, fields in batch:
                try:
                    tick = streams.TickMessage.from_fields(fields)
                except streams.MalformedMessage:
                    continue
                found[tick.symbol].append(
                    (
                        stream_order(entry_id, is_tick=True),
                        TickInput(tick.symbol, tick.price, tick.ts, tick.delayed),
                    )
                )
            start = "(" + batch[-1][0]
        return found

    def _check_orders(self, s: Session, verdict: Verdict) -> None:
        intents = s.scalars(select(OrderIntent)).all()
        verdict.intents = Counter(i.status for i in intents)
        broker = self.cluster.broker
        with broker.lock:
            new_orders = [c for c in broker.book.commands.values() if c["commandType"] == "New"]
            net = {
                (p.account_id, broker.book.catalogue.contracts[p.contract_id].name): p.net_pos
                for p in broker.book.positions.values()
            }
            # Liquidations (closes, flattens) carry no clOrdId: known by their contract.
            liquidated = Counter(
                root_of(
                    broker.book.catalogue.contracts[
                        broker.book.orders[c["orderId"]].contract_id
                    ].name
                )
                for c in new_orders
                if not c.get("clOrdId")
            )
        placed = Counter(c["clOrdId"] for c in new_orders if c.get("clOrdId"))
        ours = {i.cl_ord_id for i in intents}
        # A close may liquidate its root once, a flatten every root once: more liquidations of
        # a root than that is an order sent twice.
        done = [i for i in intents if i.status in ("accepted", "filled")]
        flattens = sum(1 for i in done if i.kind == "flatten")
        may = Counter(i.symbol for i in done if i.kind == "close")
        extra = sum(max(0, n - may[root] - flattens) for root, n in liquidated.items())
        verdict.orders_sent = sum(1 for cl in placed if cl in ours) + sum(liquidated.values())
        verdict.orders_duplicated = sum(n - 1 for n in placed.values() if n > 1) + extra
        strangers = sum(n for cl, n in placed.items() if cl not in ours)
        if verdict.orders_duplicated:
            verdict.problems.append(f"{verdict.orders_duplicated} orders reached the broker twice")
        if strangers:
            verdict.problems.append(f"{strangers} orders at the broker match no order intent")
        claimed = [
            i
            for i in intents
            if i.status in ("accepted", "filled")
            and i.kind not in ("close", "flatten")
            and i.cl_ord_id not in placed
        ]
        if claimed:
            verdict.problems.append(
                f"{len(claimed)} intents say sent but the broker never got them"
            )
        self._check_broker_positions(s, net, verdict)

    def _check_broker_positions(
        self, s: Session, net: dict[tuple[int, str], int], verdict: Verdict
    ) -> None:
        """The broker's net per root on the subaccount equals the sum of its traders' parts, as
        the platform expects them (two traders share MNQ there; the risk desk may have flattened
        it, after which the positions opened before hold nothing at the broker)."""
        sub = s.get_one(Subaccount, self.scenario.subaccount_id)
        traders = s.scalars(select(Trader).where(Trader.subaccount_id == sub.id)).all()
        positions = s.scalars(
            select(Position).where(
                Position.recorder_id.in_([t.recorder_id for t in traders]),
                Position.status == "open",
            )
        ).all()
        skipped = s.execute(
            select(TraderSkip.trader_id, TraderSkip.position_id).where(
                TraderSkip.trader_id.in_([t.id for t in traders])
            )
        )
        flattened = {sub.id: sub.flattened_at} if sub.flattened_at is not None else {}
        expected = expected_positions(
            traders, positions, flattened_at=flattened, skipped=set(skipped)
        )
        for root in sorted({t.root for t in self.scenario.traded}):
            contract = self.cluster.front_contract(root)
            at_broker = Decimal(net.get((self.scenario.broker_account_id, contract), 0))
            want = expected.get((sub.id, root), Decimal(0))
            if at_broker != want:
                verdict.problems.append(
                    f"broker holds {at_broker} {contract} but its traders' parts sum to {want}"
                )


def _difference(have: list[dict[str, object]], want: list[dict[str, object]]) -> str:
    """The first position where the engine's rows and the replay part, field by field."""
    for index, (h, w) in enumerate(zip(have, want, strict=False)):
        if h != w:
            fields = {k: (h[k], w[k]) for k in h if h[k] != w[k]}
            return f"position #{index} differs from the replay (engine, replay): {fields}"
    return f"{len(have)} positions, the replay gives {len(want)}"


def _logged_signal(row: Signal) -> Logged:
    """A signal the engine read from the stream (it records the entry id and symbol of those)."""
    if not row.stream_id or row.symbol is None:
        raise ValueError(f"signal {row.id} was not read from the stream")
    return stream_order(row.stream_id), rules.SignalInput(
        signal_id=str(row.id),
        symbol=row.symbol,
        action=row.action,
        price=row.price,
        qty=row.qty,
        position_size=row.position_size,
        market_position=row.market_position,
        received_ms=round(row.received_at.timestamp() * 1000),
    )
