"""Exit plans of contract §3b on plain values: the worked example, validation, levels, allotment,
and properties over random tick paths (including the one-leg form against today's tick rules)."""

from decimal import Decimal as D
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.exit_plans import (
    Breakeven,
    Distance,
    ExitPlan,
    ExitPlanError,
    TargetLeg,
    allot,
    check_plan,
    grid_level,
    parse_exit_plan,
    plan_levels,
    trail_level,
)
from libs.common.futures.instruments import contract_spec
from services.position_engine.exit_plan_steps import start_plan, step_plan, with_plan_levels
from services.position_engine.rules import (
    Fill,
    PositionState,
    RecorderSettings,
    SignalInput,
    apply_signal,
)
from services.position_engine.ticks import TickRun, apply_tick, apply_tick_run
from tests.unit.plan_strategies import plans

MNQ = contract_spec("MNQ")
WORKED = {
    "stop": {"ticks": 40},
    "targets": [{"ticks": 20, "qty": 1}, {"ticks": 40, "qty": 1}, {"ticks": 80}],
    "breakeven": {"trigger": {"ticks": 16}, "offset": {"ticks": 2}},
    "trail": {"trigger": {"ticks": 24}, "distance": {"ticks": 12}},
}


def opened(side: str, qty: int, price: str, spec=MNQ) -> PositionState:
    return PositionState(spec.root, side, D(qty), D(qty) * D(price), opened_ms=0)


def run_ticks(plan, position, prices, spec=MNQ):
    """Start the plan on `position` and step it through `prices`; every step is returned."""
    state = start_plan(plan, position, spec)
    position = with_plan_levels(position, state)
    steps = []
    for ms, price in enumerate(prices, start=1):
        if position.status != "open":
            break
        step = step_plan(state, plan, position, D(price), ms, spec)
        steps.append(step)
        state, position = step.state, step.position
    return steps


# --- the worked example of §3b, and its mirror ------------------------------------------------


def test_worked_example_of_the_design_comes_out_to_the_cent():
    plan = parse_exit_plan(WORKED, MNQ)
    position = opened("long", 2, "25000")
    state = start_plan(plan, position, MNQ)
    assert state.stop == D("24990") and state.levels.legs == (D("25005"), D("25010"), D("25020"))
    assert allot(plan, position.quantity, state.filled) == (1, 1, 0)

    s1, s2, s3, s4 = run_ticks(plan, position, ["25004", "25006", "25007", "25003.75"])
    assert (s1.state.stop, s1.state.stop_reason, s1.fills) == (D("25000.50"), "breakeven", ())
    assert [(f.kind, f.quantity, f.price, f.realized_pnl) for f in s2.fills] == [
        ("tp", 1, D("25005"), D("10.00"))
    ]
    assert s2.position.quantity == 1 and s2.position.status == "open"
    assert s2.position.best_unrealized_pnl == D("24.00")
    assert (s2.state.stop, s2.state.stop_reason) == (D("25003"), "trail")
    assert s2.position.tp_price == D("25010") and s2.position.sl_price == D("25003")
    assert s3.state.stop == D("25004")
    (exit_fill,) = s4.fills
    assert (exit_fill.quantity, exit_fill.price, exit_fill.realized_pnl) == (1, D("25004"), 8)
    assert s4.closed and s4.exit_reason == "trail" and s4.position.exit_price == D("25004")
    assert s4.position.realized_pnl == D("18.00")
    assert (s4.position.max_favorable, s4.position.max_adverse) == (7, 0)


def test_worked_example_mirrored_for_a_short():
    plan = parse_exit_plan(WORKED, MNQ)
    position = opened("short", 2, "25000")
    state = start_plan(plan, position, MNQ)
    assert state.stop == D("25010") and state.levels.legs == (D("24995"), D("24990"), D("24980"))
    s1, s2, s3, s4 = run_ticks(plan, position, ["24996", "24994", "24993", "24996.25"])
    assert (s1.state.stop, s1.state.stop_reason) == (D("24999.50"), "breakeven")
    assert [(f.kind, f.side, f.price, f.realized_pnl) for f in s2.fills] == [
        ("tp", "buy", D("24995"), D("10.00"))
    ]
    assert s2.position.best_unrealized_pnl == D("24.00")
    assert (s2.state.stop, s2.state.stop_reason) == (D("24997"), "trail")
    assert s3.state.stop == D("24996")
    assert s4.exit_reason == "trail" and s4.position.exit_price == D("24996")
    assert s4.position.realized_pnl == D("18.00")
    assert (s4.position.max_favorable, s4.position.max_adverse) == (7, 0)


