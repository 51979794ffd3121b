"""The bench's one table: each figure beside its goal (or marked as a reference), the percentile
every latency row uses, the median-of-rounds arithmetic, and the table as JSON for scripts."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Figure = float | int | list[float]  # a number behind a row's value, or one per round

ROUNDS = 3  # measured rounds per latency row, after one warm-up round that is not counted


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Spread:
    """The median of a figure over rounds, and its lowest and highest round."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no rounds to take the median of")
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Rounds:
    """Latency rounds (milliseconds): each round's p50 and p99, the 1-minute load average when
    the first (warm-up) round began, and the share of the cores other processes used meanwhile."""

    p50s: tuple[float, ...]
    p99s: tuple[float, ...]
    samples: int
    load: float | None = None
    others: float | None = None

    @classmethod
    def of(
        cls,
        rounds: Sequence[Sequence[float]],
        load: float | None = None,
        others: float | None = None,
    ) -> Rounds:
        """From each measured round's latencies (the warm-up round already left out)."""
        if not rounds or any(not r for r in rounds):
            raise ValueError("every round needs at least one latency")
        return cls(
            tuple(pct(r, 50) for r in rounds),
            tuple(pct(r, 99) for r in rounds),
            sum(len(r) for r in rounds),
            load,
            others,
        )

    @property
    def p50(self) -> float:
        return statistics.median(self.p50s)

    @property
    def p99(self) -> Spread:
        return Spread.of(self.p99s)

    @property
    def value(self) -> str:
        """`p50 / p99 ms (p99 lowest–highest)`: the medians, then the spread of the rounds' p99."""
        p99 = self.p99
        return f"{self.p50:.2f} / {p99.median:.2f} ms (p99 {p99.low:.2f}-{p99.high:.2f})"

    @property
    def numbers(self) -> dict[str, Figure]:
        p99 = self.p99
        return {
            "p50_ms": round(self.p50, 3),
            "p99_ms": round(p99.median, 3),
            "p99_low_ms": round(p99.low, 3),
            "p99_high_ms": round(p99.high, 3),
            "p99_rounds_ms": [round(v, 3) for v in self.p99s],
            "rounds": len(self.p99s),
            "samples": self.samples,
        }


@dataclass(frozen=True)
class Row:
    what: str
    value: str
    goal: str  # "reference" for the raw figures the others are read against
    met: bool | None  # None: a reference, or no goal
    note: str = ""
    numbers: Mapping[str, Figure] = field(default_factory=dict)  # what the value shows
    load: float | None = None  # 1-minute load average when the row's measurement began

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("ok" if self.met else "MISSED")

    def as_json(self) -> dict[str, Any]:
        return {
            "measure": self.what,
            "value": self.value,
            "numbers": dict(self.numbers),
            "goal": self.goal,
            "met": self.met,
            "note": self.note,
            "load_1min_at_start": None if self.load is None else round(self.load, 2),
        }


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cores: int
    load_at_start: float
    database: str  # host:port/db, never the credentials
    redis: str

    def as_json(self) -> dict[str, Any]:
        return {
            "cores": self.cores,
            "load_1min_at_start": round(self.load_at_start, 2),
            "servers": {"database": self.database, "redis": self.redis},
        }


def render_json(rows: Sequence[Row], machine: Machine) -> str:
    """The table for scripts: `{"machine": {...}, "rows": [{measure, value, numbers, goal, met,
    note, load_1min_at_start}, ...]}`."""
    return json.dumps({"machine": machine.as_json(), "rows": [r.as_json() for r in rows]}, indent=2)


def render(rows: Sequence[Row], footer: list[str]) -> str:
    headers = ("measure", "result", "goal", "", "note")
    cells = [(r.what, r.value, r.goal, r.verdict, r.note) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers[:4])]
    align = ("<", ">", "<", "<")

    def line(values: tuple[str, ...]) -> str:
        parts = [f"{v:{a}{w}}" for v, a, w in zip(values, align, widths, strict=False)]
        return "  ".join([*parts, values[4]]).rstrip()

    out = ["", line(headers), line(tuple("-" * w for w in widths) + ("----",))]
    out += [line(c) for c in cells]
    out += ["", f"{os.cpu_count()} cores; " + footer[0], *footer[1:]]
    return "\n".join(out)
