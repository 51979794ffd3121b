"""The daily summary (§4e): after the CME session closes (17:00 New York), each user with a
`daily_summary` destination hears the trade date's PnL, trades, and the worst drawdown per
recorder (on cumulative realized PnL from 0, as the dashboard measures it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from libs.common.account_figures import trade_date_start
from libs.common.config import Settings
from libs.common.futures.exchange_calendar import (
    NEW_YORK,
    SESSION_CLOSE_ET,
    business_day_on_or_before,
)
from libs.common.notify import delivery
from libs.common.serialize import usd
from libs.common.storage.models import NotificationDestination, Position, Recorder

log = logging.getLogger("notifier")

SENT_KEY = "notify:summary_sent:"  # + trade date, under the stream prefix: summarized (or not
SENT_TTL_S = 8 * 86_400  # to be), whichever notifier set it first
CHECK_EVERY_S = 30.0


def last_closed_trade_date(now: datetime) -> date:
    """The trade date whose session closed most recently at or before `now`."""
    local = now.astimezone(NEW_YORK)
    day = local.date() if local.time() >= SESSION_CLOSE_ET else local.date() - timedelta(days=1)
    return business_day_on_or_before(day)


def session_close(day: date) -> datetime:
    return datetime.combine(day, SESSION_CLOSE_ET, NEW_YORK).astimezone(UTC)


def worst_drawdown(pnls: Iterable[Decimal]) -> Decimal:
    """The deepest fall of cumulative PnL below its running peak (from 0), as a negative amount."""
    cumulative = peak = worst = Decimal(0)
    for pnl in pnls:
        cumulative += pnl
        peak = max(peak, cumulative)
        worst = min(worst, cumulative - peak)
    return worst


@dataclass(frozen=True)
class RecorderDay:
    name: str
    pnl: Decimal
    trades: int
    worst_drawdown: Decimal


def user_summary(session: Session, user_id: int, day: date) -> dict[str, Any]:
    """The summary's data: positions closed in the trade date, per recorder and in all."""
    start, end = trade_date_start(day), session_close(day)
    rows = session.execute(
        select(Recorder.name, Position.realized_pnl)
        .join(Recorder, Recorder.id == Position.recorder_id)
        .where(
            Recorder.user_id == user_id,
            Position.status == "closed",
            Position.closed_at >= start,
            Position.closed_at < end,
        )
        .order_by(Recorder.name, Position.closed_at)
    ).all()
    by_recorder: dict[str, list[Decimal]] = {}
    for name, pnl in rows:
        by_recorder.setdefault(name, []).append(pnl)
    recorders = [
        RecorderDay(name, sum(pnls, Decimal(0)), len(pnls), worst_drawdown(pnls))
        for name, pnls in by_recorder.items()
    ]
    return {
        "trade_date": day.isoformat(),
        "pnl": usd(sum((r.pnl for r in recorders), Decimal(0))),
        "trades": len(rows),
        "recorders": [
            {
                "name": r.name,
                "pnl": usd(r.pnl),
                "trades": r.trades,
                "worst_drawdown": usd(r.worst_drawdown),
            }
            for r in recorders
        ],
    }


def send_daily_summaries(
    settings: Settings,
    sessions: sessionmaker[Session],
    client: redis.Redis,
    rq_conn: redis.Redis,
    now: datetime,
) -> int:
    """Enqueue the summary of the last closed trade date once (whichever notifier gets there
    first); how many deliveries were queued."""
    day = last_closed_trade_date(now)
    if not client.set(settings.stream(SENT_KEY + day.isoformat()), "1", nx=True, ex=SENT_TTL_S):
        return 0
    queued = 0
    with sessions() as session:
        dests = session.scalars(
            select(NotificationDestination).where(
                NotificationDestination.enabled.is_(True),
                NotificationDestination.events.contains(["daily_summary"]),
            )
        ).all()
        summaries: dict[int, dict[str, Any]] = {}
        for dest in dests:
            if dest.user_id not in summaries:
                summaries[dest.user_id] = user_summary(session, dest.user_id, day)
            delivery.enqueue(rq_conn, settings, dest.id, "daily_summary", summaries[dest.user_id])
            queued += 1
    log.info("daily summaries", extra={"kv": {"trade_date": str(day), "queued": queued}})
    return queued


def run_summaries(
    settings: Settings,
    sessions: sessionmaker[Session],
    client: redis.Redis,
    rq_conn: redis.Redis,
    stop: threading.Event,
) -> None:
    # The first run only remembers the last closed date: a notifier started mid-evening does not
    # send the summary of a session it may have told already.
    day = last_closed_trade_date(datetime.now(UTC))
    client.set(settings.stream(SENT_KEY + day.isoformat()), "0", nx=True, ex=SENT_TTL_S)
    while not stop.wait(CHECK_EVERY_S):
        try:
            send_daily_summaries(settings, sessions, client, rq_conn, datetime.now(UTC))
        except Exception:
            log.exception("daily summary failed; trying again")
