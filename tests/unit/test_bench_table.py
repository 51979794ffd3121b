"""The bench's arithmetic and its JSON: medians of rounds, the spread of their p99, and the
table as scripts read it. Built from plain values and Row objects; no servers."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import cast

import pytest

from libs.common.config import Settings
from tools.bench.core import Bench
from tools.bench.table import Machine, Rounds, Row, Spread, pct, render, render_json
from tools.cli import build_parser, cmd_bench


def _round(p50: float, p99: float) -> list[float]:
    """100 latencies whose nearest-rank p50 is `p50` and p99 is `p99`."""
    return [p50] * 60 + [p50 + 0.5] * 38 + [p99] * 2


def test_rounds_report_the_median_p50_and_p99_and_the_p99_spread() -> None:
    rounds = Rounds.of([_round(2.0, 9.0), _round(1.0, 4.0), _round(3.0, 6.0)], load=1.5)

    assert rounds.p50s == (2.0, 1.0, 3.0)
    assert rounds.p99s == (9.0, 4.0, 6.0)
    assert rounds.p50 == 2.0
    assert rounds.p99 == Spread(median=6.0, low=4.0, high=9.0)
    assert rounds.samples == 300
    assert rounds.value == "2.00 / 6.00 ms (p99 4.00-9.00)"
    assert rounds.numbers == {
        "p50_ms": 2.0,
        "p99_ms": 6.0,
        "p99_low_ms": 4.0,
        "p99_high_ms": 9.0,
        "p99_rounds_ms": [9.0, 4.0, 6.0],
        "rounds": 3,
        "samples": 300,
    }


def test_one_slow_round_moves_the_spread_not_the_median() -> None:
    steady = [_round(1.0, 3.0), _round(1.0, 3.5)]
    rounds = Rounds.of([*steady, _round(1.0, 80.0)])

    assert rounds.p99.median == 3.5
    assert rounds.p99.high == 80.0


def test_spread_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    assert Spread.of([4.0, 1.0, 3.0, 2.0]) == Spread(2.5, 1.0, 4.0)


def test_a_round_without_latencies_is_refused() -> None:
    with pytest.raises(ValueError):
        Rounds.of([[1.0], []])
    with pytest.raises(ValueError):
        Spread.of([])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert pct(values, 50) == 51.0  # rank round(0.5 * 99) = 50, zero-based
    assert pct(values, 99) == 99.0
    assert pct([7.0], 99) == 7.0


ROWS = [
    Row(
        "Redis XADD, pipelined",
        "50,000/s",
        "reference",
        None,
        "load 0.50 at start",
        {"rate_per_s": 50000},
        0.5,
    ),
    Row(
        "Webhook accepted, one at a time, p50 / p99",
        "2.00 / 6.00 ms (p99 4.00-9.00)",
        "p99 <= 5 ms",
        False,
        "load 1.25 at start",
        Rounds.of([_round(2.0, 9.0), _round(1.0, 4.0), _round(3.0, 6.0)]).numbers,
        1.254,
    ),
]
MACHINE = Machine(
    cores=2, load_at_start=0.756, database="127.0.0.1:5432/jt", redis="127.0.0.1:6379/0"
)


def test_json_holds_the_machine_and_every_row_with_its_numbers() -> None:
    table = json.loads(render_json(ROWS, MACHINE))

    assert table["machine"] == {
        "cores": 2,
        "load_1min_at_start": 0.76,
        "servers": {"database": "127.0.0.1:5432/jt", "redis": "127.0.0.1:6379/0"},
    }
    assert [r["measure"] for r in table["rows"]] == [r.what for r in ROWS]
    webhook = table["rows"][1]
    assert set(webhook) == {
        "measure",
        "value",
        "numbers",
        "goal",
        "met",
        "note",
        "load_1min_at_start",
    }
    assert webhook["met"] is False
    assert webhook["goal"] == "p99 <= 5 ms"
    assert webhook["numbers"]["p99_ms"] == 6.0
    assert webhook["numbers"]["p99_low_ms"] == 4.0
    assert webhook["load_1min_at_start"] == 1.25
    assert table["rows"][0]["met"] is None  # a reference has no verdict
    assert table["rows"][0]["numbers"] == {"rate_per_s": 50000}


def test_text_table_stays_the_default_and_shows_the_spread() -> None:
    text = render(ROWS, ["servers: here", "a note"])

    assert "2.00 / 6.00 ms (p99 4.00-9.00)" in text
    assert "MISSED" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_bench_command_takes_json_and_quick() -> None:
    parser = build_parser()

    assert parser.parse_args(["bench"]).json is False
    args = parser.parse_args(["bench", "--quick", "--json"])
    assert (args.quick, args.json) == (True, True)


def test_bench_command_hands_json_to_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[bool, bool]] = []
    monkeypatch.setattr(
        "tools.bench.run_bench",
        lambda settings, quick, as_json, only: runs.append((quick, as_json)),
    )

    cmd_bench(cast(Settings, None), build_parser().parse_args(["bench", "--json"]))

    assert runs == [(False, True)]


def test_printed_json_parses_and_names_no_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    bench = Bench.__new__(Bench)  # the printing only: no servers, no measured rows
    bench.settings = replace(
        Settings(),
        database_url="postgresql://jt:secret@127.0.0.1:5432/jt",
        redis_url="redis://:secret@127.0.0.1:6379/0",
    )
    bench.rows, bench.load_at_start, bench.as_json = list(ROWS), 0.5, True

    bench.print_table()

    printed = capsys.readouterr().out
    assert "secret" not in printed
    table = json.loads(printed)
    assert table["machine"]["servers"] == {
        "database": "127.0.0.1:5432/jt",
        "redis": "127.0.0.1:6379/0",
    }
    assert len(table["rows"]) == len(ROWS)
