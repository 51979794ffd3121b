"""The broker's cash balance in the account view (services/executor/broker_view.py) and in the
risk desk's figures (libs/common/account_figures.py): kept from the sync snapshot and `props`
events, newest trade date first, tolerant of absent or extra fields; judged only when it is for
the view's trade date, and then only when it is below ours."""

from __future__ import annotations

from decimal import Decimal

from libs.common.account_figures import BrokerFigures, Held, tradovate_figures
from services.executor.broker_view import BrokerBook, cash_view

D = Decimal
ACCOUNT = 7_654_321


def balance(day: int, realized: str | None, **extra: object) -> dict:
    row: dict = {
        "id": 55,
        "accountId": ACCOUNT,
        "timestamp": f"2026-11-{day:02d}T15:00:00.000Z",
        "tradeDate": {"year": 2026, "month": 11, "day": day},
        "currencyId": 1,
        "amount": D("50010.5"),
        **extra,
    }
    if realized is not None:
        row["realizedPnL"] = D(realized)
    return row


def test_the_snapshot_and_later_events_keep_the_newest_trade_dates_balance():
    book = BrokerBook()
    book.load({"users": [], "cashBalances": [balance(19, "10")]})
    assert cash_view(book.cash[ACCOUNT]) == {
        "amount": 50010.5,
        "realized_pnl": 10.0,
        "as_of": "2026-11-19",
    }
    book.apply("cashBalance", "Updated", balance(20, "-4", weekRealizedPnL=D(6), newField="x"))
    book.apply("cashBalance", "Updated", balance(19, "99"))  # a late row of the day before
    assert cash_view(book.cash[ACCOUNT])["realized_pnl"] == -4.0
    book.apply("cashBalance", "Deleted", balance(20, "-4"))
    assert ACCOUNT not in book.cash


def test_a_balance_that_says_nothing_shows_nothing_rather_than_zero():
    book = BrokerBook()
    book.apply("cashBalance", "Created", {"id": 1, "accountId": ACCOUNT, "amount": "n/a"})
    assert cash_view(book.cash[ACCOUNT]) == {"amount": None, "realized_pnl": None, "as_of": None}
    book.apply("cashBalance", "Created", {"id": 2, "amount": 5})  # no account: not ours to keep
    book.apply("cashBalance", "Created", balance(21, "3", archived=True))
    assert book.cash[ACCOUNT]["id"] == 1
    assert cash_view(None) is None


def view(broker_cash: dict | None, realized_today: float = 10.0) -> dict:
    return {
        "trade_date": "2026-11-20",
        "positions": [
            {"contract": "MNQZ6", "symbol": "MNQ", "net_qty": 1, "avg_price": 25000},
        ],
        "realized_pnl_today": realized_today,
        "trades_today": 1,
        "broker_cash": broker_cash,
    }


def test_the_daily_figure_is_the_lower_of_ours_and_the_brokers_of_the_same_trade_date():
    prices = {"MNQ": D("24990")}  # -$20 open
    lower = tradovate_figures(view({"amount": 1, "realized_pnl": -25.0, "as_of": "2026-11-20"}))
    figures = lower.account_figures(prices, D(0))
    assert figures is not None and figures.realized_today == D(-25)
    assert figures.net_today == D(-45)
    assert figures.balance == D(-10)  # the balance stays ours: today's realized plus open

    higher = tradovate_figures(view({"amount": 1, "realized_pnl": 30.0, "as_of": "2026-11-20"}))
    judged = higher.account_figures(prices, D(0))
    assert judged is not None and judged.realized_today == D(10)


def test_a_brokers_balance_of_another_trade_date_or_none_is_not_judged():
    yesterday = {"amount": 1, "realized_pnl": -500.0, "as_of": "2026-11-19"}
    for broker_cash in (yesterday, None, {"amount": 1, "realized_pnl": None, "as_of": None}):
        figures = tradovate_figures(view(broker_cash))
        assert figures.broker_realized_today is None
        judged = figures.account_figures({"MNQ": D("25000")}, D(0))
        assert judged is not None and judged.realized_today == D(10)


def test_paper_figures_have_no_broker_word():
    figures = BrokerFigures((Held("MNQZ6", "MNQ", D(1), D(25000)),), D(5), D(5), 1)
    judged = figures.account_figures({"MNQ": D(25000)}, D(0))
    assert judged is not None and judged.realized_today == D(5)
