"""A copy follower against its leader (docs/contract.md §4d): what it holds beside what the leader's
net × its rule says it should, and the orders that bring it back in step.

The copy keeper (executor) and the UI's "Realign now" both write those orders through
`align_follower`, which holds the follower's row while it decides: a second caller finds them
queued and writes none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.account_figures import BrokerFigures, broker_figures
from libs.common.config import Settings
from libs.common.copy_trading import (
    GROWING,
    PENDING,
    ZERO,
    FollowerRule,
    entries_blocked,
    nets_by_root,
    opposite,
)
from libs.common.orders import new_intent
from libs.common.storage.models import CopyFollower, CopyGroup, OrderIntent, Subaccount

DONE = ("filled", "accepted")  # what reached the broker (a reject changed nothing there)


@dataclass(frozen=True)
class Drift:
    """A follower's root compared with what its leader holds."""

    root: str  # the follower's
    leader_roots: tuple[str, ...]
    leader_net: Decimal
    expected: Decimal
    actual: Decimal
    contract: str | None  # the dated contract to trade, when one is known

    @property
    def in_step(self) -> bool:
        return self.expected == self.actual

    def sentence(self) -> str:
        leader = " + ".join(self.leader_roots)
        return (
            f"{self.root}: holds {_held(self.actual)}, should hold {_held(self.expected)} "
            f"(the leader holds {_held(self.leader_net)} {leader})"
        )


def _held(net: Decimal) -> str:
    if net == 0:
        return "none"
    return f"{abs(net).normalize():f} {'long' if net > 0 else 'short'}"


@dataclass(frozen=True)
class Step:
    kind: str  # entry | add | reduce | close
    side: str
    quantity: Decimal

    @property
    def priority(self) -> str:
        return "entry" if self.kind in GROWING else "exit"


def steps_to(actual: Decimal, expected: Decimal) -> list[Step]:
    """The orders that take a net of `actual` to `expected`."""
    if actual == expected:
        return []
    close = Step("close", "sell" if actual > 0 else "buy", ZERO)
    if expected == 0:
        return [close]
    side = "buy" if expected > 0 else "sell"
    if actual == 0:
        return [Step("entry", side, abs(expected))]
    if (actual > 0) != (expected > 0):
        return [close, Step("entry", side, abs(expected))]
    if abs(expected) > abs(actual):
        return [Step("add", side, abs(expected) - abs(actual))]
    return [Step("reduce", opposite(side), abs(actual) - abs(expected))]


def compare(rule: FollowerRule, leader: BrokerFigures, follower: BrokerFigures) -> list[Drift]:
    """Every root either side holds, the follower's net against the leader's × its rule."""
    leader_nets, follower_nets = nets_by_root(leader), nets_by_root(follower)
    leader_nets = {r: n for r, n in leader_nets.items() if n != 0}
    held_by = {h.symbol: h.contract for h in follower.positions if h.net_qty != 0}
    leader_contracts = {h.symbol: h.contract for h in leader.positions if h.net_qty != 0}
    roots = {rule.root(r) for r in leader_nets} | {r for r, n in follower_nets.items() if n != 0}
    drifts = []
    for root in sorted(roots):
        sources = rule.leader_roots(root, leader_nets)
        leader_net = sum((leader_nets.get(r, ZERO) for r in sources), ZERO)
        contract = held_by.get(root)
        if contract is None and len(sources) == 1 and sources[0] in leader_contracts:
            # The leader's month on the follower's root: NQZ6 → MNQZ6.
            contract = root + leader_contracts[sources[0]][len(sources[0]) :]
        drifts.append(
            Drift(
                root,
                tuple(sources),
                leader_net,
                rule.expected(leader_net),
                follower_nets.get(root, ZERO),
                contract,
            )
        )
    return drifts


@dataclass(frozen=True)
class Pair:
    """A follower with its group, both subaccounts loaded."""

    group: CopyGroup
    follower: CopyFollower
    leader: Subaccount
    sub: Subaccount

    @property
    def rule(self) -> FollowerRule:
        return FollowerRule.of(self.follower)


