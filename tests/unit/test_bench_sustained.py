"""The sustained-load rows' plan and text: the recorders seeded, the backlog's mix of entries,
adds, reversals and closes over the recorders and partitions, and the ratio the 2-partition row
gives. Plain values; no servers."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from decimal import Decimal

from libs.common.futures.instruments import contract_spec
from tools.bench.sustained_plan import (
    WAVES,
    Sustained,
    backlog,
    mix,
    ratio_note,
    recorder_rows,
    round_ratios,
    row_name,
)

RECORDERS = list(range(101, 10_101))  # 10,000 recorder ids, as the seed gives them


def test_seed_gives_each_user_its_recorders_with_one_contract_reversing_and_adding() -> None:
    tokens = (f"token-{i}" for i in itertools.count())

    rows = recorder_rows([7, 8, 9], 100, token=lambda: next(tokens))

    assert len(rows) == 300
    assert Counter(r["user_id"] for r in rows) == {7: 100, 8: 100, 9: 100}
    assert len({r["webhook_token"] for r in rows}) == 300
    assert {(r["default_qty"], r["on_opposite"], r["allow_dca"], r["enabled"]) for r in rows} == {
        (Decimal(1), "reverse", True, True)
    }


def test_backlog_holds_entries_adds_reversals_and_closes_alike() -> None:
    plan = backlog(RECORDERS, 3000)

    assert len(plan) == 3000
    assert mix(plan) == {"entry": 750, "add": 750, "reversal": 750, "close": 750}
    assert Counter(p.action for p in plan) == {"buy": 1125, "sell": 1125, "close": 750}


def test_each_recorder_goes_from_flat_back_to_flat_within_a_round() -> None:
    by_recorder = defaultdict(list)
    for p in backlog(RECORDERS, 3000, round_no=1):
        by_recorder[p.recorder_id].append((p.action, p.kind))

    assert len(by_recorder) == 750
    assert {tuple(signals) for signals in by_recorder.values()} == {
        (("buy", "entry"), ("buy", "add"), ("sell", "reversal"), ("close", "close")),
        (("sell", "entry"), ("sell", "add"), ("buy", "reversal"), ("close", "close")),
    }


def test_backlog_spreads_over_users_partitions_and_symbols() -> None:
    plan = backlog(RECORDERS, 3000)
    recorders = {p.recorder_id for p in plan}

    assert {(r - 101) // 100 for r in recorders} == set(range(100))  # every user's
    halves = Counter(r % 2 for r in recorders)  # the two partitions of 2
    assert min(halves.values()) >= 0.45 * len(recorders)
    assert {p.symbol for p in plan} >= {"MNQ", "ES", "NQ"}


def test_each_round_takes_other_recorders() -> None:
    first = {p.recorder_id for p in backlog(RECORDERS, 3000, round_no=1)}
    second = {p.recorder_id for p in backlog(RECORDERS, 3000, round_no=2)}

    assert not first & second


def test_every_signal_has_a_price_on_its_contracts_tick_grid() -> None:
    for p in backlog(RECORDERS, 400):
        tick = contract_spec(p.symbol).tick_size
        assert p.price % tick == 0, (p.symbol, p.price)


def test_signal_is_written_with_the_gateways_fields() -> None:
    [first, *_] = backlog(RECORDERS, 4)

    fields = first.message().to_fields()

    assert fields["recorder_id"] == str(first.recorder_id)
    assert (fields["action"], fields["symbol"]) == (first.action, first.symbol)
    assert Decimal(fields["price"]) == first.price


def test_a_small_backlog_still_holds_whole_cycles() -> None:
    plan = backlog(RECORDERS, 50)

    assert len(plan) % WAVES == 0
    assert set(mix(plan)) == {"entry", "add", "reversal", "close"}


def test_two_partition_row_gives_its_ratio_to_the_one_partition_row() -> None:
    one = Sustained(1, (400.0, 300.0, 420.0), 3000, 750, {"applied": 9000})
    two = Sustained(2, (600.0, 640.0, 700.0), 3000, 750, {"applied": 9000})

    assert one.value == "400/s (300-420)"
    assert ratio_note(one, two, cores=2).startswith("1.60x the 1-partition row (same run)")
    assert round_ratios(one, two) == [1.5, 2.133, 1.667]  # the rounds ran in pairs
    assert two.numbers["rate_rounds_per_s"] == [600.0, 640.0, 700.0]
    assert (two.numbers["partitions"], two.numbers["signals_applied"]) == (2, 9000)
    assert row_name(2).endswith("10,000 recorders / 100 users, 2 partitions")
    assert row_name(1).endswith(", 1 partition")
