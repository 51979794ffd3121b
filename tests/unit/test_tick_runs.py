"""The engine's quick ways through ticks give what applying them one at a time gives: runs of
ticks against a price range already folded into the extremes, and the tick entry reader."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.futures.instruments import contract_spec
from libs.common.streams import MalformedMessage, TickMessage
from services.position_engine.book import Tracked
from services.position_engine.rules import RecorderSettings, SignalInput, apply_signal
from services.position_engine.tick_entries import TickReader
from services.position_engine.ticks import TickRun, apply_tick, apply_tick_run, leaves_unchanged
from tests.unit.plan_strategies import plans

SPECS = [contract_spec(s) for s in ("MNQ", "ZN", "CL", "AAPL")]
prices = st.integers(min_value=900, max_value=1_100)  # in ticks, around entries of 1000
runs = st.lists(
    st.lists(st.tuples(prices, st.booleans()), min_size=1, max_size=12), min_size=1, max_size=8
)
recorders = st.builds(
    RecorderSettings,
    tp_ticks=st.none() | st.integers(1, 120),
    sl_ticks=st.none() | st.integers(1, 120),
) | st.builds(RecorderSettings, exits=plans())  # exit plans (§3b): legs, break-even, trailing


@settings(max_examples=400, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    side=st.sampled_from(["buy", "sell"]),
    recorder=recorders,
    allow_delayed=st.booleans(),
    batches=runs,
)
def test_runs_taken_the_engines_way_equal_every_tick_one_by_one(
    spec, side, recorder, allow_delayed, batches
):
    # Given an open position, and batches of ticks (some delayed) that arrive one run at a time
    opened = apply_signal(
        None,
        SignalInput("s", spec.root, side, 1000 * spec.tick_size, D(2), None, None, 0),
        recorder,
        spec,
    ).open_position
    tracked = Tracked(1, 1, 1, None, opened, opened)
    one_by_one, ms = opened, 0
    for batch in batches:
        ticks = []
        for price, delayed in batch:
            ms += 1
            ticks.append((price * spec.tick_size, ms, delayed))
        # When the engine takes each run: the quick answer when the run moves nothing, else the run
        run = TickRun.of(ticks)
        if tracked.state.status == "open":
            unchanged = leaves_unchanged(
                tracked.state, run, allow_delayed_exits=allow_delayed, folded=tracked.folded
            )
            outcome = apply_tick_run(
                tracked.state, run, spec, allow_delayed_exits=allow_delayed, folded=tracked.folded
            )
            assert not unchanged or (outcome.position is tracked.state and outcome.exit is None)
            live = allow_delayed or not run.any_delayed
            if outcome.exit is None and (tracked.state.plan is None or live):
                tracked.fold(run.low, run.high)  # as the engine folds (batch_apply._apply_ticks)
            tracked.state = outcome.position
        for price, ts, delayed in ticks:
            step = apply_tick(
                one_by_one, price, ts, spec, delayed=delayed, allow_delayed_exits=allow_delayed
            )
            if step is not None:
                one_by_one = step.position
    # Then the position is the one every tick applied in order gives
    assert tracked.state == one_by_one


@settings(max_examples=300, deadline=None)
@given(spec=st.sampled_from(SPECS), side=st.sampled_from(["buy", "sell"]), first=runs, second=runs)
def test_a_run_inside_the_folded_range_gives_what_the_full_computation_gives(
    spec, side, first, second
):
    opened = apply_signal(
        None,
        SignalInput("s", spec.root, side, 1000 * spec.tick_size, D(1), None, None, 0),
        RecorderSettings(),
        spec,
    ).open_position
    before = TickRun.of([(p * spec.tick_size, 1, False) for p, _ in first[0]])
    marked = apply_tick_run(opened, before, spec).position
    after = TickRun.of([(p * spec.tick_size, 2, False) for p, _ in second[0]])
    quick = apply_tick_run(marked, after, spec, folded=(before.low, before.high))
    full = apply_tick_run(marked, after, spec)
    assert (quick.position, quick.marked, quick.unrealized_pnl) == (
        full.position,
        full.marked,
        full.unrealized_pnl,
    )


def from_fields(fields: dict) -> tuple:
    tick = TickMessage.from_fields(fields)
    return tick.symbol, tick.price, tick.ts, tick.delayed


@pytest.mark.parametrize(
    "fields",
    [
        {"symbol": "MNQ", "price": "25640.25", "ts": "1700000000000", "source": "feed"},
        {"symbol": "MNQ", "price": "25640.25", "ts": "1700000000001", "delayed": "1"},
        {"symbol": "MNQ", "price": "25640.25", "ts": " 17 ", "delayed": " true "},
        {"symbol": " ES ", "price": " 6900.5 ", "ts": "5", "delayed": "0"},
        {"symbol": "CL", "price": "1e2", "ts": "5"},
        {"symbol": b"NQ", "price": b"21000", "ts": b"9"},
    ],
)
def test_the_tick_reader_reads_what_the_message_class_reads(fields):
    reader = TickReader()
    assert reader.read(fields) == from_fields(fields)
    assert reader.read(fields) == from_fields(fields)  # again, from what it has seen


@pytest.mark.parametrize(
    "fields",
    [
        {"symbol": "MNQ", "price": "abc", "ts": "1"},
        {"symbol": "MNQ", "price": "-1", "ts": "1"},
        {"symbol": "MNQ", "price": "NaN", "ts": "1"},
        {"symbol": "MNQ", "price": "25640", "ts": "soon"},
        {"symbol": "MNQ", "price": "25640"},
        {"symbol": "  ", "price": "25640", "ts": "1"},
        {"price": "25640", "ts": "1"},
    ],
)
def test_the_tick_reader_refuses_what_the_message_class_refuses(fields):
    reader = TickReader()
    reader.read(
        {"symbol": "MNQ", "price": "25640", "ts": "1"}
    )  # a good tick first: known symbol and price
    with pytest.raises(MalformedMessage) as refused:
        reader.read(fields)
    with pytest.raises(MalformedMessage) as expected:
        TickMessage.from_fields(fields)
    assert str(refused.value) == str(expected.value)
