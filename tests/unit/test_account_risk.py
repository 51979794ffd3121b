"""The risk desk's rules (docs/contract.md §4c) on plain values: what breaches, in which order, and
when a change of limits takes effect."""

from datetime import date
from decimal import Decimal as D

import pytest

from libs.common.account_risk import (
    AccountFigures,
    RiskInputError,
    RiskLimits,
    breach,
    change_limits,
    check_limits,
    with_high,
)

FRIDAY = date(2026, 12, 4)
MONDAY = date(2026, 12, 7)


def figures(realized="0", open_pnl="0", balance="0", high="0", trades=0, held="0"):
    return AccountFigures(D(realized), D(open_pnl), D(balance), D(high), trades, D(held))


def test_an_open_loss_alone_breaches_the_daily_loss_limit():
    limits = RiskLimits(daily_loss_limit=D(500))
    assert breach(limits, figures(realized="-200", open_pnl="-299.99")) is None
    hit = breach(limits, figures(realized="-200", open_pnl="-300"))
    assert hit is not None and hit.rule == "daily_loss_limit" and hit.flatten
    assert "$500.00" in hit.message and "net -$500.00 including open PnL" in hit.message


def test_the_trailing_drawdown_counts_from_the_highest_balance():
    limits = RiskLimits(trailing_drawdown=D(2000))
    seen = with_high(figures(balance="1500", high="1000"))
    assert seen.high_balance == 1500  # a new high moves the floor up to -500
    assert breach(limits, figures(balance="-499", high="1500")) is None
    assert breach(limits, figures(balance="-500", high="1500")).rule == "trailing_drawdown"


def test_a_profit_target_flattens_and_max_trades_only_locks():
    target = breach(RiskLimits(daily_profit_target=D(800)), figures(realized="700", open_pnl="100"))
    assert target.rule == "daily_profit_target" and target.flatten
    trades = breach(RiskLimits(max_trades_per_day=5), figures(trades=5))
    assert trades.rule == "max_trades_per_day" and not trades.flatten
    assert breach(RiskLimits(max_trades_per_day=5), figures(trades=4)) is None


def test_more_contracts_than_the_maximum_is_a_breach():
    assert breach(RiskLimits(max_contracts=3), figures(held="3")) is None
    assert breach(RiskLimits(max_contracts=3), figures(held="4")).rule == "max_contracts"


def test_the_loss_limit_is_judged_before_the_profit_target():
    limits = RiskLimits(daily_loss_limit=D(100), daily_profit_target=D(1))
    assert breach(limits, figures(realized="-100")).rule == "daily_loss_limit"


def test_tightening_applies_today_and_loosening_from_the_next_trade_date():
    current = RiskLimits(daily_loss_limit=D(500), max_trades_per_day=10)
    tighter = change_limits(
        current, RiskLimits(daily_loss_limit=D(400), max_trades_per_day=10), FRIDAY
    )
    assert (tighter.now.daily_loss_limit, tighter.later, tighter.effective_from) == (
        D(400),
        None,
        FRIDAY,
    )
    looser = RiskLimits(daily_loss_limit=D(800), max_trades_per_day=5)
    change = change_limits(current, looser, FRIDAY)
    # the tighter part (5 trades) holds today; $800 only from Monday, the next trade date
    assert change.now == RiskLimits(daily_loss_limit=D(500), max_trades_per_day=5)
    assert (change.later, change.effective_from) == (looser, MONDAY)
    removed = change_limits(current, RiskLimits(max_trades_per_day=10), FRIDAY)
    assert removed.later is not None and removed.now.daily_loss_limit == 500  # no limit is looser


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (RiskLimits(daily_loss_limit=D(-1)), "daily_loss_limit"),
        (RiskLimits(max_trades_per_day=0), "max_trades_per_day"),
        (RiskLimits(trailing_drawdown=D(0)), "trailing_drawdown"),
    ],
)
def test_a_limit_of_zero_or_below_is_refused_naming_it(limits, field):
    with pytest.raises(RiskInputError) as refused:
        check_limits(limits)
    assert refused.value.field == field