# --- the tick rules around the example --------------------------------------------------------


def test_a_gap_through_two_legs_fills_each_at_its_level_and_closes_with_tp():
    plan = parse_exit_plan(WORKED, MNQ)
    (step,) = run_ticks(plan, opened("long", 2, "25000"), ["25012"])
    assert [(f.kind, f.price, f.realized_pnl) for f in step.fills] == [
        ("tp", D("25005"), D("10.00")),
        ("exit", D("25010"), D("20.00")),
    ]
    assert step.exit_reason == "tp" and step.position.exit_price == D("25010")
    assert step.position.max_favorable == 10  # clamped to the closing level, not 12
    assert step.unrealized_pnl == D("40.00")  # both contracts, held before the exits


def test_the_stop_exits_the_whole_position_at_its_level_with_reason_sl():
    plan = parse_exit_plan(WORKED, MNQ)
    (step,) = run_ticks(plan, opened("long", 3, "25000"), ["24980"])
    assert step.exit_reason == "sl" and step.position.exit_price == D("24990")
    assert step.fills[0].quantity == 3 and step.position.realized_pnl == D("-60.00")
    assert step.position.max_adverse == 10


def test_break_even_stop_exit_has_reason_breakeven_and_never_loosens():
    plan = parse_exit_plan(WORKED, MNQ)
    steps = run_ticks(plan, opened("long", 2, "25000"), ["25004", "25001", "25000.50"])
    assert [s.state.stop for s in steps[:2]] == [D("25000.50"), D("25000.50")]
    assert steps[-1].exit_reason == "breakeven" and steps[-1].position.realized_pnl == D("2.00")


def test_the_trailing_stop_follows_the_best_price_only():
    plan = parse_exit_plan(
        {"stop": {"ticks": 8}, "trail": {"trigger": {"ticks": 4}, "distance": {"points": 2}}}, MNQ
    )
    steps = run_ticks(plan, opened("long", 1, "100"), ["101", "103", "102", "104", "103"])
    assert [s.state.stop for s in steps] == [D(99), D(101), D(101), D(102), D(102)]
    assert [s.state.best for s in steps] == [D(101), D(103), D(103), D(104), D(104)]


def test_a_trailing_proposal_looser_than_the_stop_is_not_taken():
    wide = {"trigger": {"ticks": 2}, "distance": {"ticks": 20}}
    plan = parse_exit_plan({"stop": {"ticks": 4}, "targets": [{"ticks": 40}], "trail": wide})
    steps = run_ticks(plan, opened("short", 1, "100"), ["99.5", "99"])
    assert [(s.state.stop, s.state.stop_reason) for s in steps] == [(D(101), "sl")] * 2


def test_a_proposal_at_the_price_is_not_taken():
    offset_at_trigger = ExitPlan(
        stop=Distance("ticks", D(8)),
        targets=(TargetLeg(Distance("ticks", D(40))),),
        breakeven=Breakeven(Distance("ticks", D(4)), Distance("ticks", D(4))),
    )
    (step,) = run_ticks(offset_at_trigger, opened("long", 1, "100"), ["101"])
    assert step.state.stop == D(98) and not step.stop_moved


