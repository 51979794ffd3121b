"""The paper broker's working orders against ticks: only ticks that make a new high or low are
checked, each order fills at its own level, a fill cancels its OCO siblings only, traders sharing a
book keep their own orders, and a resting limit entry arms its protection when it fills."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from libs.common.storage.models import PaperOrder, PaperPosition
from services.executor.paper_orders import (
    Extremes,
    OrderFill,
    Protection,
    arm,
    extremes_in_order,
    fill_at,
    resting_entry,
    working,
)

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)

prices = st.lists(
    st.integers(-40, 40).map(lambda t: Decimal("25640") + Decimal("0.25") * t),
    min_size=1,
    max_size=60,
)


def first_reaching(
    ticks: list[tuple[str, Decimal]], level: Decimal, above: bool
) -> tuple[str, Decimal] | None:
    return next(((s, p) for s, p in ticks if (p >= level if above else p <= level)), None)


@given(prices, prices, st.integers(-45, 45), st.booleans())
def test_any_level_is_first_reached_by_a_kept_tick_in_the_same_order(mnq, mes, level_ticks, above):
    # Given two symbols' ticks interleaved, as on the tick stream
    ticks = [("MNQ", p) for p in mnq] + [("MES", p) for p in mes]
    ticks = [t for pair in zip(ticks[::2], ticks[1::2], strict=False) for t in pair] + ticks[
        len(ticks) // 2 * 2 :
    ]
    level = Decimal("25640") + Decimal("0.25") * level_ticks

    kept = extremes_in_order(ticks)

    # Then for each symbol a level (TP above, SL below) is first reached at the same tick
    for symbol in ("MNQ", "MES"):
        mine = [t for t in ticks if t[0] == symbol]
        kept_mine = [t for t in kept if t[0] == symbol]
        assert first_reaching(kept_mine, level, above) == first_reaching(mine, level, above)
    # And the kept ticks are a subsequence of the batch: stream order kept
    remaining = iter(ticks)
    assert all(any(t == k for t in remaining) for k in kept)


def test_a_flat_run_of_ticks_is_checked_once():
    flat = [("MNQ", Decimal("25640"))] * 50
    assert extremes_in_order(flat) == [("MNQ", Decimal("25640"))]


def a_book(qty: str = "0", avg: str | None = None) -> PaperPosition:
    return PaperPosition(
        subaccount_id=1,
        contract="MNQZ6",
        symbol="MNQ",
        net_qty=Decimal(qty),
        avg_price=None if avg is None else Decimal(avg),
        realized_pnl=Decimal(0),
    )


def protection(
    kind: str = "entry",
    side: str = "buy",
    qty: str = "4",
    trader: int | None = 7,
    tp: str | None = None,
    sl: str | None = None,
    legs: tuple[tuple[str, str], ...] = (),
    position_quantity: str | None = None,
) -> Protection:
    return Protection(
        kind=kind,
        side=side,
        quantity=Decimal(qty),
        trader_id=trader,
        intent_id=uuid.uuid4(),
        tp_price=None if tp is None else Decimal(tp),
        sl_price=None if sl is None else Decimal(sl),
        legs=tuple((Decimal(p), Decimal(q)) for p, q in legs),
        position_quantity=None if position_quantity is None else Decimal(position_quantity),
    )


def no_protection(order: PaperOrder) -> Protection | None:
    return None


class Desk:
    """One book with its working orders, as the paper broker holds them."""

    def __init__(self, qty: str = "0", avg: str | None = None):
        self.book = a_book(qty, avg)
        self.orders: list[PaperOrder] = []
        self.protections: dict[uuid.UUID | None, Protection] = {}

    def arm(self, p: Protection) -> list[PaperOrder]:
        return arm(self.book, self.orders, p, NOW)

    def rest(self, p: Protection, limit: str) -> PaperOrder:
        order = resting_entry(self.book, p, Decimal(limit), NOW)
        self.orders.append(order)
        self.protections[p.intent_id] = p
        return order

    def tick(self, *prices: str) -> list[OrderFill]:
        return [
            fill
            for price in prices
            for fill in fill_at(
                self.book,
                self.orders,
                Decimal(price),
                lambda o: self.protections.get(o.intent_id),
                NOW,
            )
        ]

    def batch(self, *prices: str) -> list[OrderFill]:
        """The watcher's way: only new extremes, counted again once new orders are placed."""
        seen, fills = Extremes(), []
        for price in map(Decimal, prices):
            if seen.is_new("MNQ", price):
                got = self.tick(str(price))
                fills += got
                if any(f.placed for f in got):
                    seen.restart("MNQ", price)
        return fills

    def levels(self, trader: int | None = 7) -> list[tuple[str, Decimal, Decimal]]:
        return [(o.role, o.price, o.quantity) for o in working(self.orders, trader_id=trader)]


