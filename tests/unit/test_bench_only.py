"""`justtrades bench --only TEXT`: only the measurements whose rows' names hold TEXT."""

from __future__ import annotations

from tools.bench.core import Bench, only_steps
from tools.cli import build_parser


def test_only_takes_a_text() -> None:
    parser = build_parser()

    assert parser.parse_args(["bench"]).only is None
    assert parser.parse_args(["bench", "--quick", "--only", "sustained"]).only == "sustained"


def test_only_picks_the_steps_whose_rows_hold_the_text_in_any_case() -> None:
    steps = Bench.steps(Bench.__new__(Bench))  # the names only: nothing is measured

    assert [name for name, _ in only_steps(steps, "SUSTAINED")] == [
        "Sustained signals through the engine, 10,000 recorders"
    ]
    assert len(only_steps(steps, "webhook accepted")) == 1
    assert only_steps(steps, None) == steps
    assert only_steps(steps, "no such row") == []
