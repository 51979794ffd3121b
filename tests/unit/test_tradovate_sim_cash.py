"""The simulated Tradovate's cash balance keeps its realized PnL per CME trade date, as Tradovate
does (docs/outside/tradovate.md §5.2): the day's starts again at the 17:00 ET close, the week's on
the first trade date of a week."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from libs.common.futures.rolls import front_contract
from simulators.tradovate.broker_entities import OrderSpec
from simulators.tradovate.broker_state import Book
from simulators.tradovate.contracts import ContractCatalogue

D = Decimal
NEW_YORK = ZoneInfo("America/New_York")
THURSDAY = date(2026, 11, 19)
CONTRACT = front_contract("MNQ", THURSDAY)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        self.now = datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK).timestamp()

    def __call__(self) -> float:
        return self.now


def round_trip(book: Book, account, buy: str, sell: str) -> None:
    book.set_price(CONTRACT, D(buy))
    book.place(account, CONTRACT, OrderSpec("Buy", 1, "Market"), automated=True)
    book.set_price(CONTRACT, D(sell))
    book.place(account, CONTRACT, OrderSpec("Sell", 1, "Market"), automated=True)


def cash_row(book: Book, user: str) -> dict:
    (row,) = book.rows("cashbalance", user)
    return row


def test_the_days_realized_pnl_starts_again_at_the_close_and_the_weeks_on_a_new_week():
    clock = Clock()
    clock.at(THURSDAY, 15)
    catalogue = ContractCatalogue()
    catalogue.add(CONTRACT)
    book = Book(catalogue, clock)
    account = book.add_account("trader", 1)
    events: list[tuple[str, dict]] = []
    book.listeners.append(lambda kind, event, entity, _: events.append((kind, entity)))

    round_trip(book, account, "25000", "25005")  # +5 points × $2
    row = cash_row(book, "trader")
    assert row["tradeDate"] == {"year": 2026, "month": 11, "day": 19}
    assert (row["realizedPnL"], row["weekRealizedPnL"], row["amount"]) == (D(10), D(10), D(50_010))
    assert [e for kind, e in events if kind == "cashBalance"][-1]["realizedPnL"] == D(10)

    clock.at(THURSDAY, 17, 30)  # after the close: Friday's trade date
    row = cash_row(book, "trader")
    assert row["tradeDate"] == {"year": 2026, "month": 11, "day": 20}
    assert (row["realizedPnL"], row["weekRealizedPnL"]) == (D(0), D(10))
    assert (row["amount"], row["amountSOD"]) == (D(50_010), D(50_010))

    round_trip(book, account, "25005", "25003")  # -2 points × $2 on Friday's trade date
    row = cash_row(book, "trader")
    assert (row["realizedPnL"], row["weekRealizedPnL"], row["amount"]) == (D(-4), D(6), D(50_006))

    clock.at(date(2026, 11, 22), 18, 30)  # the Sunday evening open: Monday's trade date
    row = cash_row(book, "trader")
    assert row["tradeDate"] == {"year": 2026, "month": 11, "day": 23}
    assert (row["realizedPnL"], row["weekRealizedPnL"], row["amountSOD"]) == (D(0), D(0), D(50_006))


def test_positions_and_fills_carry_the_cme_trade_date_not_the_utc_day():
    clock = Clock()
    clock.at(THURSDAY, 17, 30)  # 22:30 UTC, still Thursday there; Friday's trade date
    catalogue = ContractCatalogue()
    catalogue.add(CONTRACT)
    book = Book(catalogue, clock)
    account = book.add_account("trader", 1)
    book.set_price(CONTRACT, D("25000"))
    book.place(account, CONTRACT, OrderSpec("Buy", 1, "Market"), automated=True)
    (position,) = book.rows("position", "trader")
    (fill,) = book.rows("fill", "trader")
    friday = {"year": 2026, "month": 11, "day": 20}
    assert position["tradeDate"] == fill["tradeDate"] == friday
