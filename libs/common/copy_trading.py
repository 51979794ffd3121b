"""Copy trading: every order on a leader subaccount goes to each follower, scaled.

Copies are made when the leader's intent is written (same transaction), so the follower's order
is as durable as the leader's. Copies are never copied again, so groups cannot loop.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.orders import LEVEL_MOVES, new_intent
from libs.common.storage.models import CopyFollower, CopyGroup, OrderIntent, Subaccount


def follower_quantity(quantity: Decimal, multiplier: Decimal) -> Decimal:
    return (quantity * multiplier).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def copies_of(session: Session, leader_intent: OrderIntent) -> list[OrderIntent]:
    """Add the followers' copies of a leader's intent to the session; returns them."""
    if leader_intent.source == "copy":
        return []
    rows = (
        session.execute(
            select(CopyFollower)
            .join(CopyGroup, CopyGroup.id == CopyFollower.group_id)
            .join(Subaccount, Subaccount.id == CopyFollower.subaccount_id)
            .where(
                CopyGroup.leader_subaccount_id == leader_intent.subaccount_id,
                CopyGroup.enabled.is_(True),
                CopyFollower.enabled.is_(True),
                Subaccount.active.is_(True),
            )
            .order_by(CopyFollower.subaccount_id)
        )
        .scalars()
        .all()
    )
    copies = []
    for follower in rows:
        quantity = follower_quantity(leader_intent.quantity, follower.multiplier)
        if leader_intent.kind not in ("close", "flatten", *LEVEL_MOVES) and quantity == 0:
            continue
        copy = new_intent(
            user_id=leader_intent.user_id,
            subaccount_id=follower.subaccount_id,
            trader_id=None,
            source="copy",
            signal_id=leader_intent.signal_id,
            parent_id=leader_intent.id,
            kind=leader_intent.kind,
            symbol=leader_intent.symbol,
            ticker=leader_intent.ticker,
            side=leader_intent.side,
            quantity=quantity,
            order_type=leader_intent.order_type,
            limit_price=leader_intent.limit_price,
            tp_price=leader_intent.tp_price,
            sl_price=leader_intent.sl_price,
            targets=_scaled_targets(leader_intent.targets, follower.multiplier),
            position_quantity=None
            if leader_intent.position_quantity is None
            else follower_quantity(leader_intent.position_quantity, follower.multiplier),
            priority=leader_intent.priority,
        )
        session.add(copy)
        copies.append(copy)
    return copies


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
