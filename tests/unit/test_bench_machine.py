"""The bench's "others used" figure: the share of the cores other processes used while a row
was measured, from counters that move in 10 ms ticks. Plain readings; no servers."""

from __future__ import annotations

from tools.bench.machine import MIN_WINDOW_S, OtherWork, Reading, others_share


def test_others_share_is_the_machines_busy_time_less_ours_over_all_cores() -> None:
    before, after = Reading(10.0, 100.0, 40.0), Reading(12.0, 103.0, 41.0)

    assert others_share(before, after, cpus=2) == 0.5  # (3 - 1) s of 2 s x 2 cores


def test_a_window_of_a_few_ticks_tells_no_share() -> None:
    # Two rows added back to back: 10 ms apart, the machine two ticks further, we none yet.
    # Read as a share that would be 100 % of 2 cores (and more with one tick more): rounding.
    before, after = Reading(10.0, 100.0, 40.0), Reading(10.01, 100.02, 40.0)

    assert others_share(before, after, cpus=2) is None


def test_a_short_call_leaves_the_window_open_for_the_next() -> None:
    readings = iter(
        [
            Reading(0.0, 0.0, 0.0),
            Reading(0.01, 0.02, 0.0),  # too soon: no share, the window stays open
            Reading(2.0, 2.0, 1.0),
            Reading(4.0, 4.0, 1.0),
        ]
    )
    work = OtherWork(read=lambda: next(readings), cpus=2)

    assert work.since_last() is None
    assert work.since_last() == 0.25  # (2 - 1) s of 2 s x 2 cores, from the first reading
    assert work.since_last() == 0.5  # from the third


def test_the_share_never_reads_above_all_cores_or_below_none() -> None:
    start = Reading(0.0, 0.0, 5.0)

    assert others_share(start, Reading(MIN_WINDOW_S, 1.2, 5.0), cpus=2) == 1.0
    assert others_share(start, Reading(MIN_WINDOW_S, 0.1, 5.5), cpus=2) == 0.0


def test_unknown_busy_time_tells_nothing() -> None:
    assert others_share(Reading(0.0, None, 0.0), Reading(5.0, None, 1.0), cpus=2) is None