def seen(fills: list[OrderFill]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [(f.reason, f.price, f.quantity, f.net_qty) for f in fills]


def three_legs() -> Desk:
    desk = Desk("4", "25000")
    desk.arm(protection(sl="24990", legs=(("25005", "1"), ("25010", "1"), ("25020", "2"))))
    return desk


def test_legs_rest_as_one_oco_group_each_a_limit_and_a_stop_of_the_same_size():
    desk = three_legs()

    assert desk.levels() == [
        ("target", Decimal("25005"), 1),
        ("stop", Decimal("24990"), 1),
        ("target", Decimal("25010"), 1),
        ("stop", Decimal("24990"), 1),
        ("target", Decimal("25020"), 2),
        ("stop", Decimal("24990"), 2),
    ]
    assert len({o.oco_group for o in desk.orders}) == 3
    assert {(o.side, o.trader_id) for o in desk.orders} == {("sell", 7)}


def test_legs_fill_one_by_one_at_their_own_levels_and_cancel_their_own_stop():
    desk = three_legs()

    got = desk.tick("25004.75", "25005")

    assert seen(got) == [("tp", Decimal("25005"), 1, 3)]
    # the first leg's stop is cancelled with it; the other legs keep theirs
    assert desk.levels() == [
        ("target", Decimal("25010"), 1),
        ("stop", Decimal("24990"), 1),
        ("target", Decimal("25020"), 2),
        ("stop", Decimal("24990"), 2),
    ]
    assert [o.status for o in desk.orders[:2]] == ["filled", "cancelled"]

    got = desk.tick("25012", "25019.75", "25020.5")

    assert seen(got) == [("tp", Decimal("25010"), 1, 2), ("tp", Decimal("25020"), 2, 0)]
    assert desk.book.realized_pnl == Decimal("110.00")  # 5 + 10 + 2 × 20 points at $2 a point
    assert desk.levels() == [] and desk.book.avg_price is None


def test_a_tick_through_two_legs_fills_the_nearest_first_each_at_its_own_level():
    desk = three_legs()

    got = desk.tick("25013")

    assert seen(got) == [("tp", Decimal("25005"), 1, 3), ("tp", Decimal("25010"), 1, 2)]
    assert desk.book.realized_pnl == Decimal("30")  # (5 + 10) × $2, not 2 × 13 × $2
    assert [f.realized_pnl for f in got] == [Decimal("10"), Decimal("20")]


def test_the_stop_after_a_partial_fill_closes_the_rest_at_the_stop():
    desk = three_legs()

    got = desk.tick("25005.25", "24989")

    assert seen(got) == [
        ("tp", Decimal("25005"), 1, 3),
        ("sl", Decimal("24990"), 1, 2),
        ("sl", Decimal("24990"), 2, 0),
    ]
    assert desk.book.realized_pnl == Decimal("10") - Decimal("60")  # +5 × $2 then 3 × −10 × $2
    assert desk.levels() == []


def test_a_moved_stop_fills_at_the_new_level():
    desk = three_legs()
    desk.tick("25005")
    for stop in [o for o in working(desk.orders) if o.role == "stop"]:
        stop.price = Decimal("25000.25")  # what a move_stop sets: break-even plus a tick

    got = desk.tick("25003", "24999")

    assert [(f.reason, f.price) for f in got] == [("sl", Decimal("25000.25"))] * 2
    assert desk.book.net_qty == 0
    assert desk.book.realized_pnl == Decimal("11.50")  # $10 + 3 × 0.25 × $2


def test_a_short_book_fills_legs_below_and_its_stop_above():
    desk = Desk("-3", "25000")
    desk.arm(protection(side="sell", qty="3", sl="25010", legs=(("24995.25", "1"), ("24990", "2"))))

    got = desk.tick("24995.5", "24995.25", "25009.75", "25010")

    assert seen(got) == [("tp", Decimal("24995.25"), 1, -2), ("sl", Decimal("25010"), 2, 0)]
    assert desk.book.realized_pnl == Decimal("9.50") - Decimal("40")  # 4.75 × $2, 2 × −10 × $2


def test_a_single_target_and_stop_are_one_oco_pair():
    desk = Desk("2", "25000")
    desk.arm(protection(qty="2", tp="25005", sl="24990"))

    assert desk.tick("25004.75") == []
    assert seen(desk.tick("25006")) == [("tp", Decimal("25005"), 2, 0)]
    assert desk.book.realized_pnl == Decimal("20")
    assert [o.status for o in desk.orders] == ["filled", "cancelled"]


def test_pnl_is_exact_to_the_cent_for_mnq_at_two_dollars_a_point():
    desk = Desk("3", "25000.25")
    desk.arm(protection(qty="3", tp="25003.5", sl="24990"))

    [fill] = desk.tick("25003.75")

    assert fill.realized_pnl == Decimal("19.50")  # 3.25 points × 3 × $2
    assert str(round(desk.book.realized_pnl, 2)) == "19.50"


def test_two_traders_on_one_book_keep_their_own_orders():
    # Given trader 7 long 1 and trader 8 long 2 on the same contract of one subaccount
    desk = Desk("3", "25000")
    desk.arm(protection(qty="1", trader=7, tp="25005", sl="24990"))
    desk.arm(protection(qty="2", trader=8, tp="25010", sl="24980"))

    # When trader 7's target is reached
    got = desk.tick("25006")

    # Then only its order fills; trader 8's orders still protect its 2 contracts
    assert seen(got) == [("tp", Decimal("25005"), 1, 2)]
    assert desk.levels(7) == []
    assert desk.levels(8) == [("target", Decimal("25010"), 2), ("stop", Decimal("24980"), 2)]

    # When trader 8 reduces to 1 (its protection re-armed for 1), trader 7 adds 1 again
    desk.book.net_qty = Decimal(1)
    desk.arm(protection("reduce", "sell", "1", trader=8, tp="25012", position_quantity="1"))
    assert desk.levels(8) == [("target", Decimal("25012"), 1)]


def test_a_reduce_to_zero_cancels_only_that_traders_orders():
    desk = Desk("3", "25000")
    desk.arm(protection(qty="1", trader=7, tp="25005", sl="24990"))
    desk.arm(protection(qty="2", trader=8, tp="25010", sl="24980"))
    desk.book.net_qty = Decimal(2)  # trader 7 sold its 1

    assert desk.arm(protection("reduce", "sell", "1", trader=7, position_quantity="0")) == []

    assert desk.levels(7) == []
    assert desk.levels(8) == [("target", Decimal("25010"), 2), ("stop", Decimal("24980"), 2)]


def test_a_protective_fill_never_flips_the_book():
    # Given a stop for 2 where the book holds 1 (it was changed by hand)
    desk = Desk("2", "25000")
    desk.arm(protection(qty="2", sl="24990"))
    desk.book.net_qty = Decimal(1)

    [fill] = desk.tick("24985")

    assert (fill.quantity, fill.net_qty) == (1, 0)
    assert desk.book.net_qty == 0 and desk.levels() == []


def test_a_resting_limit_entry_fills_later_and_arms_its_bracket_then():
    desk = Desk()
    entry = desk.rest(protection(qty="2", tp="25005", sl="24990"), "24995")
    assert desk.levels() == [("entry", Decimal("24995"), 2)] and entry.side == "buy"

    assert desk.tick("25000", "24995.25") == []

    [filled] = desk.tick("24994")
    assert seen([filled]) == [("entry", Decimal("24995"), 2, 2)]
    assert desk.book.avg_price == Decimal("24995")
    assert [(o.role, o.price, o.quantity) for o in filled.placed] == [
        ("target", Decimal("25005"), 2),
        ("stop", Decimal("24990"), 2),
    ]

    assert seen(desk.tick("25005")) == [("tp", Decimal("25005"), 2, 0)]
    assert desk.book.realized_pnl == Decimal("40.00")  # 10 points × 2 × $2


def test_a_gap_through_a_resting_entry_and_its_stop_fills_both_at_their_levels():
    desk = Desk()
    desk.rest(protection(qty="1", tp="25005", sl="24990"), "24995")

    got = desk.tick("24989")

    assert seen(got) == [("entry", Decimal("24995"), 1, 1), ("sl", Decimal("24990"), 1, 0)]
    assert desk.book.realized_pnl == Decimal("-10")


def test_extremes_still_fill_legs_as_tick_by_tick():
    ticks = ["25001", "25006", "25003", "25005.5", "25011", "24995", "25010", "24989"]
    one_by_one, batched = three_legs(), three_legs()

    every = seen(one_by_one.tick(*ticks))
    kept = seen(batched.batch(*ticks))

    assert (
        every
        == kept
        == [
            ("tp", Decimal("25005"), 1, 3),
            ("tp", Decimal("25010"), 1, 2),
            ("sl", Decimal("24990"), 2, 0),
        ]
    )
    assert one_by_one.book.realized_pnl == batched.book.realized_pnl == Decimal("-10")


@given(st.lists(st.integers(-30, 30), min_size=1, max_size=40))
def test_a_batch_fills_as_tick_by_tick_even_when_an_entry_places_orders_midway(steps):
    # A resting entry whose bracket is placed inside the batch: the count of extremes restarts
    ticks = [str(Decimal("25000") + Decimal("0.25") * s) for s in steps]
    one_by_one, batched = Desk(), Desk()
    for desk in (one_by_one, batched):
        desk.rest(protection(qty="1", tp="25003", sl="24997"), "25000")

    assert seen(one_by_one.tick(*ticks)) == seen(batched.batch(*ticks))
    assert one_by_one.book.realized_pnl == batched.book.realized_pnl