def test_a_new_average_resets_the_stop_and_keeps_filled_legs():
    plan = parse_exit_plan(WORKED, MNQ)
    s1, s2 = run_ticks(plan, opened("long", 2, "25000"), ["25004", "25006"])
    assert s2.state.filled == (True, False, False)
    grown = apply_signal(
        s2.position, SignalInput("s", "MNQ", "buy", D("25006"), D(2)), RecorderSettings(), MNQ
    ).open_position
    assert grown is not None and grown.quantity == 3
    step = step_plan(s2.state, plan, grown, D("25004"), 9, MNQ)
    assert step.state.avg == D("25004") and step.state.filled == (True, False, False)
    assert (step.state.stop, step.state.stop_reason) == (D("24994"), "sl")
    assert allot(plan, grown.quantity, step.state.filled) == (0, 1, 2)
    assert step.position.tp_price == D("25014") and step.position.sl_price == D("24994")


# --- distances and levels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("distance", "points"),
    [
        ({"ticks": 20}, D(5)),
        ({"points": "2.5"}, D("2.5")),
        ({"usd": 10}, D(5)),  # per contract: $10 ÷ $2 a point
        ({"percent": "0.02"}, D(5)),  # of the 25000 average
    ],
)
def test_each_distance_unit_gives_its_level(distance, points):
    plan = parse_exit_plan({"stop": distance, "targets": [distance]}, MNQ)
    levels = plan_levels(plan, D(25000), "long", MNQ)
    assert (levels.stop, levels.legs) == (25000 - points, (25000 + points,))
    short = plan_levels(plan, D(25000), "short", MNQ)
    assert (short.stop, short.legs) == (25000 + points, (25000 - points,))


def test_levels_round_exact_halves_away_from_the_average():
    assert grid_level(D(100), D("0.125"), True, D("0.25")) == D("100.25")
    assert grid_level(D(100), D("0.125"), False, D("0.25")) == D("99.75")
    assert grid_level(D("100.10"), D("0.10"), True, D("0.25")) == D("100.25")
    assert grid_level(D("100.10"), D(0), True, D("0.25")) == D("100.25")  # break-even, no loss
    assert trail_level(D(100), D("0.125"), "long", D("0.25")) == D("99.75")
    assert trail_level(D(100), D("0.125"), "short", D("0.25")) == D("100.25")


def test_the_one_leg_short_form_is_the_plan_of_tp_and_sl_ticks():
    short_form = ExitPlan.from_ticks(20, 40)
    assert short_form == parse_exit_plan({"stop": {"ticks": 40}, "targets": [{"ticks": 20}]})
    assert ExitPlan.from_ticks(None, 0) == ExitPlan()


def test_a_plan_survives_its_json_form():
    plan = parse_exit_plan({**WORKED, "stop": {"usd": "12.5"}}, MNQ)
    assert parse_exit_plan(plan.to_json(), MNQ) == plan


# --- validation: the message names the field and the rule -------------------------------------


def legs(*distances):
    return [{**d, "qty": 1} for d in distances[:-1]] + [distances[-1]]


BAD_PLANS = [
    ([], "exits", "must be an object"),
    ({}, "exits", "a plan needs"),
    ({"stops": {"ticks": 4}}, "exits.stops", "unknown field"),
    ({"targets": legs(*[{"ticks": t} for t in (4, 8, 12, 16)])}, "exits.targets", "at most 3"),
    ({"targets": []}, "exits.targets", "1 to 3 legs"),
    ({"targets": legs({"ticks": 8}, {"ticks": 4})}, "exits.targets[1]", "increasing distance"),
    ({"targets": legs({"ticks": 20}, {"points": 4})}, "exits.targets[1]", "increasing distance"),
    ({"targets": [{"ticks": 4}, {"ticks": 8}]}, "exits.targets[0].qty", "needs a qty"),
    ({"targets": [{"ticks": 4, "qty": 1.5}, {"ticks": 8}]}, "exits.targets[0].qty", "whole"),
    ({"targets": [{"ticks": 4, "qty": 0}, {"ticks": 8}]}, "exits.targets[0].qty", "at least 1"),
    ({"targets": [{"ticks": 4, "qty": 1}]}, "exits.targets[0].qty", "takes the rest"),
    ({"stop": {"ticks": 4, "points": 1}}, "exits.stop", "exactly one unit"),
    ({"stop": {}}, "exits.stop", "exactly one unit"),
    ({"stop": {"percent": 0}}, "exits.stop.percent", "greater than 0"),
    ({"stop": {"percent": -1}}, "exits.stop.percent", "greater than 0"),
    ({"stop": {"ticks": 2.5}}, "exits.stop.ticks", "whole number of ticks"),
    ({"stop": {"points": "abc"}}, "exits.stop.points", "must be a number"),
    ({"stop": {"points": True}}, "exits.stop.points", "must be a number"),
    ({"stop": {"points": "0.1"}}, "exits.stop", "rounds to no tick"),
    ({"targets": [{"usd": "0.2"}]}, "exits.targets[0]", "rounds to no tick"),
    (
        {"breakeven": {"trigger": {"ticks": 4}, "offset": {"ticks": 4}}},
        "exits.breakeven.offset",
        "below its trigger",
    ),
    (
        {"breakeven": {"trigger": {"ticks": 4}, "offset": {"points": 2}}},
        "exits.breakeven.offset",
        "below its trigger",
    ),
    ({"breakeven": {"offset": {"ticks": 0}}}, "exits.breakeven.trigger", "is required"),
    ({"trail": {"trigger": {"ticks": 4}}}, "exits.trail.distance", "is required"),
]


