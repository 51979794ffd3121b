"""The sustained-load rows' plan and arithmetic, pure: the recorders to seed, a round's backlog
of signals (entries, adds, reversals and closes over recorders spread across users and
partitions), and the rows' value, numbers and the ratio of 2 partitions to 1."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from libs.common import streams
from libs.common.futures.instruments import contract_spec
from libs.common.security import new_webhook_token
from libs.common.streams import SignalMessage
from tools.bench.table import Figure, Spread

# (symbol, TradingView ticker, a price on the contract's tick grid)
INSTRUMENTS = (
    ("MNQ", "MNQ1!", Decimal("25640.25")),
    ("ES", "ES1!", Decimal("6850.00")),
    ("NQ", "NQ1!", Decimal("25640.50")),
    ("MES", "MES1!", Decimal("6850.25")),
    ("YM", "YM1!", Decimal("47500")),
    ("RTY", "RTY1!", Decimal("2450.0")),
    ("CL", "CL1!", Decimal("60.00")),
    ("GC", "GC1!", Decimal("4200.0")),
)

# One recorder's signals, from flat back to flat in four (on_opposite "reverse", DCA allowed,
# default qty 1): a round plays one half, the next round the other side.
CYCLE = (
    ("buy", "entry"),
    ("buy", "add"),
    ("sell", "reversal"),
    ("close", "close"),
    ("sell", "entry"),
    ("sell", "add"),
    ("buy", "reversal"),
    ("close", "close"),
)
WAVES = 4  # signals per recorder a round: each round leaves every recorder flat


def recorder_rows(
    user_ids: Sequence[int], per_user: int, token: Callable[[], str] = new_webhook_token
) -> list[dict[str, Any]]:
    """`per_user` recorders for each user, as rows for one bulk insert."""
    return [
        {
            "user_id": user_id,
            "name": f"sustained {i}",
            "webhook_token": token(),
            "default_qty": Decimal(1),
            "on_opposite": "reverse",
            "allow_dca": True,
            "enabled": True,
            "allow_delayed_exits": False,
        }
        for user_id in user_ids
        for i in range(per_user)
    ]


@dataclass(frozen=True)
class Planned:
    """One signal of a backlog: whose, what it does to the position, on what, at what price."""

    recorder_id: int
    action: str
    kind: str  # entry | add | reversal | close
    symbol: str
    ticker: str
    price: Decimal

    def message(self) -> SignalMessage:
        """The signal as the gateway writes it."""
        return SignalMessage(
            str(uuid.uuid4()),
            self.recorder_id,
            self.action,
            self.ticker,
            self.symbol,
            self.price,
            None,
            None,
            None,
            streams.now_ms(),
            "{}",
        )


def backlog(recorder_ids: Sequence[int], count: int, round_no: int = 0) -> list[Planned]:
    """About `count` signals (a multiple of four) over recorders spread across all of
    `recorder_ids`: wave by wave, each recorder's entry, add, reversal and close, so every
    recorder is flat again at the end; even recorders go long first, odd ones short, and the
    next round swaps them. Symbols and prices vary by recorder and wave."""
    total = len(recorder_ids)
    used = max(1, min(total, count // WAVES))
    # One recorder in each of `used` equal slices, at place i (+ the round) in its slice: the
    # chosen ids do not all fall in one partition (recorder_id mod partitions), and each round
    # takes other recorders.
    stride = total // used
    chosen = [recorder_ids[i * total // used + (i + round_no) % stride] for i in range(used)]
    plan = []
    for wave in range(WAVES):
        for i, recorder_id in enumerate(chosen):
            action, kind = CYCLE[(WAVES * ((i + round_no) % 2) + wave) % len(CYCLE)]
            symbol, ticker, base = INSTRUMENTS[recorder_id % len(INSTRUMENTS)]
            price = base + contract_spec(symbol).tick_size * ((wave * 3 + i) % 9 - 4)
            plan.append(Planned(recorder_id, action, kind, symbol, ticker, price))
    return plan


def mix(plan: Sequence[Planned]) -> dict[str, int]:
    """How many of each kind of signal a backlog holds."""
    return dict(Counter(p.kind for p in plan))


@dataclass(frozen=True)
class Sustained:
    """Rates (signals per second) of one partition count's measured rounds."""

    partitions: int
    rates: tuple[float, ...]
    signals: int  # per round
    recorders: int  # recorders a round's signals went to
    statuses: Mapping[str, int]  # signals rows by status, over the measured rounds
    load: float | None = None  # 1-minute load average before the warm-up round
    others: float | None = None  # share of the cores other processes used over the rounds
    engine_cores: float | None = None  # cores the engine processes kept busy meanwhile

    @property
    def rate(self) -> Spread:
        return Spread.of(self.rates)

    @property
    def value(self) -> str:
        rate = self.rate
        return f"{rate.median:,.0f}/s ({rate.low:,.0f}-{rate.high:,.0f})"

    @property
    def numbers(self) -> dict[str, Figure]:
        rate = self.rate
        return {
            "rate_per_s": round(rate.median, 1),
            "rate_low_per_s": round(rate.low, 1),
            "rate_high_per_s": round(rate.high, 1),
            "rate_rounds_per_s": [round(r, 1) for r in self.rates],
            "rounds": len(self.rates),
            "partitions": self.partitions,
            "signals_per_round": self.signals,
            **{f"signals_{status}": n for status, n in sorted(self.statuses.items())},
            **({} if self.engine_cores is None else {"engine_cores": round(self.engine_cores, 2)}),
        }


def row_name(partitions: int) -> str:
    unit = "partition" if partitions == 1 else "partitions"
    return (
        f"Sustained signals through the engine, 10,000 recorders / 100 users, {partitions} {unit}"
    )


def ratio(one: Sustained, two: Sustained) -> float:
    """`two`'s median rate over `one`'s."""
    return two.rate.median / max(one.rate.median, 1e-9)


def round_ratios(one: Sustained, two: Sustained) -> list[float]:
    """`two`'s rate over `one`'s round by round: the rounds alternate, so each pair shares the
    machine's load of its moment."""
    return [round(b / max(a, 1e-9), 3) for a, b in zip(one.rates, two.rates, strict=False)]


def ratio_note(one: Sustained, two: Sustained, cores: int) -> str:
    """What the second partition bought: the ratio of the median rates, same run."""
    return (
        f"{ratio(one, two):.2f}x the 1-partition row (same run): {two.partitions} engine "
        f"processes on {cores} cores"
    )
