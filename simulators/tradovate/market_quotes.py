"""What the simulated market-data socket says about one contract, pure (tradovate.md §6.5): the
quote's entries after a trade or a book change, the DOM derived from the quote, and chart bars
built from the trades it printed.

Sim choices, where Tradovate publishes shapes but not rules:
- every quote event carries every entry known so far (the docs' example shows them all at once;
  whether real events are full or partial is unverified, and clients must merge either way);
- a trade outside the current bid/offer moves the book to bid = trade, offer = trade + 1 tick;
- `OpeningPrice` and `SettlementPrice` are the first trade the simulator printed, `OpenInterest`
  is a constant;
- the DOM has five levels a tick apart below the bid and above the offer, with made-up sizes;
- bars: a trade above the previous one is an up tick (and offer volume), below it a down tick
  (and bid volume), an unchanged one counts as the last direction; a daily bar and `td` are
  UTC calendar days, not CME sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

Entries = dict[str, dict[str, Any]]
OPEN_INTEREST = 250_000
DOM_LEVELS = 5
BAR_UNITS = {"MinuteBar": 60, "DailyBar": 86_400}  # seconds per element of size 1


@dataclass(frozen=True)
class Trade:
    at: float  # epoch seconds
    price: Decimal
    size: int


def after_trade(quote: Entries, price: Decimal, size: int, tick: Decimal) -> Entries:
    """The full quote once `size` traded at `price`."""
    new = {name: dict(fields) for name, fields in quote.items()}
    new["Trade"] = {"price": price, "size": size}
    volume = new.get("TotalTradeVolume", {}).get("size", 0)
    new["TotalTradeVolume"] = {"size": volume + size}
    high, low = new.get("HighPrice", {}).get("price"), new.get("LowPrice", {}).get("price")
    new["HighPrice"] = {"price": price if high is None else max(high, price)}
    new["LowPrice"] = {"price": price if low is None else min(low, price)}
    new.setdefault("OpeningPrice", {"price": price})
    new.setdefault("SettlementPrice", {"price": price})
    new.setdefault("OpenInterest", {"size": OPEN_INTEREST})
    bid, offer = new.get("Bid", {}).get("price"), new.get("Offer", {}).get("price")
    if bid is None or offer is None or not bid <= price <= offer:
        new["Bid"] = {"price": price, "size": new.get("Bid", {}).get("size", 5)}
        new["Offer"] = {"price": price + tick, "size": new.get("Offer", {}).get("size", 4)}
    return new


def dom_json(contract_id: int, quote: Entries, tick: Decimal, stamp: str) -> dict[str, Any] | None:
    """One `doms[]` item around the quote's bid and offer, or None while it has no book."""
    bid, offer = quote.get("Bid", {}), quote.get("Offer", {})
    if "price" not in bid or "price" not in offer:
        return None
    return {
        "contractId": contract_id,
        "timestamp": stamp,
        "bids": [
            {"price": bid["price"] - i * tick, "size": bid.get("size", 5) + 3 * i}
            for i in range(DOM_LEVELS)
        ],
        "offers": [
            {"price": offer["price"] + i * tick, "size": offer.get("size", 4) + 3 * i}
            for i in range(DOM_LEVELS)
        ],
    }


class ChartRefused(ValueError):
    """A `md/getChart` the simulator answers with `errorText`."""


@dataclass(frozen=True)
class ChartSpec:
    """A getChart request the simulator can serve: bars of `seconds` each."""

    seconds: int
    as_much_as: int | None
    closest: float | None  # epoch seconds: no bar after it
    as_far_as: float | None  # epoch seconds: no bar before it


def _when(value: Any, field: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ChartRefused(f"{field} is not an ISO timestamp") from None


def chart_spec(body: Any) -> ChartSpec:
    """Read `chartDescription` and `timeRange` (§6.5); `ChartRefused` for what is not served."""
    description = body.get("chartDescription") if isinstance(body, dict) else None
    time_range = body.get("timeRange") if isinstance(body, dict) else None
    if not isinstance(description, dict) or not isinstance(time_range, dict):
        raise ChartRefused("chartDescription and timeRange are required")
    kind, size = description.get("underlyingType"), description.get("elementSize", 1)
    if kind not in BAR_UNITS or description.get("elementSizeUnit") != "UnderlyingUnits":
        raise ChartRefused(f"{kind} charts are not simulated (MinuteBar and DailyBar are)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ChartRefused("elementSize must be a positive integer")
    keys = ("closestTimestamp", "closestTickId", "asFarAsTimestamp", "asMuchAsElements")
    if not any(time_range.get(k) is not None for k in keys):
        raise ChartRefused("timeRange needs at least one of " + ", ".join(keys))
    much = time_range.get("asMuchAsElements")
    return ChartSpec(
        BAR_UNITS[kind] * size,
        much if isinstance(much, int) and not isinstance(much, bool) else None,
        _when(time_range.get("closestTimestamp"), "closestTimestamp"),
        _when(time_range.get("asFarAsTimestamp"), "asFarAsTimestamp"),
    )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def trade_date(epoch: float) -> int:
    """`td`: YYYYMMDD."""
    day = datetime.fromtimestamp(epoch, UTC).date()
    return day.year * 10_000 + day.month * 100 + day.day


def bars(trades: list[Trade], spec: ChartSpec) -> list[dict[str, Any]]:
    """The bars of `trades` (oldest first) that the request's time range keeps."""
    built: dict[float, dict[str, Any]] = {}
    last: Decimal | None = None
    up = True
    for trade in trades:
        start = trade.at - trade.at % spec.seconds
        if last is not None and trade.price != last:
            up = trade.price > last
        last = trade.price
        bar = built.get(start)
        if bar is None:
            bar = built[start] = {
                "timestamp": _stamp(start),
                "open": trade.price,
                "high": trade.price,
                "low": trade.price,
                "close": trade.price,
                "upVolume": 0,
                "downVolume": 0,
                "upTicks": 0,
                "downTicks": 0,
                "bidVolume": 0,
                "offerVolume": 0,
            }
        bar["high"], bar["low"] = max(bar["high"], trade.price), min(bar["low"], trade.price)
        bar["close"] = trade.price
        side = (
            ("upVolume", "upTicks", "offerVolume")
            if up
            else ("downVolume", "downTicks", "bidVolume")
        )
        bar[side[0]] += trade.size
        bar[side[1]] += 1
        bar[side[2]] += trade.size
    kept = [
        bar
        for start, bar in sorted(built.items())
        if (spec.closest is None or start <= spec.closest)
        and (spec.as_far_as is None or start + spec.seconds > spec.as_far_as)
    ]
    return kept[-spec.as_much_as :] if spec.as_much_as else kept


def bar_of(trades: list[Trade], spec: ChartSpec, at: float) -> dict[str, Any] | None:
    """The bar holding time `at`, as it stands (a live update of the last bar)."""
    start = at - at % spec.seconds
    live = ChartSpec(spec.seconds, None, None, None)
    return next((b for b in bars(trades, live) if b["timestamp"] == _stamp(start)), None)
