"""What an account socket's frames mean for the platform: finished orders written onto their
intents, bracket fills announced once, and subaccount risk status kept current."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from libs.common import events
from libs.common.serialize import intent_dict, num
from libs.common.storage.db import transaction
from libs.common.storage.models import OrderIntent, Subaccount
from libs.common.tradovate.accounts import risk_status
from services.executor import reconcile

if TYPE_CHECKING:
    from services.executor.account_stream import AccountStream

BRACKET_SEEN_S = 7 * 86400  # a bracket fill is announced once, even across restarts and re-syncs


def after(stream: AccountStream, touched: list[reconcile.Touched]) -> None:
    now, finished = time.monotonic(), False
    for kind, ident in touched:
        if kind == "order" and ident not in stream.accounted and stream.mirror.outcome(ident):
            finished = finished or ident not in stream.unsettled
            stream.unsettled.setdefault(ident, now)
        elif kind == "position":  # debounced: a burst of fills makes one comparison
            stream.next_check = min(
                stream.next_check, max(now, stream.last_check + stream.t.debounce_s)
            )
    risks = {ident for kind, ident in touched if kind == "risk"}
    if risks:
        _apply_risks(stream, risks)
    if finished:  # at once; orders already waiting are retried by the settle timer
        settle(stream)


def _apply_risks(stream: AccountStream, broker_ids: set[int]) -> None:
    changes: list[events.RiskStatusData] = []
    with transaction(stream.sync.sessions) as s:
        for sub in s.scalars(
            select(Subaccount).where(
                Subaccount.account_id == stream.account_id,
                Subaccount.broker_account_id.in_(broker_ids),
            )
        ):
            status = risk_status(stream.mirror.risks.get(sub.broker_account_id))
            if status != sub.risk_status:
                changes.append(
                    {
                        "user_id": stream.owner(s),
                        "account_id": stream.account_id,
                        "subaccount_id": sub.id,
                        "name": sub.name,
                        "risk_status": status,
                        "previous": sub.risk_status,
                    }
                )
                sub.risk_status, sub.refreshed_at = status, datetime.now(UTC)
    for data in changes:
        stream.sync.publish(events.ACCOUNT_RISK_STATUS, data)


def settle(stream: AccountStream) -> None:
    """Write finished orders onto their intents (by order id, or by clOrdId when the sender
    has not committed the order id yet); a row the sender still holds is tried again later."""
    mirror = stream.mirror
    done = {oid: outcome for oid in stream.unsettled if (outcome := mirror.outcome(oid))}
    by_id = {str(oid): oid for oid in done}
    by_cl = {mirror.cl_ord_ids[oid]: oid for oid in done if oid in mirror.cl_ord_ids}
    outgoing: list[tuple[str, dict]] = []
    with transaction(stream.sync.sessions) as s:
        rows = s.scalars(
            select(OrderIntent)
            .where(
                OrderIntent.subaccount_id.in_(stream.subs.values()),
                OrderIntent.status.in_(("sending", "accepted")),
                or_(OrderIntent.broker_order_id.in_(by_id), OrderIntent.cl_ord_id.in_(by_cl)),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for intent in rows:
            oid = by_id.get(intent.broker_order_id or "") or by_cl[intent.cl_ord_id]
            status, price, why = done[oid]
            intent.status, intent.broker_order_id = status, intent.broker_order_id or str(oid)
            intent.fill_price, intent.finished_at = price, datetime.now(UTC)
            if status == "filled" and intent.accepted_at is None:
                intent.accepted_at = intent.finished_at  # filled before the sender recorded it
            intent.error = (
                f"Tradovate rejected the order after accepting it: {why}" if why else None
            )
            outgoing.append((events.order_event(status), intent_dict(intent)))
            _account(stream, oid)
        for oid in [o for o in stream.unsettled if mirror.is_bracket(o)]:
            _account(stream, oid)
            outcome = done.get(oid)
            if outcome is not None and outcome[0] == "filled":
                outgoing += _bracket_filled(stream, s, oid, outcome[1])
    for event_type, data in outgoing:
        stream.sync.publish(event_type, data)
    now = time.monotonic()
    for oid, seen in list(stream.unsettled.items()):
        if now - seen > stream.t.settle_window_s:  # placed by hand, or by another platform
            _account(stream, oid)
    stream.next_settle = now + stream.t.settle_s if stream.unsettled else math.inf


def _account(stream: AccountStream, order_id: int) -> None:
    stream.unsettled.pop(order_id, None)
    stream.accounted.add(order_id)


def _bracket_filled(
    stream: AccountStream, s: Session, order_id: int, price: Decimal | None
) -> list[tuple[str, dict]]:
    key = stream.sync.settings.stream(f"account_sync:bracket:{order_id}")
    if not stream.sync.redis.set(key, 1, nx=True, ex=BRACKET_SEEN_S):
        return []  # announced before this re-sync (or by another process)
    mirror = stream.mirror
    order = mirror.orders[order_id]
    parent = order.get("parentId")
    account, contract_id = reconcile.ref(order, "accountId"), reconcile.ref(order, "contractId")
    subaccount_id = None if account is None else stream.subs.get(account)
    contract = None if contract_id is None else mirror.contracts.get(contract_id)
    net = (
        None
        if account is None or contract_id is None
        else mirror.positions.get((account, contract_id))
    )
    intent_id = parent and s.scalar(
        select(OrderIntent.id).where(OrderIntent.broker_order_id == str(parent))
    )
    order_type = mirror.order_types.get(order_id, "")
    return [
        (
            events.ORDER_BRACKET_FILLED,
            {
                "user_id": stream.owner(s),
                "account_id": stream.account_id,
                "subaccount_id": subaccount_id,
                "contract": contract,
                "broker_order_id": str(order_id),
                "intent_id": str(intent_id) if intent_id else None,
                "reason": "tp" if order_type == "Limit" else "sl" if "Stop" in order_type else None,
                "side": str(order.get("action", "")).lower(),
                "fill_price": num(price),
                "net_qty": num(net),
            },
        )
    ]
