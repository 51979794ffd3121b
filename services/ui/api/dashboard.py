"""Dashboard routes: trade history, metric cards, the PnL/drawdown chart and the daily calendar.

Closed positions are the trades. Every route takes `recorder_id`, `from` and `to` (inclusive
dates of closing in the user's time zone) and names that zone in its answer (`time_zone`), while
its timestamps stay UTC; the arithmetic lives in services.ui.metrics.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TypeVarTuple
from zoneinfo import ZoneInfo

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, func, select

from libs.common.serialize import iso, position_dict, usd
from libs.common.storage.models import Position, Recorder
from services.ui import metrics
from services.ui.api.me import user_time_zone
from services.ui.api.params import date_arg, day_range, int_arg, local_midnight, month_arg
from services.ui.api.recorders import owned_recorder
from services.ui.context import db, user_id

bp = Blueprint("dashboard", __name__, url_prefix="/api/dashboard")
Columns = TypeVarTuple("Columns")


def _filtered(
    query: Select[*Columns],
    zone: ZoneInfo,
    low: datetime | None = None,
    high: datetime | None = None,
) -> Select[*Columns]:
    """Closed positions of the caller, narrowed by recorder and by the `from`/`to` dates (days
    of `zone`)."""
    query = query.join(Recorder, Recorder.id == Position.recorder_id).where(
        Recorder.user_id == user_id(), Position.status == "closed", Position.closed_at.is_not(None)
    )
    recorder_id = int_arg("recorder_id")
    if recorder_id is not None:
        query = query.where(Position.recorder_id == owned_recorder(recorder_id).id)
    start, end = day_range(date_arg("from"), date_arg("to"), zone)
    for lower in (start, low):
        if lower is not None:
            query = query.where(Position.closed_at >= lower)
    for upper in (end, high):
        if upper is not None:
            query = query.where(Position.closed_at < upper)
    return query


def _trades(
    zone: ZoneInfo, low: datetime | None = None, high: datetime | None = None
) -> list[metrics.Trade]:
    query = _filtered(
        select(
            Position.id, Position.closed_at, Position.realized_pnl, Position.worst_unrealized_pnl
        ),
        zone,
        low,
        high,
    ).order_by(Position.closed_at, Position.id)
    return [
        metrics.Trade(closed_at=closed_at, pnl=pnl, worst_unrealized_pnl=worst, position_id=pid)
        for pid, closed_at, pnl, worst in db().execute(query)
        if closed_at is not None  # always: `_filtered` keeps closed positions only
    ]


def _ratio(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@bp.get("/trade-history")
def trade_history() -> ResponseReturnValue:
    page = int_arg("page", default=1, low=1)
    per_page = int_arg("per_page", default=50, low=1, high=500)
    zone = user_time_zone()
    total = db().scalar(_filtered(select(func.count(Position.id)), zone))
    rows = (
        db()
        .execute(
            _filtered(select(Position, Recorder.name), zone)
            .order_by(Position.closed_at.desc(), Position.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
        .all()
    )
    trades = [{**position_dict(p), "recorder_name": name} for p, name in rows]
    return jsonify(
        ok=True, trades=trades, total=total, page=page, per_page=per_page, time_zone=zone.key
    )


@bp.get("/metrics")
def metric_cards() -> ResponseReturnValue:
    zone = user_time_zone()
    m = metrics.summarize(_trades(zone))
    return jsonify(
        ok=True,
        time_zone=zone.key,
        net_pnl=usd(m.net_pnl),
        win_rate=_ratio(m.win_rate),
        profit_factor=_ratio(m.profit_factor),
        avg_win=usd(m.avg_win),
        avg_loss=usd(m.avg_loss),
        expectancy=usd(m.expectancy),
        max_drawdown=usd(m.max_drawdown),
        gross_profit=usd(m.gross_profit),
        gross_loss=usd(m.gross_loss),
        trades=m.trades,
        wins=m.wins,
        losses=m.losses,
    )


@bp.get("/chart-data")
def chart_data() -> ResponseReturnValue:
    zone = user_time_zone()
    points = [
        {
            "time": iso(p.time),
            "position_id": p.position_id,
            "pnl": usd(p.pnl),
            "cumulative_pnl": usd(p.cumulative_pnl),
            "drawdown": usd(p.drawdown),
            "worst_unrealized_pnl": usd(p.worst_unrealized_pnl),
        }
        for p in metrics.equity_curve(_trades(zone))
    ]
    return jsonify(ok=True, points=points, time_zone=zone.key)


@bp.get("/calendar")
def calendar() -> ResponseReturnValue:
    zone = user_time_zone()
    first = month_arg("month", default=datetime.now(zone).date())
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    low, high = local_midnight(first, zone), local_midnight(following, zone)
    days = metrics.daily_pnl(_trades(zone, low, high), zone)
    return jsonify(
        ok=True,
        time_zone=zone.key,
        month=first.strftime("%Y-%m"),
        days=[{"date": d.date.isoformat(), "pnl": usd(d.pnl), "trades": d.trades} for d in days],
        pnl=usd(sum((d.pnl for d in days), metrics.ZERO)),
        trades=sum(d.trades for d in days),
    )
