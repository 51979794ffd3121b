"""Chart sessions of the local quote socket (docs/outside/tradingview.md B.13): a symbol resolved
into its info, and a series of bars folded from the market's own price path, then kept live.

What the simulator assumes where the reference is silent (sim choices):
- `resolve_symbol` answers `symbol_resolved` with the fields it can honestly fill (names, venue,
  type, currency, price grid, time zone); custom chart types (Heikin Ashi, Renko, a replay
  session: a symbol object nested under `symbol`) and unknown symbols get `symbol_error`
  `[cs, id, "invalid symbol"]`.
- `create_series`/`modify_series` answer `series_loading`, one `timescale_update` with the last
  `bar_count` bars that have trades (indexes 0…n-1, oldest first; periods without a trade have
  no bar), then `series_completed` with the connection's `update_mode`. The range may be a count
  or `["bar_count", to, count]` (bars that open at or before `to`).
- Each trade afterwards sends `du` with the last bar (a new index when a new bar starts) to every
  live series of that symbol; a series that ends at a `to` time gets none. Delayed sessions are
  labelled `delayed_streaming_600` but their bars are not held back.
- A series on a symbol that failed or was never resolved gets `series_error
  [cs, series, turnaround, "resolve error"]`; a resolution TradingView does not know (`15m`) gets
  `critical_error [cs, "invalid resolution", "method: create_series. args: …"]`, shaped after the
  observed `invalid timezone` error.
- `request_more_data` is not answered: the reference does not record how older bars are indexed.
  `switch_timezone` is accepted and changes nothing (bar times are unix seconds anyway).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulators.tradingview.bars import Bar, InvalidResolution, Resolution, fold
from simulators.tradingview.frames import listing_name, message
from simulators.tradingview.market import Listing, Market

NODE = "sim-node-1"
METHODS = frozenset(
    {
        "chart_create_session",
        "chart_delete_session",
        "switch_timezone",
        "resolve_symbol",
        "create_series",
        "modify_series",
        "remove_series",
        "request_more_data",
    }
)


@dataclass
class _Series:
    symbol_id: str
    turnaround: str
    resolution: Resolution
    count: int
    live: bool
    last: Bar | None = None
    last_index: int = -1


@dataclass
class _ChartSession:
    symbols: dict[str, str] = field(default_factory=dict)  # resolved symbol id → listing name
    series: dict[str, _Series] = field(default_factory=dict)


def symbol_info(listing: Listing) -> dict[str, Any]:
    """The `symbol_resolved` object: only what the simulator knows about the listing."""
    exchange, _, short = listing.name.partition(":")
    venue = exchange.split("_")[0]
    return {
        "name": short,
        "full_name": listing.name,
        "pro_name": listing.name,
        "description": listing.description,
        "exchange": venue,
        "listed_exchange": venue,
        "type": "futures",
        "currency_code": "USD",
        "currency_id": "USD",
        "pricescale": listing.pricescale,
        "minmov": listing.minmov,
        "minmove2": listing.minmove2,
        "fractional": listing.fractional,
        "timezone": "America/Chicago",
        "has_intraday": True,
    }


def _range(value: Any) -> tuple[int, int | None] | None:
    """`300` → (300, None); `["bar_count", to, 300]` → (300, to); anything else → None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, None
    if (
        isinstance(value, list)
        and len(value) == 3
        and value[0] == "bar_count"
        and all(isinstance(v, int | float) for v in value[1:])
    ):
        return int(value[2]), int(value[1])
    return None


