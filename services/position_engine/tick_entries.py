"""Reading `jt:ticks` entries at the rate they arrive: the same checks as `TickMessage.from_fields`,
with each price text turned into a `Decimal` (and validated) once, since a feed repeats the few
prices around the market many times."""

from __future__ import annotations

from decimal import Decimal

from libs.common.streams import TickMessage

PRICE_CACHE_SIZE = 50_000  # distinct price texts kept; the cache starts over past this


class TickReader:
    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}
        self._symbols: set[str] = set()  # symbols already seen in their canonical (stripped) form

    def read(self, fields: dict) -> tuple[str, Decimal, int, bool]:
        """(symbol, price, ts, delayed) of a tick entry; raises `MalformedMessage` as
        `TickMessage.from_fields` does."""
        symbol = fields.get("symbol")
        price = self._prices.get(fields.get("price"))  # type: ignore[arg-type]
        if price is None or symbol not in self._symbols:
            return self._read_checked(fields)
        try:
            ts = int(fields["ts"])
        except (KeyError, TypeError, ValueError):
            return self._read_checked(fields)
        delayed = fields.get("delayed")
        return symbol, price, ts, delayed is not None and delayed.strip() in ("1", "true")

    def _read_checked(self, fields: dict) -> tuple[str, Decimal, int, bool]:
        tick = TickMessage.from_fields(fields)
        text = fields.get("price")
        if isinstance(text, str):
            if len(self._prices) >= PRICE_CACHE_SIZE:
                self._prices.clear()
            self._prices[text] = tick.price
        if fields.get("symbol") == tick.symbol:
            self._symbols.add(tick.symbol)
        return tick.symbol, tick.price, tick.ts, tick.delayed
