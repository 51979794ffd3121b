"""Properties of the recorder rules that must hold for any sequence of signals and ticks."""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.futures.instruments import contract_spec
from services.position_engine.rules import (
    RecorderSettings,
    SignalInput,
    apply_signal,
)
from services.position_engine.ticks import TickRun, apply_tick, apply_tick_run

SPECS = [contract_spec(s) for s in ("MNQ", "ZN", "6J", "CL", "AAPL")]

prices = st.integers(min_value=1_000, max_value=200_000)  # in ticks
quantities = st.integers(min_value=1, max_value=5).map(D)
action_signals = st.tuples(st.sampled_from(["buy", "sell", "close"]), prices, quantities)
target_signals = st.tuples(st.just("target"), prices, st.integers(min_value=-4, max_value=4))
recorders = st.builds(
    RecorderSettings,
    tp_ticks=st.none() | st.integers(1, 80),
    sl_ticks=st.none() | st.integers(1, 80),
    on_opposite=st.sampled_from(["reverse", "close"]),
    allow_dca=st.booleans(),
)


def to_signal(step, spec, ms) -> SignalInput:
    kind, price_ticks, amount = step
    price = price_ticks * spec.tick_size
    if kind == "target":
        mp = "flat" if amount == 0 else ("long" if amount > 0 else "short")
        return SignalInput("s", spec.root, None, price, None, D(amount), mp, ms)
    return SignalInput("s", spec.root, kind, price, amount, None, None, ms)


def realized_from_fills(fills, point_value) -> D:
    cash = sum((f.price * f.quantity * (1 if f.side == "sell" else -1) for f in fills), D(0))
    return cash * point_value


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    recorder=recorders,
    steps=st.lists(
        st.one_of(action_signals, target_signals, st.tuples(st.just("tick"), prices, st.just(0))),
        max_size=40,
    ),
)
def test_every_closed_position_realizes_exactly_the_sum_over_its_fills(spec, recorder, steps):
    position, fills = None, []
    for ms, step in enumerate(steps):
        if step[0] == "tick":
            if position is None:
                continue
            out = apply_tick(position, step[1] * spec.tick_size, ms, spec)
            changes = [out.exit] if out and out.exit else []
            position = out.position if out and not out.exit else (None if out else position)
        else:
            outcome = apply_signal(position, to_signal(step, spec, ms), recorder, spec)
            changes = list(outcome.changes)
            if outcome.status == "applied":
                position = outcome.open_position
        for change in changes:
            fills.extend(change.fills)
            if change.position.status == "closed":
                assert change.position.realized_pnl == realized_from_fills(fills, spec.point_value)
                assert sum(f.realized_pnl for f in fills) == change.position.realized_pnl
                fills = []
            elif change.event == "opened":
                fills = list(change.fills)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    entries=st.lists(st.tuples(prices, quantities), min_size=1, max_size=12),
)
def test_average_entry_lies_between_lowest_and_highest_entry(spec, entries):
    position = None
    for ms, (ticks, qty) in enumerate(entries):
        sig = SignalInput("s", spec.root, "buy", ticks * spec.tick_size, qty, None, None, ms)
        position = apply_signal(
            position, sig, RecorderSettings(tp_ticks=10, sl_ticks=10), spec
        ).open_position
    entry_prices = [t * spec.tick_size for t, _ in entries]
    assert min(entry_prices) <= position.entry_cost / position.quantity <= max(entry_prices)
    assert position.quantity == sum(q for _, q in entries)
    assert position.sl_price < position.tp_price


@settings(max_examples=200, deadline=None)
@given(spec=st.sampled_from(SPECS), entry=prices, ticks=st.lists(prices, min_size=1, max_size=30))
def test_extremes_only_widen_and_keep_their_signs(spec, entry, ticks):
    sig = SignalInput("s", spec.root, "sell", entry * spec.tick_size, D(2), None, None, 0)
    position = apply_signal(None, sig, RecorderSettings(), spec).open_position
    for ms, t in enumerate(ticks, start=1):
        before = position
        position = apply_tick(position, t * spec.tick_size, ms, spec).position
        assert position.worst_unrealized_pnl <= min(0, before.worst_unrealized_pnl)
        assert position.best_unrealized_pnl >= max(0, before.best_unrealized_pnl)
        assert position.max_favorable >= before.max_favorable >= 0
        assert position.max_adverse >= before.max_adverse >= 0


tick_steps = st.tuples(prices, st.integers(min_value=0, max_value=40), st.booleans())


@settings(max_examples=400, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    side=st.sampled_from(["buy", "sell"]),
    entry=prices,
    recorder=recorders,
    allow_delayed=st.booleans(),
    opened_ms=st.integers(min_value=0, max_value=20),
    ticks=st.lists(tick_steps, min_size=1, max_size=40),
    plain=st.booleans(),
)
def test_a_run_of_ticks_equals_applying_them_one_by_one(
    spec, side, entry, recorder, allow_delayed, opened_ms, ticks, plain
):
    sig = SignalInput("s", spec.root, side, entry * spec.tick_size, D(2), None, None, opened_ms)
    position = apply_signal(None, sig, recorder, spec).open_position
    if plain:  # the common case, taken without the tick-by-tick fallback: live ticks, all newer
        ticks = [(t, opened_ms + ts, False) for t, ts, _ in ticks]
    run = [(t * spec.tick_size, ts, delayed) for t, ts, delayed in ticks]

    one_by_one, last = position, None
    for price, ts, delayed in run:
        out = apply_tick(
            one_by_one, price, ts, spec, delayed=delayed, allow_delayed_exits=allow_delayed
        )
        if out is None:
            continue
        last, one_by_one = out, out.position
        if out.exit:
            break

    together = apply_tick_run(position, TickRun.of(run), spec, allow_delayed_exits=allow_delayed)
    if last is None:
        assert together is None
        return
    assert together.position == one_by_one
    assert (together.exit is None) == (last.exit is None)
    assert together.unrealized_pnl == last.unrealized_pnl
    assert together.marked == (one_by_one != position)
