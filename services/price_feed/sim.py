"""Prices without a market: `sim` (a random walk on each root's tick grid), `replay` (a CSV of
recorded ticks played back at a chosen speed) and `off` (nothing; ticks come from elsewhere)."""

from __future__ import annotations

import csv
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from libs.common.futures.instruments import canonical_symbol, contract_spec, round_to_tick
from libs.common.streams import now_ms
from services.price_feed.quotes import Emit, PriceSource, Quote, ThreadedSource

log = logging.getLogger("price_feed")

# Plausible late-2026 levels, so a demo looks like the market it imitates.
START_PRICES = {
    "ES": "6900",
    "MES": "6900",
    "NQ": "25600",
    "MNQ": "25600",
    "YM": "47000",
    "MYM": "47000",
    "RTY": "2450",
    "M2K": "2450",
    "CL": "58.50",
    "MCL": "58.50",
    "NG": "4.500",
    "GC": "4100",
    "MGC": "4100",
    "SI": "50.000",
    "SIL": "50.000",
    "HG": "5.1000",
    "ZB": "116",
    "ZN": "112",
    "ZF": "108.5",
    "ZT": "104",
    "6E": "1.16500",
    "6J": "0.0064500",
    "6B": "1.3200",
    "M6E": "1.1650",
}


class SimSource(ThreadedSource):
    """A random walk per wanted root: every `interval_s`, each price moves a few ticks."""

    name = "sim"

    def __init__(self, interval_s: float = 0.25, max_step_ticks: int = 4, seed: int | None = None):
        super().__init__()
        self.interval_s = interval_s
        self.max_step_ticks = max_step_ticks
        self._random = random.Random(seed)
        self._prices: dict[str, Decimal] = {}

    def next_price(self, root: str) -> Decimal:
        spec = contract_spec(root)
        price = self._prices.get(root) or Decimal(START_PRICES.get(root, "100"))
        step = self._random.randint(-self.max_step_ticks, self.max_step_ticks) * spec.tick_size
        price = max(spec.tick_size, round_to_tick(price + step, spec.tick_size))
        self._prices[root] = price
        return price

    def _run(self, emit: Emit) -> None:
        while not self._stop.wait(self.interval_s):
            for root in sorted(self.symbols):
                emit(Quote(root, self.next_price(root), now_ms(), self.name))


class OffSource(PriceSource):
    """PRICE_SOURCE=off: the feed publishes nothing, for users who write ticks themselves."""

    name = "off"

    def __init__(self) -> None:
        super().__init__()
        self._status.error = (
            "PRICE_SOURCE is off: no prices are published; write ticks to jt:ticks yourself"
        )

    def start(self, emit: Emit) -> None:
        pass

    def stop(self) -> None:
        pass


class ReplayError(ValueError):
    """A replay file that cannot be read, with the line that is wrong."""


@dataclass(frozen=True)
class RecordedTick:
    at_ms: int  # when it happened in the recording
    symbol: str
    price: Decimal


def _parse_time(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        value = int(text)
        return value if value > 10**11 else value * 1000  # seconds or milliseconds
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def read_replay(path: Path) -> list[RecordedTick]:
    """Read `ts,symbol,price` rows (a header line is allowed); `ts` is epoch s/ms or ISO 8601."""
    ticks = []
    with path.open(newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].strip().lower() in ("ts", "time", "timestamp"):
                continue
            if len(row) < 3:
                raise ReplayError(f"{path}:{number}: expected ts,symbol,price")
            try:
                price = Decimal(row[2].strip())
                at = _parse_time(row[0])
            except (InvalidOperation, ValueError):
                raise ReplayError(
                    f"{path}:{number}: {','.join(row)!r} is not ts,symbol,price"
                ) from None
            if not price.is_finite() or price <= 0:
                raise ReplayError(f"{path}:{number}: the price must be a positive number")
            ticks.append(RecordedTick(at, canonical_symbol(row[1]), price))
    ticks.sort(key=lambda t: t.at_ms)
    return ticks


class ReplaySource(ThreadedSource):
    """Plays recorded ticks with their original spacing divided by `speed`; each tick is sent as
    a fresh one (stamped now), so it moves positions opened during the replay."""

    name = "replay"

    def __init__(self, path: Path, speed: float = 1.0, loop: bool = False):
        super().__init__()
        if speed <= 0:
            raise ReplayError("the replay speed must be positive")
        self.ticks = read_replay(path)
        self.speed = speed
        self.loop = loop
        self.played = 0
        self.finished = False

    def _run(self, emit: Emit) -> None:
        while not self._stop.is_set():
            self._play_once(emit)
            if not self.loop:
                break
        self.finished = True
        self._status.connected = False
        self._status.error = None if self._stop.is_set() else "the replay has finished"
        log.info("replay finished", extra={"kv": {"played": self.played}})

    def _play_once(self, emit: Emit) -> None:
        if not self.ticks:
            return
        started = time.monotonic()
        first = self.ticks[0].at_ms
        for tick in self.ticks:
            due = started + (tick.at_ms - first) / 1000 / self.speed
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            emit(Quote(tick.symbol, tick.price, now_ms(), self.name))
            self.played += 1
