"""The pure parts of the Tradovate simulator: fills paired into round trips, quotes after trades,
chart bars."""

from decimal import Decimal

import pytest

from simulators.tradovate.broker_ledger import Lot, pair_fill
from simulators.tradovate.market_quotes import (
    ChartRefused,
    ChartSpec,
    Trade,
    after_trade,
    bars,
    chart_spec,
)

D = Decimal
TICK = D("0.25")


def test_a_closing_fill_pairs_with_the_oldest_open_fills_first():
    lots: list[Lot] = []
    assert pair_fill(lots, Lot(1, "Buy", 1, D("100")), D(2)) == []
    assert pair_fill(lots, Lot(2, "Buy", 2, D("101")), D(2)) == []
    pairs = pair_fill(lots, Lot(3, "Sell", 2, D("103")), D(2))
    assert [(p.buy_fill_id, p.qty, p.realized) for p in pairs] == [(1, 1, D(6)), (2, 1, D(4))]
    assert [(lot.fill_id, lot.qty) for lot in lots] == [(2, 1)]


def test_a_fill_through_flat_leaves_the_rest_open_on_the_other_side():
    lots = [Lot(1, "Sell", 1, D("100"))]
    (pair,) = pair_fill(lots, Lot(2, "Buy", 3, D("99")), D(5))
    assert (pair.buy_fill_id, pair.sell_fill_id, pair.realized) == (2, 1, D(5))
    assert [(lot.fill_id, lot.action, lot.qty) for lot in lots] == [(2, "Buy", 2)]


def test_a_trade_fills_every_documented_entry_and_keeps_the_extremes():
    quote = after_trade({}, D("100"), 2, TICK)
    quote = after_trade(quote, D("99.5"), 1, TICK)
    assert quote["Trade"] == {"price": D("99.5"), "size": 1}
    assert quote["TotalTradeVolume"] == {"size": 3}
    assert (quote["HighPrice"]["price"], quote["LowPrice"]["price"]) == (D("100"), D("99.5"))
    assert quote["OpeningPrice"]["price"] == quote["SettlementPrice"]["price"] == D("100")
    assert (quote["Bid"]["price"], quote["Offer"]["price"]) == (D("99.5"), D("99.75"))
    assert "size" in quote["OpenInterest"]


def test_a_trade_inside_the_book_leaves_it_alone():
    book = {"Bid": {"price": D("99"), "size": 7}, "Offer": {"price": D("100"), "size": 9}}
    quote = after_trade(book, D("100"), 1, TICK)
    assert (quote["Bid"], quote["Offer"]) == (book["Bid"], book["Offer"])


def test_minute_bars_split_trades_and_count_up_and_down_ticks():
    trades = [
        Trade(60.0, D("10"), 1),
        Trade(61.0, D("11"), 2),
        Trade(62.0, D("11"), 1),  # unchanged: counts as the last direction (up)
        Trade(125.0, D("9"), 4),
    ]
    first, second = bars(trades, ChartSpec(60, None, None, None))
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        D(10),
        D(11),
        D(10),
        D(11),
    )
    assert (first["upTicks"], first["upVolume"], first["offerVolume"]) == (3, 4, 4)
    assert (second["downTicks"], second["downVolume"], second["bidVolume"]) == (1, 4, 4)
    assert second["timestamp"] == "1970-01-01T00:02:00.000Z"
    assert bars(trades, ChartSpec(60, 1, None, None)) == [second]


def test_a_chart_it_does_not_serve_is_refused_with_a_reason():
    description = {"underlyingType": "Tick", "elementSize": 1, "elementSizeUnit": "UnderlyingUnits"}
    with pytest.raises(ChartRefused, match="Tick"):
        chart_spec({"chartDescription": description, "timeRange": {"asMuchAsElements": 5}})
    description["underlyingType"] = "MinuteBar"
    with pytest.raises(ChartRefused, match="timeRange"):
        chart_spec({"chartDescription": description, "timeRange": {}})
    spec = chart_spec({"chartDescription": description, "timeRange": {"asMuchAsElements": 5}})
    assert (spec.seconds, spec.as_much_as) == (60, 5)
