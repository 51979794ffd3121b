"""The risk desk's word before an order goes out (docs/contract.md §4c): no entry on a locked
subaccount, whatever wrote it (a trader, a manual trade, a copy), and none that would hold more
contracts of one root than the subaccount's `max_contracts`. Exits are never refused."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import redis
from sqlalchemy.orm import Session

from libs.common.account_figures import broker_figures
from libs.common.account_risk import in_force
from libs.common.config import Settings
from libs.common.futures.exchange_calendar import trade_date
from libs.common.storage.models import OrderIntent, Subaccount, SubaccountRisk

ENTRIES = ("entry", "add")


def entry_refusal(
    session: Session,
    client: redis.Redis,
    settings: Settings,
    intent: OrderIntent,
    sub: Subaccount,
    now: datetime,
) -> str | None:
    """Why the risk desk refuses this intent, or None when it may go out."""
    if intent.kind not in ENTRIES:
        return None
    day = trade_date(now)
    if (until := sub.lock_until(day)) is not None:
        return (
            f"the account {sub.name} is locked by its risk desk until "
            f"{until.isoformat()}: {sub.lock_reason}"
        )
    limits, _, _ = in_force(session.get(SubaccountRisk, sub.id), day)
    if limits.max_contracts is None:
        return None
    held = broker_figures(session, client, settings, sub, now)
    if held is None:
        return None  # the account socket has not reported yet: the broker's own limits decide
    net = sum((h.net_qty for h in held.positions if h.symbol == intent.symbol), Decimal(0))
    after = net + (intent.quantity if intent.side == "buy" else -intent.quantity)
    if abs(after) > limits.max_contracts:
        return (
            f"this order would hold {abs(after):f} {intent.symbol} contracts on {sub.name}, above "
            f"its maximum of {limits.max_contracts}"
        )
    return None
