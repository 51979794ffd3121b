"""The one back-off every reconnecting client uses: doubling to a cap, jittered; the quota pause."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from libs.common.backoff import backoff_delay, capped_exponential, quota_pause


def test_the_delay_doubles_from_the_base_up_to_the_cap():
    assert [capped_exponential(n, 0.1, 0.5) for n in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert [capped_exponential(n, 0.5, 10.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_a_day_of_failed_attempts_still_waits_the_cap():
    # 2 ** 1100 as a float overflows: the count of failures must not end the reconnect loop
    assert capped_exponential(1_100, 1.0, 30.0) == 30.0
    assert 15.0 <= backoff_delay(10**6, 1.0, 30.0, random.Random(3)) <= 30.0


@given(attempt=st.integers(0, 200), seed=st.integers())
def test_jitter_keeps_the_delay_between_half_and_all_of_the_capped_value(attempt, seed):
    full = capped_exponential(attempt, 1.0, 60.0)
    assert full / 2 <= backoff_delay(attempt, 1.0, 60.0, random.Random(seed)) <= full


def test_clients_dropped_together_come_back_spread_out():
    rng = random.Random(7)
    delays = {round(backoff_delay(4, 1.0, 30.0, rng), 3) for _ in range(20)}
    assert len(delays) > 10


def test_the_quota_pause_is_the_long_pause_stretched_by_at_most_a_fifth():
    rng = random.Random(1)
    pauses = [quota_pause(300.0, rng) for _ in range(100)]
    assert all(300.0 <= p <= 360.0 for p in pauses) and max(pauses) > min(pauses)
