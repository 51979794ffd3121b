"""Reading `jt:ticks` entries at the rate they arrive: the same checks as `TickMessage.from_fields`,
with each price text turned into a `Decimal` (and validated) once, since a feed repeats the few
prices around the market many times."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from libs.common.streams import MalformedMessage, TickMessage

PRICE_CACHE_SIZE = 50_000  # distinct price texts kept; the cache starts over past this

# symbol → the prices, times and delayed flags of its ticks, in stream order
Runs = dict[str, tuple[list[Decimal], list[int], list[bool]]]


class TickReader:
    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}
        self._symbols: set[str] = set()  # symbols already seen in their canonical (stripped) form

    def collect(self, entries: Iterable[dict], runs: Runs) -> list[MalformedMessage]:
        """Add each tick entry to the run of its symbol; returns why the malformed ones (left
        out) are malformed."""
        prices, symbols, refused = self._prices, self._symbols, []
        for fields in entries:
            symbol, price = fields.get("symbol"), prices.get(fields.get("price", ""))
            try:
                # The common entry: a known symbol and price, a plain time, not delayed.
                if price is None or symbol not in symbols or "delayed" in fields:
                    raise ValueError
                ts, delayed = int(fields["ts"]), False
            except (KeyError, TypeError, ValueError):
                try:
                    symbol, price, ts, delayed = self._read_checked(fields)
                except MalformedMessage as exc:
                    refused.append(exc)
                    continue
            run = runs.get(symbol)
            if run is None:
                run = runs[symbol] = ([], [], [])
            run[0].append(price)
            run[1].append(ts)
            run[2].append(delayed)
        return refused

    def read(self, fields: dict) -> tuple[str, Decimal, int, bool]:
        """(symbol, price, ts, delayed) of one entry; raises `MalformedMessage` as
        `TickMessage.from_fields` does."""
        runs: Runs = {}
        if refused := self.collect([fields], runs):
            raise refused[0]
        [(symbol, (prices, ts, delayed))] = runs.items()
        return symbol, prices[0], ts[0], delayed[0]

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