@pytest.mark.parametrize(("obj", "field", "rule"), BAD_PLANS)
def test_a_bad_plan_is_refused_naming_its_field_and_rule(obj, field, rule):
    with pytest.raises(ExitPlanError) as caught:
        parse_exit_plan(obj, MNQ)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ") and rule in str(caught.value)


def test_a_percent_that_rounds_to_no_tick_is_refused_once_the_average_is_known():
    plan = parse_exit_plan({"stop": {"percent": "0.0001"}}, MNQ)  # no average yet: accepted
    with pytest.raises(ExitPlanError, match=r"exits.stop: rounds to no tick of MNQ"):
        check_plan(plan, MNQ, D(25000))
    check_plan(plan, MNQ, D(250000))  # 0.25 points: one tick


# --- allotment --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qtys", "open_qty", "filled", "expected"),
    [
        ((1, 1), 2, (False, False, False), (1, 1, 0)),
        ((1, 1), 5, (False, False, False), (1, 1, 3)),
        ((1, 1), 1, (False, False, False), (1, 0, 0)),
        ((1, 1), 1, (True, False, False), (0, 1, 0)),
        ((1, 1), 4, (True, False, False), (0, 1, 3)),  # added later: to the last leg
        ((2, 2), 3, (False, False, False), (2, 1, 0)),
        ((2, 2), 3, (True, True, False), (0, 0, 3)),
    ],
)
def test_allotment_of_the_open_quantity_to_the_legs(qtys, open_qty, filled, expected):
    distances = [{"ticks": 4 * (i + 1)} for i in range(3)]
    plan = parse_exit_plan(
        {
            "targets": [{**d, "qty": q} for d, q in zip(distances[:2], qtys, strict=True)]
            + [distances[2]]
        }
    )
    assert allot(plan, D(open_qty), filled) == tuple(D(x) for x in expected)


# --- properties -------------------------------------------------------------------------------

SPECS = [contract_spec(s) for s in ("MNQ", "ZN", "CL", "AAPL")]


# A path: ("tick", offset in ticks from 1000 ticks) or ("add", offset, qty) — a DCA entry.
paths = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(-30, 30), st.just(0)),
        st.tuples(st.just("add"), st.integers(-20, 20), st.integers(1, 2)),
    ),
    max_size=40,
)


def replay(plan, spec, side, qty, path):
    """(stop, average, position, fills) at the start and after each step of `path`."""
    position = opened(side, qty, str(1000 * spec.tick_size), spec)
    state = start_plan(plan, position, spec)
    position = with_plan_levels(position, state)
    entry_side = "buy" if side == "long" else "sell"
    fills = [Fill("entry", entry_side, D(qty), 1000 * spec.tick_size)]
    trail = [(state.stop, state.avg, position, tuple(fills))]
    for ms, (kind, offset, amount) in enumerate(path, start=1):
        price = (1000 + offset) * spec.tick_size
        if kind == "add":
            sig = SignalInput("s", spec.root, entry_side, price, D(amount), received_ms=ms)
            outcome = apply_signal(position, sig, RecorderSettings(), spec)
            position, fills = outcome.open_position, fills + list(outcome.changes[-1].fills)
        else:
            step = step_plan(state, plan, position, price, ms, spec)
            state, position = step.state, step.position
            fills += step.fills
        trail.append((state.stop, state.avg, position, tuple(fills)))
        if position.status != "open":
            break
    return trail