def drifts_of(
    session: Session, client: redis.Redis, settings: Settings, pair: Pair, now: datetime
) -> list[Drift] | None:
    """The follower's roots against its leader's; None while either broker's figures are
    unknown (a Tradovate subaccount before its socket synced)."""
    leader = broker_figures(session, client, settings, pair.leader, now)
    follower = broker_figures(session, client, settings, pair.sub, now)
    if leader is None or follower is None:
        return None
    return compare(pair.rule, leader, follower)


def busy(
    session: Session,
    subaccount_id: int,
    roots: Iterable[str],
    now: datetime,
    grace: timedelta,
    kinds: Iterable[str] | None = None,
) -> bool:
    """Orders of these roots are queued, or reached the broker less than `grace` ago (fills and
    the broker's positions lag an order; `kinds`: only those count): what it holds is about to
    change."""
    recent = OrderIntent.status.in_(DONE) & (OrderIntent.finished_at > now - grace)
    if kinds is not None:
        recent = recent & OrderIntent.kind.in_(tuple(kinds))
    found = session.scalar(
        select(OrderIntent.id)
        .where(
            OrderIntent.subaccount_id == subaccount_id,
            OrderIntent.symbol.in_((*roots, "*")),
            OrderIntent.status.in_(PENDING) | recent,
        )
        .limit(1)
    )
    return found is not None


def align_follower(
    session: Session,
    client: redis.Redis,
    settings: Settings,
    pair: Pair,
    now: datetime,
    *,
    roots: Iterable[str] | None = None,
    grace: timedelta = timedelta(0),
) -> list[OrderIntent]:
    """Write the orders that bring the follower in step on `roots` (every root when None); the
    follower's row is locked and everything re-read first, so a second caller finds the orders
    queued and writes none. The caller commits, then enqueues what this returns."""
    session.get(Subaccount, pair.sub.id, with_for_update=True, populate_existing=True)
    drifts = drifts_of(session, client, settings, pair, now)
    if drifts is None:
        return []
    wanted = None if roots is None else set(roots)
    written: list[OrderIntent] = []
    for drift in drifts:
        if drift.in_step or (wanted is not None and drift.root not in wanted):
            continue
        if busy(session, pair.sub.id, (drift.root,), now, grace):
            continue
        for step in steps_to(drift.actual, drift.expected):
            if step.kind in GROWING and entries_blocked(pair.sub, now) is not None:
                break
            intent = _realign_intent(session, pair, drift, step)
            session.add(intent)
            session.flush()
            written.append(intent)
    return written


def _realign_intent(session: Session, pair: Pair, drift: Drift, step: Step) -> OrderIntent:
    # An add or reduce re-arms the follower's protective orders for its new size: at the levels
    # its copies last had (an entry from flat has none to keep).
    tp = sl = None
    if step.kind in ("add", "reduce"):
        tp, sl = last_levels(session, pair.sub.id, drift.root)
    return new_intent(
        user_id=pair.group.user_id,
        subaccount_id=pair.sub.id,
        source="copy",
        kind=step.kind,
        symbol=drift.root,
        ticker=drift.contract or f"{drift.root}1!",
        side=step.side,
        quantity=step.quantity,
        tp_price=tp,
        sl_price=sl,
        position_quantity=abs(drift.expected) if step.kind in ("add", "reduce") else None,
        priority=step.priority,
    )


def last_levels(
    session: Session, subaccount_id: int, root: str
) -> tuple[Decimal | None, Decimal | None]:
    """The target and stop the subaccount's orders of a root last carried since it was last
    closed or flattened."""
    rows = session.scalars(
        select(OrderIntent)
        .where(
            OrderIntent.subaccount_id == subaccount_id,
            OrderIntent.symbol.in_((root, "*")),
            OrderIntent.status.in_(DONE),
        )
        .order_by(OrderIntent.sequence.desc())
        .limit(50)
    )
    tp = sl = None
    for row in rows:
        if row.kind in ("close", "flatten"):
            break
        tp = tp if tp is not None else row.tp_price
        sl = sl if sl is not None else row.sl_price
        if row.kind == "entry":
            break
    return tp, sl
