"""Dashboard arithmetic on plain values: win rate, profit factor, drawdown, expectancy, calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from services.ui.metrics import Trade, daily_pnl, equity_curve, max_drawdown, summarize

T0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def trades(*pnls: str) -> list[Trade]:
    return [Trade(closed_at=T0 + timedelta(minutes=i), pnl=Decimal(p)) for i, p in enumerate(pnls)]


def test_win_rate_counts_breakeven_as_a_trade_but_not_a_win():
    m = summarize(trades("20", "-10", "0", "5"))
    assert (m.trades, m.wins, m.losses) == (4, 2, 1)
    assert m.win_rate == Decimal("50.00")


def test_win_rate_is_rounded_to_two_places():
    assert summarize(trades("1", "-1", "-1")).win_rate == Decimal("33.33")
    assert summarize(trades("1", "1", "-1")).win_rate == Decimal("66.67")


def test_profit_factor_is_gross_profit_over_gross_loss():
    m = summarize(trades("30", "-20", "15", "-5"))
    assert (m.gross_profit, m.gross_loss) == (Decimal(45), Decimal(25))
    assert m.profit_factor == Decimal("1.80")


def test_profit_factor_is_none_without_losses():
    m = summarize(trades("10", "0", "2.50"))
    assert m.profit_factor is None
    assert m.avg_loss is None
    assert m.avg_win == Decimal("6.25")


def test_averages_and_expectancy():
    m = summarize(trades("30", "-20", "15", "-5"))
    assert m.avg_win == Decimal("22.5")
    assert m.avg_loss == Decimal("-12.5")
    assert m.expectancy == Decimal("5")  # 20 net over 4 trades
    assert m.net_pnl == Decimal(20)


def test_no_trades_gives_zeros_and_nones():
    m = summarize([])
    assert (m.trades, m.net_pnl, m.max_drawdown) == (0, 0, 0)
    assert m.win_rate is None and m.expectancy is None and m.profit_factor is None


def test_max_drawdown_is_largest_peak_to_trough_drop():
    # cumulative: 10, 30, 15, 5, 25, 45, 40 → peak 30 to trough 5 = 25
    assert max_drawdown(
        [Decimal(x) for x in ("10", "20", "-15", "-10", "20", "20", "-5")]
    ) == Decimal(25)


def test_max_drawdown_counts_a_first_loss_from_zero():
    assert max_drawdown([Decimal("-7.25"), Decimal("3")]) == Decimal("7.25")


def test_max_drawdown_is_zero_when_equity_only_rises():
    assert max_drawdown([Decimal(1), Decimal(2)]) == 0


def test_equity_curve_sorts_by_close_and_tracks_drawdown_below_peak():
    earlier = Trade(closed_at=T0, pnl=Decimal(10))
    later = Trade(
        closed_at=T0 + timedelta(hours=1), pnl=Decimal(-15), worst_unrealized_pnl=Decimal(-20)
    )
    points = equity_curve([later, earlier])  # given out of order
    assert [p.cumulative_pnl for p in points] == [Decimal(10), Decimal(-5)]
    assert [p.drawdown for p in points] == [Decimal(0), Decimal(-15)]
    assert points[1].worst_unrealized_pnl == Decimal(-20)


def test_calendar_buckets_by_utc_day_of_closing():
    new_york = timezone(timedelta(hours=-5))
    day_trades = [
        Trade(closed_at=datetime(2026, 11, 2, 23, 59, tzinfo=UTC), pnl=Decimal("10.10")),
        Trade(
            closed_at=datetime(2026, 11, 2, 20, 0, tzinfo=new_york), pnl=Decimal("5")
        ),  # 01:00Z on the 3rd
        Trade(closed_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC), pnl=Decimal("-3.05")),
    ]
    days = daily_pnl(day_trades)
    assert [(d.date, d.pnl, d.trades) for d in days] == [
        (date(2026, 11, 2), Decimal("7.05"), 2),
        (date(2026, 11, 3), Decimal("5"), 1),
    ]
