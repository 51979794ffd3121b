"""Copy trading (docs/contract.md §4, §4d): every order on a leader subaccount goes to each
follower, scaled, maybe inverted, maybe on another contract (NQ → MNQ), never above the
follower's maximum. Bringing a follower back in step: copy_in_step.py.

Copies are made when the leader's intent is written (same transaction), so the follower's order
is as durable as the leader's. Copies are never copied again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common.account_figures import BrokerFigures, broker_figures
from libs.common.config import Settings
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.instruments import CONTRACTS
from libs.common.orders import LEVEL_MOVES, new_intent
from libs.common.storage.models import (
    CopyFollower,
    CopyGroup,
    OrderIntent,
    PaperPosition,
    Subaccount,
)

ZERO = Decimal(0)
PENDING = ("queued", "sending")
GROWING = ("entry", "add")
# Net contracts a subaccount holds of a root at its broker (None: not known here).
Holdings = Callable[[Subaccount, str], Decimal | None]


def follower_quantity(quantity: Decimal, multiplier: Decimal) -> Decimal:
    return (quantity * multiplier).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


@dataclass(frozen=True)
class FollowerRule:
    """How one follower copies its leader."""

    multiplier: Decimal = Decimal(1)
    inverted: bool = False
    symbol_map: Mapping[str, str] = field(default_factory=dict)
    max_contracts: int | None = None

    @classmethod
    def of(cls, follower: CopyFollower) -> FollowerRule:
        return cls(
            follower.multiplier,
            follower.inverted,
            dict(follower.symbol_map or {}),
            follower.max_contracts,
        )

    def root(self, leader_root: str) -> str:
        return self.symbol_map.get(leader_root, leader_root)

    def ticker(self, leader_root: str, leader_ticker: str | None) -> str | None:
        """A mapped root trades its front month (MNQ1!); otherwise the leader's ticker."""
        root = self.root(leader_root)
        return leader_ticker if root == leader_root else f"{root}1!"

    def side(self, leader_side: str) -> str:
        return opposite(leader_side) if self.inverted else leader_side

    def expected(self, leader_net: Decimal) -> Decimal:
        """The net the follower should hold when the leader holds `leader_net` (signed)."""
        net = follower_quantity(leader_net, self.multiplier)
        if self.inverted:
            net = -net
        if self.max_contracts is not None and abs(net) > self.max_contracts:
            net = Decimal(self.max_contracts) * (1 if net > 0 else -1)
        return net

    def leader_roots(self, root: str, leader_held: Iterable[str]) -> list[str]:
        """The leader's roots whose copies land on the follower's `root`: those it holds, else
        those mapped there (NQ for MNQ under {"NQ": "MNQ"}), else the root itself."""
        held = sorted({r for r in leader_held if self.root(r) == root})
        mapped = sorted(k for k, v in self.symbol_map.items() if v == root)
        return held or mapped or [root]


def unknown_roots(symbol_map: Mapping[str, str]) -> list[str]:
    """Roots of a mapping that are not in the contract table (a 422 when a group is saved)."""
    return sorted({r for pair in symbol_map.items() for r in pair if r not in CONTRACTS})


def copy_cycle(links: Iterable[tuple[int, int]], first: int | None = None) -> list[int] | None:
    """A chain of (leader, follower) links that comes back to where it started, if any (looked
    for from `first` before anywhere else)."""
    graph: dict[int, set[int]] = {}
    for leader, follower in links:
        graph.setdefault(leader, set()).add(follower)

    def walk(node: int, path: list[int]) -> list[int] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            found = walk(nxt, [*path, nxt])
            if found:
                return found
        return None

    starts = sorted(graph, key=lambda node: (node != first, node))
    for start in starts:
        found = walk(start, [start])
        if found:
            return found
    return None


# --- copies of a leader's intent ----------------------------------------------------------------


def copies_of(
    session: Session,
    leader_intent: OrderIntent,
    *,
    now: datetime | None = None,
    holdings: Holdings | None = None,
) -> list[OrderIntent]:
    """Add the followers' copies of a leader's intent to the session; returns them.

    `holdings` says what a follower holds at its broker, for the per-follower maximum; without
    it paper books are read here and a Tradovate follower counts only its queued copies (the
    keeper trims what goes over later)."""
    if leader_intent.source == "copy":
        return []
    rows = session.execute(
        select(CopyFollower, Subaccount)
        .join(CopyGroup, CopyGroup.id == CopyFollower.group_id)
        .join(Subaccount, Subaccount.id == CopyFollower.subaccount_id)
        .where(
            CopyGroup.leader_subaccount_id == leader_intent.subaccount_id,
            CopyGroup.enabled.is_(True),
            CopyFollower.enabled.is_(True),
            Subaccount.active.is_(True),
        )
        .order_by(CopyFollower.subaccount_id)
    ).all()
    held = holdings or paper_holdings(session)
    copies = []
    for follower, sub in rows:
        copy = _copy(session, leader_intent, FollowerRule.of(follower), sub, now, held)
        if copy is not None:
            session.add(copy)
            session.flush()  # the next copy's cap sees this one as pending
            copies.append(copy)
    return copies


