"""The futures contract table and ticker parsing (docs/outside/futures.md §2–3).

`parse_ticker("CME_MINI:MNQ1!")` → `MNQ`; `contract_spec("MNQ")` → tick 0.25, $2 a point.
An unknown ticker trades with tick 0.01 and point value 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

MONTH_CODES = "FGHJKMNQUVXZ"


@dataclass(frozen=True)
class ContractSpec:
    root: str
    tick_size: Decimal
    point_value: Decimal
    known: bool = True

    @property
    def tick_value(self) -> Decimal:
        return self.tick_size * self.point_value


def _spec(root: str, tick: str, point_value: str) -> ContractSpec:
    return ContractSpec(root, Decimal(tick), Decimal(point_value))


CONTRACTS: dict[str, ContractSpec] = {
    s.root: s
    for s in (
        _spec("ES", "0.25", "50"),
        _spec("MES", "0.25", "5"),
        _spec("NQ", "0.25", "20"),
        _spec("MNQ", "0.25", "2"),
        _spec("YM", "1", "5"),
        _spec("MYM", "1", "0.5"),
        _spec("RTY", "0.10", "50"),
        _spec("M2K", "0.10", "5"),
        _spec("CL", "0.01", "1000"),
        _spec("MCL", "0.01", "100"),
        _spec("NG", "0.001", "10000"),
        _spec("GC", "0.10", "100"),
        _spec("MGC", "0.10", "10"),
        _spec("SI", "0.005", "5000"),
        _spec("SIL", "0.005", "1000"),
        _spec("HG", "0.0005", "25000"),
        _spec("ZB", "0.03125", "1000"),
        _spec("ZN", "0.015625", "1000"),
        _spec("ZF", "0.0078125", "1000"),
        _spec("ZT", "0.00390625", "2000"),
        _spec("6E", "0.00005", "125000"),
        _spec("6J", "0.0000005", "12500000"),
        _spec("6B", "0.0001", "62500"),
        _spec("M6E", "0.0001", "12500"),
    )
}

# The largest order any path sends to a broker (a manual ticket, a trader's or a copy's order):
# far above any retail account's margin, and low enough that a runaway multiplier is refused
# rather than sent.
MAX_ORDER_CONTRACTS = 10_000
DEFAULT_TICK = Decimal("0.01")
DEFAULT_POINT_VALUE = Decimal("1")

# Longest root first, so `MNQZ5` matches MNQ and not a shorter root, `M6EZ5` M6E and not 6E.
_ROOTS_LONGEST_FIRST = sorted(CONTRACTS, key=len, reverse=True)
_CONTINUOUS = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<n>[1-9])!$")
_SYMBOL_CHARS = re.compile(r"^[A-Z0-9._!-]{1,32}$")


class TickerError(ValueError):
    """A ticker that cannot name an instrument (empty, too long, odd characters)."""


@dataclass(frozen=True)
class Ticker:
    """A parsed ticker: its canonical root plus, where it named one, the dated contract."""

    root: str
    continuous: int | None = None  # n of `ROOT<n>!`
    month: str | None = None  # month code of a dated contract
    year: str | None = None  # its year digits as written (1, 2 or 4)


def parse_ticker(raw: str) -> Ticker:
    """Map any ticker form to its canonical root (futures.md §3: strip prefix, longest root)."""
    text = raw.strip().upper()
    if ":" in text:
        text = text.rsplit(":", 1)[1]
    if not text or not _SYMBOL_CHARS.match(text):
        raise TickerError(f"ticker {raw!r} is not a symbol")
    cont = _CONTINUOUS.match(text)
    if cont:
        return Ticker(root=cont["root"], continuous=int(cont["n"]))
    for root in _ROOTS_LONGEST_FIRST:
        if text.startswith(root):
            rest = text[len(root) :]
            if rest == "":
                return Ticker(root=root)
            m = re.fullmatch(rf"([{MONTH_CODES}])(\d|\d\d|\d{{4}})", rest)
            if m:
                return Ticker(root=root, month=m[1], year=m[2])
    return Ticker(root=text)


def canonical_symbol(raw: str) -> str:
    return parse_ticker(raw).root


def contract_spec(symbol: str) -> ContractSpec:
    spec = CONTRACTS.get(symbol)
    if spec is not None:
        return spec
    return ContractSpec(symbol, DEFAULT_TICK, DEFAULT_POINT_VALUE, known=False)


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Nearest point of the tick grid, exact halves away from zero."""
    ticks = (price / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return ticks * tick
