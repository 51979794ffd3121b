"""Bars for chart sessions: a listing's price path folded into OHLCV bars of a TradingView
resolution (docs/outside/tradingview.md B.13). Pure: trades in, bars out."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from simulators.tradingview.market import Trade

_RESOLUTION = re.compile(r"^(\d*)([DWM]?)$")


class InvalidResolution(ValueError):
    """A resolution TradingView does not know, such as `15m`."""


@dataclass(frozen=True)
class Resolution:
    """`1`, `5`, `240` (minutes) or `1D`, `D`, `1W`, `1M` (days, weeks, months)."""

    count: int
    unit: str  # "" minutes | "D" | "W" | "M"

    @classmethod
    def parse(cls, text: object) -> Resolution:
        match = _RESOLUTION.match(text) if isinstance(text, str) else None
        if match is None or not (match.group(1) or match.group(2)):
            raise InvalidResolution(str(text))
        count = int(match.group(1) or 1)
        if count < 1:
            raise InvalidResolution(str(text))
        return cls(count, match.group(2))

    def bar_open(self, at: float) -> int:
        """Unix seconds of the open of the bar holding `at`.

        Sim choice: minute bars are aligned on multiples of their length since the epoch, day
        bars on UTC midnight, week bars on a Monday, month bars on the 1st (UTC). TradingView
        aligns CME futures' daily bars on its trading sessions instead (unverified detail)."""
        moment = datetime.fromtimestamp(at, UTC)
        if self.unit == "":
            step = 60 * self.count
            return int(at // step * step)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.unit == "D":
            days = (day - datetime(1970, 1, 1, tzinfo=UTC)).days
            return _unix(day - timedelta(days=days % self.count))
        if self.unit == "W":
            monday = day - timedelta(days=day.weekday())
            weeks = (monday - datetime(1970, 1, 5, tzinfo=UTC)).days // 7
            return _unix(monday - timedelta(weeks=weeks % self.count))
        months = (day.year - 1970) * 12 + day.month - 1
        first = months - months % self.count
        return _unix(datetime(1970 + first // 12, first % 12 + 1, 1, tzinfo=UTC))


def _unix(moment: datetime) -> int:
    return calendar.timegm(moment.utctimetuple())


@dataclass(frozen=True)
class Bar:
    time: int  # unix seconds of the bar's open
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    def values(self) -> list[float]:
        """The `v` array of a series packet: [time, open, high, low, close, volume]."""
        return [
            float(self.time),
            float(self.open),
            float(self.high),
            float(self.low),
            float(self.close),
            float(self.volume),
        ]


def fold(trades: Iterable[Trade], resolution: Resolution) -> list[Bar]:
    """Every bar that has trades, oldest first; periods without a trade have no bar."""
    bars: list[Bar] = []
    for trade in trades:
        opens_at = resolution.bar_open(trade.time)
        last = bars[-1] if bars else None
        if last is not None and last.time == opens_at:
            bars[-1] = Bar(
                opens_at,
                last.open,
                max(last.high, trade.price),
                min(last.low, trade.price),
                trade.price,
                last.volume + trade.size,
            )
        else:
            price = trade.price
            bars.append(Bar(opens_at, price, price, price, price, trade.size))
    return bars