def _copy(
    session: Session,
    leader: OrderIntent,
    rule: FollowerRule,
    sub: Subaccount,
    now: datetime | None,
    held: Holdings,
) -> OrderIntent | None:
    kind, quantity = leader.kind, follower_quantity(leader.quantity, rule.multiplier)
    root = leader.symbol if kind == "flatten" else rule.root(leader.symbol)
    if kind in GROWING:
        if entries_blocked(sub, now) is not None:
            return None  # exits still go out; the keeper shows the follower out of step
        quantity = _capped(session, sub, root, rule, rule.side(leader.side), quantity, held)
    elif kind == "reduce":
        quantity = _within_holding(session, sub, root, quantity, held)
    if kind not in ("close", "flatten", *LEVEL_MOVES) and quantity == 0:
        return None
    tp, sl = leader.tp_price, leader.sl_price
    targets = _scaled_targets(leader.targets, rule.multiplier)
    if rule.inverted:
        # An inverted follower is on the other side of the same price, so the leader's absolute
        # levels cannot be mirrored around an entry it did not get. The leader's stop is where
        # the follower's trade has won, its target where it has lost: they swap roles, and a
        # move of one is a move of the other. Target legs have no such counterpart: dropped.
        tp, sl, targets = sl, tp, None
        kind = {"move_stop": "move_target", "move_target": "move_stop"}.get(kind, kind)
    position_quantity = None
    if leader.position_quantity is not None:
        position_quantity = follower_quantity(leader.position_quantity, rule.multiplier)
        if rule.max_contracts is not None:
            position_quantity = min(position_quantity, Decimal(rule.max_contracts))
    return new_intent(
        user_id=leader.user_id,
        subaccount_id=sub.id,
        trader_id=None,
        source="copy",
        signal_id=leader.signal_id,
        parent_id=leader.id,
        kind=kind,
        symbol=root,
        ticker=leader.ticker if kind == "flatten" else rule.ticker(leader.symbol, leader.ticker),
        side=rule.side(leader.side),
        quantity=quantity,
        order_type=leader.order_type,
        limit_price=leader.limit_price,
        tp_price=tp,
        sl_price=sl,
        targets=targets,
        position_quantity=position_quantity,
        priority=leader.priority,
    )


def _capped(
    session: Session,
    sub: Subaccount,
    root: str,
    rule: FollowerRule,
    side: str,
    quantity: Decimal,
    held: Holdings,
) -> Decimal:
    """An entry or add reduced so the follower holds at most its maximum after it."""
    if rule.max_contracts is None:
        return quantity
    sign = 1 if side == "buy" else -1
    after = after_pending(held(sub, root) or ZERO, pending_orders(session, sub.id, root))
    over = (after + sign * quantity) * sign - rule.max_contracts
    return max(ZERO, quantity - max(ZERO, over))


def _within_holding(
    session: Session, sub: Subaccount, root: str, quantity: Decimal, held: Holdings
) -> Decimal:
    """A reduce never larger than the follower holds (its maximum may have kept it smaller)."""
    holding = held(sub, root)
    if holding is None:
        return quantity
    return min(quantity, abs(after_pending(holding, pending_orders(session, sub.id, root))))


def after_pending(held: Decimal, pending: Iterable[OrderIntent]) -> Decimal:
    """What a subaccount will hold once its queued orders of a root are done (in order)."""
    net = held
    for intent in pending:
        if intent.kind in ("close", "flatten"):
            net = ZERO
        elif intent.kind in ("entry", "add", "reduce"):
            net += intent.quantity if intent.side == "buy" else -intent.quantity
    return net


def pending_orders(session: Session, subaccount_id: int, root: str) -> list[OrderIntent]:
    return list(
        session.scalars(
            select(OrderIntent)
            .where(
                OrderIntent.subaccount_id == subaccount_id,
                OrderIntent.symbol.in_((root, "*")),
                OrderIntent.status.in_(PENDING),
            )
            .order_by(OrderIntent.sequence)
        )
    )


def paper_holdings(session: Session) -> Holdings:
    def held(sub: Subaccount, root: str) -> Decimal | None:
        if sub.account.broker != "paper":
            return None
        net = session.scalar(
            select(func.coalesce(func.sum(PaperPosition.net_qty), 0)).where(
                PaperPosition.subaccount_id == sub.id, PaperPosition.symbol == root
            )
        )
        return Decimal(net or 0)

    return held


def broker_holdings(session: Session, client: redis.Redis, settings: Settings) -> Holdings:
    """What the broker holds, paper or Tradovate (the executor's snapshot)."""

    def held(sub: Subaccount, root: str) -> Decimal | None:
        figures = broker_figures(session, client, settings, sub, datetime.now(UTC))
        return None if figures is None else nets_by_root(figures).get(root, ZERO)

    return held


def entries_blocked(sub: Subaccount, now: datetime | None) -> str | None:
    """Why no entry may go to the subaccount now (its risk desk's lock, the broker's status)."""
    day = trade_date(now or datetime.now(UTC))
    if (until := sub.lock_until(day)) is not None:
        return f"{sub.name} is locked until {until.isoformat()}"
    if sub.risk_status != "normal":
        return f"{sub.name} is {sub.risk_status.replace('_', '-')} at the broker"
    return None


def _scaled_targets(targets: dict[str, Any] | None, multiplier: Decimal) -> dict[str, Any] | None:
    """The leader's target legs scaled for a follower; legs that round to nothing are dropped
    (the follower's broker gives the last leg whatever its position holds beyond the others)."""
    if not targets:
        return None
    legs = [
        {"price": leg["price"], "qty": str(follower_quantity(Decimal(leg["qty"]), multiplier))}
        for leg in targets["legs"]
    ]
    legs = [leg for leg in legs if Decimal(leg["qty"]) > 0]
    return {**targets, "legs": legs} if len(legs) >= 2 else None


def nets_by_root(figures: BrokerFigures) -> dict[str, Decimal]:
    nets: dict[str, Decimal] = {}
    for held in figures.positions:
        nets[held.symbol] = nets.get(held.symbol, ZERO) + held.net_qty
    return nets
