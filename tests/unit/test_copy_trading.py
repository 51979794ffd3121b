"""The arithmetic of copy trading in step (docs/contract.md §4d): what a follower should hold, the
orders that take it there, how its roots line up with the leader's, and copy cycles."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from libs.common.account_figures import BrokerFigures, Held
from libs.common.copy_in_step import Step, compare, steps_to
from libs.common.copy_trading import FollowerRule, after_pending, copy_cycle, unknown_roots
from libs.common.orders import new_intent


def figures(*held: tuple[str, str, int]) -> BrokerFigures:
    return BrokerFigures(
        tuple(Held(contract, root, D(net), D("21000")) for contract, root, net in held),
        D(0),
        D(0),
        0,
    )


def test_expected_net_is_scaled_half_up_inverted_and_capped():
    assert FollowerRule(D("0.5")).expected(D(3)) == 2  # 1.5 rounds half up
    assert FollowerRule(D("0.5")).expected(D(-3)) == -2
    assert FollowerRule(D(2), inverted=True).expected(D(3)) == -6
    assert FollowerRule(D(2), inverted=True, max_contracts=4).expected(D(3)) == -4
    assert FollowerRule(D(1), max_contracts=2).expected(D(1)) == 1
    assert FollowerRule(D(1), inverted=True).expected(D(0)) == 0


def test_a_mapped_root_trades_its_front_month_and_others_keep_the_leaders_ticker():
    rule = FollowerRule(symbol_map={"NQ": "MNQ"})
    assert (rule.root("NQ"), rule.ticker("NQ", "NQZ6")) == ("MNQ", "MNQ1!")
    assert (rule.root("ES"), rule.ticker("ES", "ES1!")) == ("ES", "ES1!")
    assert rule.side("buy") == "buy" and FollowerRule(inverted=True).side("buy") == "sell"


def test_steps_to_every_kind_of_difference():
    assert steps_to(D(2), D(2)) == []
    assert steps_to(D(0), D(2)) == [Step("entry", "buy", D(2))]
    assert steps_to(D(1), D(3)) == [Step("add", "buy", D(2))]
    assert steps_to(D(-3), D(-2)) == [Step("reduce", "buy", D(1))]
    assert steps_to(D(-3), D(0)) == [Step("close", "buy", D(0))]
    assert steps_to(D(2), D(-1)) == [Step("close", "sell", D(0)), Step("entry", "sell", D(1))]
    assert [s.priority for s in steps_to(D(2), D(-1))] == ["exit", "entry"]


def apply(net: D, steps: list[Step]) -> D:
    for step in steps:
        if step.kind == "close":
            net = D(0)
        else:
            net += step.quantity if step.side == "buy" else -step.quantity
    return net


@given(st.integers(-50, 50), st.integers(-50, 50))
def test_the_steps_always_end_at_the_expected_net(actual, expected):
    steps = steps_to(D(actual), D(expected))
    assert apply(D(actual), steps) == expected
    assert all(s.quantity > 0 for s in steps if s.kind != "close")


def test_compare_lines_up_mapped_roots_and_flags_what_the_leader_does_not_hold():
    rule = FollowerRule(D(1), symbol_map={"NQ": "MNQ"}, max_contracts=2)
    leader = figures(("NQZ6", "NQ", 3))
    follower = figures(("ESZ6", "ES", 1))

    drifts = {d.root: d for d in compare(rule, leader, follower)}

    mnq, es = drifts["MNQ"], drifts["ES"]
    assert (mnq.leader_roots, mnq.expected, mnq.actual, mnq.contract) == (("NQ",), 2, 0, "MNQZ6")
    assert mnq.sentence() == "MNQ: holds none, should hold 2 long (the leader holds 3 long NQ)"
    assert (es.expected, es.actual, es.in_step) == (0, 1, False)
    assert set(drifts) == {"MNQ", "ES"}


def test_an_inverted_follower_in_step_is_in_step():
    rule = FollowerRule(D(1), inverted=True)
    [drift] = compare(rule, figures(("NQZ6", "NQ", 2)), figures(("NQZ6", "NQ", -2)))
    assert drift.in_step


def test_copy_cycles_are_found_at_any_depth():
    assert copy_cycle([(1, 2), (1, 3), (3, 4)]) is None
    assert copy_cycle([(1, 2), (2, 1)], first=2) == [2, 1, 2]
    assert copy_cycle([(1, 2), (2, 3), (3, 4), (4, 1)], first=4) == [4, 1, 2, 3, 4]


def test_unknown_roots_on_either_side_of_a_mapping():
    assert unknown_roots({"NQ": "MNQ", "ES": "MES"}) == []
    assert unknown_roots({"NQ": "XYZ", "ABC": "MES"}) == ["ABC", "XYZ"]


def test_queued_orders_count_toward_what_a_follower_will_hold():
    def order(kind: str, side: str, qty: int):
        return new_intent(
            user_id=1,
            subaccount_id=1,
            source="copy",
            kind=kind,
            side=side,
            symbol="MNQ",
            ticker="MNQ1!",
            quantity=D(qty),
            priority="entry",
        )

    assert after_pending(D(1), [order("entry", "buy", 2)]) == 3
    assert after_pending(D(1), [order("close", "sell", 0), order("entry", "sell", 1)]) == -1
    assert after_pending(D(2), [order("move_stop", "sell", 0), order("reduce", "sell", 1)]) == 1
