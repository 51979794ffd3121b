"""Dashboard arithmetic on closed positions (trades): pure functions, exact Decimal, no I/O.

Conventions: a win has PnL > 0, a loss PnL < 0, a breakeven trade counts as a trade but as
neither; ratios that would divide by zero are None; drawdown is measured on cumulative realized
PnL starting from 0, so a first losing trade is already a drawdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True)
class Trade:
    closed_at: datetime
    pnl: Decimal
    worst_unrealized_pnl: Decimal = ZERO
    position_id: int | None = None


@dataclass(frozen=True)
class Metrics:
    net_pnl: Decimal
    trades: int
    wins: int
    losses: int
    gross_profit: Decimal
    gross_loss: Decimal  # a positive amount
    win_rate: Decimal | None  # percent, 2 decimal places
    profit_factor: Decimal | None  # gross profit / gross loss, 2 decimal places
    avg_win: Decimal | None
    avg_loss: Decimal | None  # negative
    expectancy: Decimal | None  # average PnL per trade
    max_drawdown: Decimal  # a positive amount


@dataclass(frozen=True)
class CurvePoint:
    time: datetime
    position_id: int | None
    pnl: Decimal
    cumulative_pnl: Decimal
    drawdown: Decimal  # cumulative - running peak, never above 0
    worst_unrealized_pnl: Decimal


@dataclass(frozen=True)
class DayPnl:
    date: date
    pnl: Decimal
    trades: int


def _round2(value: Decimal) -> Decimal:
    return value.quantize(HUNDREDTH, rounding=ROUND_HALF_UP)


def in_close_order(trades: Iterable[Trade]) -> list[Trade]:
    # Stable sort: trades closed at the same instant keep the order they were given in.
    return sorted(trades, key=lambda t: t.closed_at)


def max_drawdown(pnls: Iterable[Decimal]) -> Decimal:
    """Largest drop from a running peak of cumulative PnL (starting at 0), as a positive amount."""
    cumulative = peak = worst = ZERO
    for pnl in pnls:
        cumulative += pnl
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    return worst


def summarize(trades: Sequence[Trade]) -> Metrics:
    ordered = in_close_order(trades)
    wins = [t.pnl for t in ordered if t.pnl > 0]
    losses = [t.pnl for t in ordered if t.pnl < 0]
    net = sum((t.pnl for t in ordered), ZERO)
    gross_profit = sum(wins, ZERO)
    gross_loss = -sum(losses, ZERO)
    count = len(ordered)
    return Metrics(
        net_pnl=net,
        trades=count,
        wins=len(wins),
        losses=len(losses),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        win_rate=_round2(Decimal(len(wins)) * 100 / count) if count else None,
        profit_factor=_round2(gross_profit / gross_loss) if losses else None,
        avg_win=gross_profit / len(wins) if wins else None,
        avg_loss=-gross_loss / len(losses) if losses else None,
        expectancy=net / count if count else None,
        max_drawdown=max_drawdown(t.pnl for t in ordered),
    )


def equity_curve(trades: Sequence[Trade]) -> list[CurvePoint]:
    points = []
    cumulative = peak = ZERO
    for trade in in_close_order(trades):
        cumulative += trade.pnl
        peak = max(peak, cumulative)
        points.append(
            CurvePoint(
                time=trade.closed_at,
                position_id=trade.position_id,
                pnl=trade.pnl,
                cumulative_pnl=cumulative,
                drawdown=cumulative - peak,
                worst_unrealized_pnl=trade.worst_unrealized_pnl,
            )
        )
    return points


def daily_pnl(trades: Iterable[Trade], zone: tzinfo = UTC) -> list[DayPnl]:
    """PnL and trade count per calendar day of closing in `zone`, days in order."""
    days: dict[date, tuple[Decimal, int]] = {}
    for trade in trades:
        day = trade.closed_at.astimezone(zone).date()
        pnl, count = days.get(day, (ZERO, 0))
        days[day] = (pnl + trade.pnl, count + 1)
    return [DayPnl(day, pnl, count) for day, (pnl, count) in sorted(days.items())]
