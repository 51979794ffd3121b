"""Orders a trader gets from a recorder's position changes (docs/contract.md §4)."""

from datetime import UTC, datetime, time
from decimal import Decimal as D

from libs.common.futures.instruments import contract_spec
from services.position_engine.intents import TraderRule, in_window, plan_intents
from services.position_engine.rules import RecorderSettings, SignalInput, apply_signal
from services.position_engine.ticks import apply_tick

MNQ = contract_spec("MNQ")
REC = RecorderSettings(tp_ticks=20, sl_ticks=40)
RULE = TraderRule(trader_id=1, subaccount_id=1)


def signal(action, price, qty=1, **kw):
    return SignalInput("s", "MNQ", action, D(str(price)), D(str(qty)), **kw)


def outcome(position, sig, rec=REC):
    return apply_signal(position, sig, rec, MNQ)


def kinds(planned):
    return [(p.kind, p.side, p.quantity) for p in planned]


def test_entry_with_tp_sl_is_one_bracket_order():
    out = outcome(None, signal("buy", 25640))
    planned, skipped = plan_intents(out.changes, RULE)
    assert kinds(planned) == [("entry", "buy", 1)]
    assert (planned[0].tp_price, planned[0].sl_price) == (D("25645"), D("25630"))
    assert planned[0].priority == "entry" and skipped == []


def test_add_sends_the_difference_and_protection_for_the_new_size():
    first = outcome(None, signal("buy", 25640)).open_position
    out = outcome(first, signal("buy", 25630))
    [add], _ = plan_intents(out.changes, TraderRule(1, 1, multiplier=D(2)))
    assert (add.kind, add.side, add.quantity, add.position_quantity) == ("add", "buy", 2, 4)
    assert (add.tp_price, add.sl_price) == (D("25640"), D("25625"))


def test_reverse_is_a_liquidation_then_the_new_entry():
    first = outcome(None, signal("buy", 25640)).open_position
    out = outcome(first, signal("sell", 25650, qty=2))
    planned, _ = plan_intents(out.changes, RULE)
    assert kinds(planned) == [("close", "sell", 0), ("entry", "sell", 2)]
    assert [p.priority for p in planned] == ["exit", "entry"]


def test_reduce_from_a_pine_target_sells_the_part_closed():
    first = outcome(None, SignalInput("s", "MNQ", None, D(100), None, D(3), "long")).open_position
    out = outcome(first, SignalInput("s", "MNQ", None, D(101), None, D(1), "long"))
    [reduce], _ = plan_intents(out.changes, RULE)
    assert (reduce.kind, reduce.side, reduce.quantity, reduce.position_quantity) == (
        "reduce",
        "sell",
        2,
        1,
    )


def test_recorder_tp_or_sl_exit_sends_nothing():
    position = outcome(None, signal("buy", 25640)).open_position
    hit = apply_tick(position, D("25650"), 10**12, MNQ)
    assert plan_intents((hit.exit,), RULE) == ([], [])


def test_multiplier_rounds_to_whole_contracts_and_may_skip():
    out = outcome(None, signal("buy", 25640, qty=1))
    planned, _ = plan_intents(out.changes, TraderRule(1, 1, multiplier=D("2.5")))
    assert planned[0].quantity == 3  # 2.5 rounds half up
    planned, skipped = plan_intents(out.changes, TraderRule(1, 1, multiplier=D("0.4")))
    assert planned == [] and "rounds to no whole contract" in skipped[0]


def test_max_contracts_caps_entries_and_adds():
    rule = TraderRule(1, 1, max_contracts=2)
    first = outcome(None, signal("buy", 25640, qty=3))
    [entry], _ = plan_intents(first.changes, rule)
    assert entry.quantity == 2
    more = outcome(first.open_position, signal("buy", 25630))
    planned, skipped = plan_intents(more.changes, rule)
    assert planned == [] and "maximum of 2" in skipped[0]


def test_outside_the_window_entries_are_skipped_but_exits_go_out():
    first = outcome(None, signal("buy", 25640)).open_position
    out = outcome(first, signal("sell", 25650))
    planned, skipped = plan_intents(out.changes, RULE, entries_allowed=False)
    assert kinds(planned) == [("close", "sell", 0)]
    assert "entries are off" in skipped[0]


def test_trading_window_in_its_time_zone_and_over_midnight():
    day = TraderRule(1, 1, window_start=time(9, 30), window_end=time(16, 0))
    assert in_window(day, datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # 10:00 in New York
    assert not in_window(day, datetime(2026, 11, 24, 22, 0, tzinfo=UTC))  # 17:00
    night = TraderRule(1, 1, window_start=time(18, 0), window_end=time(2, 0))
    assert in_window(night, datetime(2026, 11, 25, 4, 0, tzinfo=UTC))  # 23:00
    assert not in_window(night, datetime(2026, 11, 24, 15, 0, tzinfo=UTC))


# --- a subaccount shared with other traders (§4b) ----------------------------------------------


def test_a_close_on_a_shared_subaccount_sells_exactly_the_traders_contracts():
    first = outcome(None, signal("buy", 25640, qty=3)).open_position
    out = outcome(first, SignalInput("s", "MNQ", "close", D(25650), None))
    alone, _ = plan_intents(out.changes, TraderRule(1, 1, multiplier=D(2)))
    shared, _ = plan_intents(out.changes, TraderRule(1, 1, multiplier=D(2)), shared=True)
    assert kinds(alone) == [("close", "sell", 0)]  # the liquidation: nobody else is there
    assert kinds(shared) == [("reduce", "sell", 6)]  # only its own 3 × 2, brackets cancelled
    assert shared[0].position_quantity == 0 and shared[0].priority == "exit"


def test_a_reverse_on_a_shared_subaccount_is_its_own_exit_then_the_entry():
    first = outcome(None, signal("sell", 25640, qty=2)).open_position
    out = outcome(first, signal("buy", 25630, qty=1))
    planned, _ = plan_intents(out.changes, TraderRule(1, 1, max_contracts=1), shared=True)
    assert kinds(planned) == [("reduce", "buy", 1), ("entry", "buy", 1)]  # capped at 1 both ways
