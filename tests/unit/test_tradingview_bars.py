"""How the simulator folds a price path into chart bars (simulators/tradingview/bars.py)."""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.tradingview.bars import Bar, InvalidResolution, Resolution, fold
from simulators.tradingview.market import Trade


def unix(text: str) -> int:
    return calendar.timegm(datetime.fromisoformat(text).utctimetuple())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", Resolution(1, "")), ("240", Resolution(240, "")), ("D", Resolution(1, "D")),
     ("1D", Resolution(1, "D")), ("1W", Resolution(1, "W")), ("M", Resolution(1, "M")),
     ("3M", Resolution(3, "M"))],
)  # fmt: skip
def test_resolutions_tradingview_knows_parse(text, expected):
    assert Resolution.parse(text) == expected


@pytest.mark.parametrize("text", ["15m", "", "0", "1H", "D1", 5, None])
def test_other_resolutions_are_refused(text):
    with pytest.raises(InvalidResolution):
        Resolution.parse(text)


@pytest.mark.parametrize(
    ("resolution", "at", "opens"),
    [("5", "2026-03-11T14:37:12", "2026-03-11T14:35:00"),
     ("240", "2026-03-11T14:37:12", "2026-03-11T12:00:00"),
     ("1D", "2026-03-11T23:59:59", "2026-03-11T00:00:00"),
     ("1W", "2026-03-11T14:37:12", "2026-03-09T00:00:00"),  # the Monday
     ("1M", "2026-03-31T14:37:12", "2026-03-01T00:00:00")],
)  # fmt: skip
def test_a_bar_opens_at_the_start_of_its_period(resolution, at, opens):
    assert Resolution.parse(resolution).bar_open(unix(at)) == unix(opens)


def test_trades_fold_into_ohlcv_bars_and_quiet_periods_have_none():
    t0 = unix("2026-03-11T14:00:00")
    trades = [
        Trade(t0 + 1, Decimal("10")),
        Trade(t0 + 20, Decimal("12"), 3),
        Trade(t0 + 40, Decimal("9")),
        Trade(t0 + 185, Decimal("11")),
    ]

    assert fold(trades, Resolution.parse("1")) == [
        Bar(t0, Decimal("10"), Decimal("12"), Decimal("9"), Decimal("9"), 5),
        Bar(t0 + 180, Decimal("11"), Decimal("11"), Decimal("11"), Decimal("11"), 1),
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(1, 500), st.integers(1, 5)),
        min_size=1,
    ),
    st.sampled_from(["1", "5", "60", "1D"]),
)
def test_bars_keep_every_trade_and_its_extremes(raw, resolution):
    trades = [Trade(t, Decimal(p), size) for t, p, size in sorted(raw)]
    bars = fold(trades, Resolution.parse(resolution))

    assert sum(b.volume for b in bars) == sum(t.size for t in trades)
    assert max(b.high for b in bars) == max(t.price for t in trades)
    assert min(b.low for b in bars) == min(t.price for t in trades)
    assert [b.time for b in bars] == sorted({b.time for b in bars})
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)


def test_a_listing_keeps_its_newest_trades_and_the_whole_sessions_open_high_low(monkeypatch):
    from simulators.tradingview import market as market_module

    monkeypatch.setattr(market_module, "MAX_PATH", 100)
    clock = iter(range(1_000_000))
    sim = market_module.Market(clock=lambda: float(next(clock)))
    sim.list("CME_MINI:MNQ1!", "100")
    sim.set_price("CME_MINI:MNQ1!", "150")
    for i in range(300):
        sim.set_price("CME_MINI:MNQ1!", str(101 + i % 7))
    listing = sim.get("CME_MINI:MNQ1!")
    assert listing is not None
    assert len(listing.path) == 100 and listing.path[-1].price == Decimal(101 + 299 % 7)
    assert (listing.open, listing.high, listing.low) == (Decimal(100), Decimal(150), Decimal(100))
    assert listing.volume == 302
