"""Reconciliation of one account (docs/contract.md §4): the broker's positions against what the
platform expects, kept in Redis and published as account.mismatch to the owner."""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from libs.common import events
from libs.common.storage.models import Account, Position, Subaccount, Trader, TraderSkip
from libs.common.tradovate.accounts import AccountUnusable
from libs.common.tradovate.client import PenaltyTicket, RateLimited, TradovateError
from services.executor import reconcile
from services.executor.limiter import penalty_for

if TYPE_CHECKING:
    from services.executor.account_stream import AccountStream

log = logging.getLogger("executor")


def check(stream: AccountStream) -> None:
    now = time.monotonic()
    stream.last_check, stream.next_check = now, now + stream.t.check_every_s
    if not _name_contracts(stream):
        stream.next_check = now + stream.t.debounce_s
        return
    with stream.sync.sessions() as s:  # subaccounts too: the UI may have added or retired one
        subaccounts = s.execute(
            select(Subaccount.broker_account_id, Subaccount.id, Subaccount.flattened_at).where(
                Subaccount.account_id == stream.account_id, Subaccount.active.is_(True)
            )
        ).all()
        stream.subs = {broker_id: sub_id for broker_id, sub_id, _ in subaccounts}
        flattened = {sub_id: at for _, sub_id, at in subaccounts if at is not None}
        traders = list(
            s.scalars(
                select(Trader).where(
                    Trader.subaccount_id.in_(stream.subs.values()), Trader.enabled.is_(True)
                )
            )
        )
        positions = list(
            s.scalars(
                select(Position).where(
                    Position.recorder_id.in_({t.recorder_id for t in traders}),
                    Position.status == "open",
                )
            )
        )
        skipped = set(
            s.execute(
                select(TraderSkip.trader_id, TraderSkip.position_id).where(
                    TraderSkip.trader_id.in_([t.id for t in traders]),
                    TraderSkip.position_id.in_([p.id for p in positions]),
                )
            )
        )
        owner = stream.owner(s)
    traded = {t.subaccount_id for t in traders}  # only where the platform has an expectation
    expected = reconcile.expected_positions(
        traders, positions, at=datetime.now(UTC), flattened_at=flattened, skipped=skipped
    )
    found = [
        m for m in reconcile.compare(expected, stream.positions()) if m.subaccount_id in traded
    ]
    state = stream.alerts.observe(found, now)
    stream.next_check = min(stream.next_check, stream.alerts.next_due(now) or math.inf)
    report = reconcile.mismatch_report(stream.account_id, state, now, time.time() - now)
    stream.sync.redis.set(
        stream.sync.settings.stream(f"reconcile:{stream.account_id}"), json.dumps(report)
    )
    if state.changed:
        stream.sync.publish(events.ACCOUNT_MISMATCH, {"user_id": owner, **report})
        log.warning(
            "reconcile",
            extra={"kv": {"account_id": stream.account_id, "mismatches": len(state.alerted)}},
        )


def _name_contracts(stream: AccountStream) -> bool:
    """Names of the contracts held, looked up (a background slot each) when the snapshot had
    none; False while one is unknown: comparing without it would raise false alarms."""
    missing = {
        c
        for (_, c), net in stream.mirror.positions.items()
        if net and c not in stream.mirror.contracts
    }
    sync = stream.sync
    for contract_id in sorted(missing):
        if not sync.limiter.try_acquire(stream.user, "background").granted:
            return False
        try:
            with sync.sessions() as s:
                client = sync.keeper.client_for(s, s.get_one(Account, stream.account_id))
            found = client.contract_item(contract_id)
        except PenaltyTicket as exc:
            body = {"p-ticket": exc.ticket, "p-time": exc.wait_s, "p-captcha": exc.captcha}
            stream.penalized(penalty_for(200, body))
            return False
        except RateLimited as exc:
            stream.penalized(penalty_for(exc.status, None))
            return False
        except (TradovateError, AccountUnusable):
            return False
        with stream.lock:
            stream.mirror.contracts[contract_id] = str(
                (found or {}).get("name") or f"#{contract_id}"
            )
    return True
