"""The bench's one table: each figure beside its goal (or marked as a reference), and the
percentile every latency row uses."""

from __future__ import annotations

import os
from dataclasses import dataclass


def pct(values: list[float], p: float) -> float:
    """The p-th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Row:
    what: str
    value: str
    goal: str  # "reference" for the raw figures the others are read against
    met: bool | None  # None: a reference, or no goal
    note: str = ""

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("ok" if self.met else "MISSED")


def render(rows: list[Row], footer: list[str]) -> str:
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