sides = st.sampled_from(["long", "short"])


@settings(max_examples=300, deadline=None)
@given(plan=plans(), spec=st.sampled_from(SPECS), side=sides, qty=st.integers(1, 5), path=paths)
def test_the_stop_never_loosens_between_average_changes(plan, spec, side, qty, path):
    steps = replay(plan, spec, side, qty, path)
    for (stop, avg, _, _), (next_stop, next_avg, pos, _) in pairwise(steps):
        if avg != next_avg or stop is None or pos.status != "open":
            continue
        assert next_stop is not None
        assert next_stop >= stop if side == "long" else next_stop <= stop


@settings(max_examples=300, deadline=None)
@given(plan=plans(), spec=st.sampled_from(SPECS), side=sides, qty=st.integers(1, 5), path=paths)
def test_the_exits_never_exceed_the_position_and_realize_exactly_its_fills(
    plan, spec, side, qty, path
):
    for _, _, position, fills in replay(plan, spec, side, qty, path):
        entered = sum(f.quantity for f in fills if f.kind == "entry")
        exited = sum(f.quantity for f in fills if f.kind != "entry")
        assert position.realized_pnl == sum(f.realized_pnl for f in fills)
        assert all(f.quantity > 0 for f in fills)
        if position.status == "open":
            assert 0 < exited + position.quantity == entered
        else:
            cash = sum(f.price * f.quantity * (1 if f.side == "sell" else -1) for f in fills)
            assert exited == entered and position.realized_pnl == cash * spec.point_value


@settings(max_examples=150, deadline=None)
@given(plan=plans(), spec=st.sampled_from(SPECS), side=sides, qty=st.integers(1, 5), path=paths)
def test_replaying_the_same_ticks_gives_the_same_result(plan, spec, side, qty, path):
    assert replay(plan, spec, side, qty, path) == replay(plan, spec, side, qty, path)


@settings(max_examples=300, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    tp=st.none() | st.integers(1, 80),
    sl=st.none() | st.integers(1, 80),
    side=sides,
    qty=st.integers(1, 3),
    path=paths,
)
def test_the_one_leg_form_exits_exactly_as_the_tick_rules(spec, tp, sl, side, qty, path):
    recorder = RecorderSettings(tp_ticks=tp, sl_ticks=sl)
    plan = ExitPlan.from_ticks(tp, sl)
    action = "buy" if side == "long" else "sell"
    entry = SignalInput("s", spec.root, action, 1000 * spec.tick_size, D(qty), received_ms=0)
    today = mine = apply_signal(None, entry, recorder, spec).open_position
    state = start_plan(plan, mine, spec)
    run_start, run = today, []  # the ticks since the last entry, for apply_tick_run
    for ms, (kind, offset, amount) in enumerate(path, start=1):
        price = (1000 + offset) * spec.tick_size
        if kind == "add":
            sig = SignalInput("s", spec.root, action, price, D(amount), received_ms=ms)
            today = apply_signal(today, sig, recorder, spec).open_position
            mine = apply_signal(mine, sig, recorder, spec).open_position
            run_start, run = today, []
            continue
        outcome = apply_tick(today, price, ms, spec)
        step = step_plan(state, plan, mine, price, ms, spec)
        state, mine, today = step.state, step.position, outcome.position
        assert mine == today and step.unrealized_pnl == outcome.unrealized_pnl
        assert step.fills == (outcome.exit.fills if outcome.exit else ())
        run.append((price, ms, False))
        whole = apply_tick_run(run_start, TickRun.of(run), spec)
        assert whole is not None and whole.position == today
        if today.status != "open":
            break