class ChartSessions:
    """The chart sessions of one connection. `send` writes packets to it; `update_mode` says how
    the connection is served a listing (`streaming` or `delayed_streaming_600`)."""

    def __init__(
        self, market: Market, send: Callable[..., None], update_mode: Callable[[Listing], str]
    ) -> None:
        self.market, self.send, self.update_mode = market, send, update_mode
        self.sessions: dict[str, _ChartSession] = {}

    def handle(self, method: str, params: list[Any]) -> str | None:
        """Answer one chart message; the `protocol_error` text when the connection must close."""
        cs = params[0] if params else None
        if method == "chart_create_session" and isinstance(cs, str):
            self.sessions[cs] = _ChartSession()
            return None
        session = self.sessions.get(cs) if isinstance(cs, str) else None
        if session is None:
            return f'{{unknown_session_id,<<"{method}">>,<<"{cs}">>}}'
        assert isinstance(cs, str)
        args = params[1:]
        if method == "chart_delete_session":
            del self.sessions[cs]
        elif method == "resolve_symbol" and len(args) >= 2:
            self._resolve(cs, session, str(args[0]), args[1])
        elif method in ("create_series", "modify_series") and len(args) >= 4:
            self._series(cs, session, method, args)
        elif method == "remove_series" and args:
            session.series.pop(str(args[0]), None)
        return None  # switch_timezone, request_more_data: see the module's docstring

    def _resolve(self, cs: str, session: _ChartSession, symbol_id: str, symbol: Any) -> None:
        listing = self.market.get(listing_name(symbol)) if isinstance(symbol, str) else None
        if listing is None:
            session.symbols.pop(symbol_id, None)
            self.send(message("symbol_error", [cs, symbol_id, "invalid symbol"], stamped=True))
            return
        session.symbols[symbol_id] = listing.name
        self.send(message("symbol_resolved", [cs, symbol_id, symbol_info(listing)], stamped=True))

    def _series(self, cs: str, session: _ChartSession, method: str, args: list[Any]) -> None:
        series_id, turnaround, symbol_id = (str(a) for a in args[:3])
        try:
            parsed = Resolution.parse(args[3])
        except InvalidResolution:
            detail = f"method: {method}. args: {json.dumps([cs, *args])}"
            self.send(message("critical_error", [cs, "invalid resolution", detail]))
            return
        earlier = session.series.get(series_id)
        window = _range(args[4]) if len(args) > 4 else None
        if window is None and earlier is not None:  # modify_series sends "" for the range
            window = (earlier.count, None)
        name = session.symbols.get(symbol_id)
        if name is None or window is None:
            error = "resolve error" if name is None else "invalid bar count"
            self.send(message("series_error", [cs, series_id, turnaround, error], stamped=True))
            return
        count, until = window
        series = _Series(symbol_id, turnaround, parsed, count, live=until is None)
        session.series[series_id] = series
        bars = fold(self.market.trades(name), parsed)
        if until is not None:
            bars = [b for b in bars if b.time <= until]
        bars = bars[-count:]
        if bars:
            series.last, series.last_index = bars[-1], len(bars) - 1
        listing = self.market.get(name)
        mode = self.update_mode(listing) if listing else "delayed_streaming_600"
        rows = [{"i": i, "v": bar.values()} for i, bar in enumerate(bars)]
        self.send(
            message("series_loading", [cs, series_id, turnaround], stamped=True),
            message("timescale_update", [cs, {series_id: {"node": NODE, "s": rows}}]),
            message(
                "series_completed",
                [cs, series_id, mode, turnaround, {"rt_update_period": 5}],
                stamped=True,
            ),
        )

    def on_listing(self, listing: Listing) -> None:
        """A trade: `du` with the last bar of every live series on that listing."""
        for cs, session in self.sessions.items():
            for series_id, series in session.series.items():
                if not series.live or session.symbols.get(series.symbol_id) != listing.name:
                    continue
                since = series.last.time if series.last else 0
                rows = []
                for bar in fold(self.market.trades(listing.name, since), series.resolution):
                    if series.last is None or bar.time != series.last.time:
                        series.last_index += 1
                    elif bar == series.last:
                        continue
                    series.last = bar
                    rows.append({"i": series.last_index, "v": bar.values()})
                if rows:
                    self.send(message("du", [cs, {series_id: {"s": rows}}]))
