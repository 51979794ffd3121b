"""The paper broker checks its brackets only against the ticks that make a new high or low."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.executor.paper import extremes_in_order

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
