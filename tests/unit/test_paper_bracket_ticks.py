"""The paper broker's resting orders against ticks: only ticks that make a new high or low are
checked, and target legs fill one by one at their own levels, the stop closing whatever is left."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from libs.common.storage.models import PaperPosition
from services.executor.paper import extremes_in_order, fill_book

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


def long_mnq(qty: str = "4", avg: str = "25000", **brackets) -> PaperPosition:
    return PaperPosition(
        subaccount_id=1,
        contract="MNQZ6",
        symbol="MNQ",
        net_qty=Decimal(qty),
        avg_price=Decimal(avg),
        realized_pnl=Decimal(0),
        tp_price=brackets.get("tp_price"),
        sl_price=brackets.get("sl_price"),
        targets=brackets.get("targets"),
    )


def legs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"price": p, "qty": q} for p, q in pairs]


def fills_of(book: PaperPosition, *prices: str) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [
        (f.reason, f.level, f.quantity, f.net_qty)
        for price in prices
        for f in fill_book(book, Decimal(price))
    ]


def three_legs() -> PaperPosition:
    return long_mnq(
        sl_price=Decimal("24990"),
        targets=legs(("25005", "1"), ("25010", "1"), ("25020", "2")),
    )


def test_legs_one_one_rest_fill_one_by_one_at_their_own_levels():
    book = three_legs()

    got = fills_of(book, "25004.75", "25005", "25012", "25019.75", "25020.5")

    assert got == [
        ("tp", Decimal("25005"), 1, 3),
        ("tp", Decimal("25010"), 1, 2),
        ("tp", Decimal("25020"), 2, 0),
    ]
    # 5 + 10 + 2 × 20 points at $2 a point
    assert book.realized_pnl == Decimal("110.00")
    assert (book.targets, book.tp_price, book.sl_price, book.avg_price) == (None, None, None, None)


def test_a_tick_through_two_legs_fills_both_at_their_own_levels():
    book = three_legs()

    got = fills_of(book, "25013")

    assert got == [("tp", Decimal("25005"), 1, 3), ("tp", Decimal("25010"), 1, 2)]
    assert book.realized_pnl == Decimal("30")  # (5 + 10) × $2, not 2 × 13 × $2
    assert book.targets == legs(("25020", "2")) and book.sl_price == Decimal("24990")


def test_the_stop_after_a_partial_fill_closes_the_rest_at_the_stop():
    book = three_legs()

    got = fills_of(book, "25005.25", "24989")

    assert got == [("tp", Decimal("25005"), 1, 3), ("sl", Decimal("24990"), 3, 0)]
    assert book.realized_pnl == Decimal("10") - Decimal("60")  # +5 × $2 then 3 × −10 × $2
    assert (book.net_qty, book.targets, book.sl_price) == (0, None, None)


def test_a_moved_stop_fills_at_the_new_level():
    book = three_legs()
    fills_of(book, "25005")
    book.sl_price = Decimal("25000.25")  # what a move_stop ticket sets: break-even plus a tick

    got = fills_of(book, "25003", "24999")

    assert got == [("sl", Decimal("25000.25"), 3, 0)]
    assert book.realized_pnl == Decimal("11.50")  # $10 + 3 × 0.25 × $2


def test_a_short_book_fills_legs_below_and_its_stop_above():
    book = long_mnq(
        qty="-3",
        sl_price=Decimal("25010"),
        targets=legs(("24995.25", "1"), ("24990", "2")),
    )

    got = fills_of(book, "24995.5", "24995.25", "25009.75", "25010")

    assert got == [("tp", Decimal("24995.25"), 1, -2), ("sl", Decimal("25010"), 2, 0)]
    assert book.realized_pnl == Decimal("9.50") - Decimal("40")  # 4.75 × $2, 2 × −10 × $2


def test_a_single_target_book_behaves_as_before():
    book = long_mnq(qty="2", tp_price=Decimal("25005"), sl_price=Decimal("24990"))

    assert fills_of(book, "25004.75") == []
    assert fills_of(book, "25006") == [("tp", Decimal("25005"), 2, 0)]
    assert book.realized_pnl == Decimal("20") and (book.tp_price, book.sl_price) == (None, None)


def test_extremes_still_fill_legs_as_tick_by_tick():
    ticks = ["25001", "25006", "25003", "25005.5", "25011", "24995", "25010", "24989"]
    one_by_one, batched = three_legs(), three_legs()

    every = fills_of(one_by_one, *ticks)
    kept = fills_of(
        batched, *(p for _, p in extremes_in_order([("MNQ", Decimal(t)) for t in ticks]))
    )

    assert (
        every
        == kept
        == [
            ("tp", Decimal("25005"), 1, 3),
            ("tp", Decimal("25010"), 1, 2),
            ("sl", Decimal("24990"), 2, 0),
        ]
    )
    assert one_by_one.realized_pnl == batched.realized_pnl == Decimal("-10")
