"""The limiter's arithmetic on plain values: sliding windows, pauses, exit reserve, background
share."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.executor.limiter import (
    CAPTCHA_PAUSE_S,
    LOCKOUT_PAUSE_S,
    Limits,
    Logs,
    Penalty,
    decide,
    penalty_for,
)

MINUTE = Limits()  # 60/min, 4000/h, 5 kept for exits, 10 % for background
EMPTY = Logs([], [], [])


@dataclass
class Broker:
    """What the Redis script keeps, as plain lists: every grant, in time order."""

    limits: Limits
    grants: list[tuple[int, str]] = field(default_factory=list)

    def logs(self) -> Logs:
        times = [t for t, _ in self.grants]
        return Logs(times, times, [t for t, p in self.grants if p == "background"])

    def request(self, now_ms: int, priority: str, paused_until_ms: int = 0):
        decision = decide(now_ms, self.logs(), priority, self.limits, paused_until_ms, "p-ticket")
        if decision.granted:
            self.grants.append((now_ms, priority))
        return decision


def in_window(times: list[int], end_ms: int, window_ms: int) -> int:
    return sum(1 for t in times if end_ms - window_ms < t <= end_ms)


@st.composite
def limits(draw) -> Limits:
    per_minute = draw(st.integers(1, 12))
    per_hour = draw(st.integers(per_minute, 40))
    minute_ms = draw(st.integers(1, 50))
    return Limits(
        per_minute=per_minute,
        per_hour=per_hour,
        exit_reserve=draw(st.integers(0, per_minute - 1)),
        background_share=draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0])),
        minute_ms=minute_ms,
        hour_ms=draw(st.integers(minute_ms, minute_ms * 8)),
    )


priorities = st.sampled_from(["exit", "entry", "background"])
# Mostly close together, so windows fill up and the reserve and the waits come into play.
gaps = st.one_of(st.integers(0, 2), st.integers(0, 15))
requests = st.lists(st.tuples(gaps, priorities), max_size=120)


def replay(limits: Limits, steps) -> tuple[Broker, int]:
    broker, now = Broker(limits), 0
    for dt, priority in steps:
        now += dt
        broker.request(now, priority)
    return broker, now


# --- examples ------------------------------------------------------------------------------


def test_an_empty_budget_grants_every_priority():
    for priority in ("exit", "entry", "background"):
        assert decide(1_000, EMPTY, priority, MINUTE).granted


def test_a_full_minute_waits_until_the_oldest_request_leaves_the_window():
    times = list(range(10_000, 10_060))  # 60 requests, one per ms
    decision = decide(30_000, Logs(times, times, []), "exit", MINUTE)
    assert (decision.granted, decision.wait_ms, decision.reason) == (False, 40_000, "minute")
    assert decide(70_000, Logs(times, times, []), "exit", MINUTE).granted


def test_entries_leave_the_last_five_slots_of_the_minute_to_exits():
    times = list(range(55))
    logs = Logs(times, times, [])
    entry = decide(100, logs, "entry", MINUTE)
    assert (entry.granted, entry.reason, entry.wait_ms) == (False, "minute", 60_000 - 100)
    assert decide(100, logs, "exit", MINUTE).granted


def test_the_hour_budget_binds_when_the_minute_is_free():
    hour = list(range(0, 4000 * 500, 500))  # 4000 requests spread over 2 000 s
    decision = decide(hour[-1] + 61_000, Logs(hour, hour, []), "exit", MINUTE)
    assert (decision.granted, decision.reason) == (False, "hour")
    assert decision.wait_ms == 3_600_000 - 61_000 - (hour[-1] - hour[0])


def test_background_uses_at_most_its_share_of_the_minute():
    assert MINUTE.background_cap == 6
    background = [100, 200, 300, 400, 500, 600]
    logs = Logs(background, background, background)
    decision = decide(1_000, logs, "background", MINUTE)
    assert (decision.granted, decision.reason, decision.wait_ms) == (False, "background", 59_100)
    assert decide(1_000, logs, "entry", MINUTE).granted


def test_a_tiny_budget_still_gives_background_one_slot():
    assert Limits(per_minute=5, exit_reserve=1).background_cap == 1


def test_a_pause_refuses_even_exits_and_names_its_reason():
    decision = decide(1_000, EMPTY, "exit", MINUTE, paused_until_ms=13_000, pause_reason="http-429")
    assert (decision.granted, decision.wait_ms, decision.reason) == (
        False,
        12_000,
        "paused:http-429",
    )
    assert decide(13_000, EMPTY, "exit", MINUTE, paused_until_ms=13_000).granted


@pytest.mark.parametrize(
    "fields",
    [
        {"exit_reserve": 60},
        {"exit_reserve": -1},
        {"background_share": 0},
        {"background_share": 1.5},
        {"minute_ms": 0},
        {"hour_ms": 1_000},
    ],
)
def test_limits_that_would_starve_a_priority_are_refused(fields):
    with pytest.raises(ValueError):
        Limits(**fields)


def test_an_unknown_priority_is_refused():
    with pytest.raises(ValueError):
        decide(0, EMPTY, "urgent", MINUTE)


def test_broker_answers_map_to_pauses():
    assert penalty_for(200, {"id": 7}) is None
    assert penalty_for(200, None) is None
    assert penalty_for(429, None) == Penalty(LOCKOUT_PAUSE_S, "http-429", alert=True)
    assert penalty_for(423, None) == Penalty(LOCKOUT_PAUSE_S, "http-423", alert=True)
    assert penalty_for(200, {"p-ticket": "zE1o", "p-time": 12, "p-captcha": False}) == Penalty(
        12, "p-ticket", alert=False, ticket="zE1o"
    )
    assert penalty_for(200, {"p-ticket": "zE1o", "p-time": 12, "p-captcha": True}) == Penalty(
        CAPTCHA_PAUSE_S, "p-captcha", alert=True
    )


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(limits=limits(), steps=requests)
def test_granted_requests_never_exceed_any_window(limits, steps):
    broker, _ = replay(limits, steps)
    times = [t for t, _ in broker.grants]
    background = [t for t, p in broker.grants if p == "background"]
    # A window's count only grows at a grant, so checking the windows ending at grants suffices.
    for t, _ in broker.grants:
        assert in_window(times, t, limits.minute_ms) <= limits.per_minute
        assert in_window(times, t, limits.hour_ms) <= limits.per_hour
        assert in_window(background, t, limits.minute_ms) <= limits.background_cap
    # At the moment of its grant (later grants in the same ms not yet made), no entry or
    # background request ate into the exit reserve.
    for i, (t, priority) in enumerate(broker.grants):
        if priority != "exit":
            assert in_window(times[: i + 1], t, limits.minute_ms) <= limits.minute_cap("entry")
            assert in_window(times[: i + 1], t, limits.hour_ms) <= limits.hour_cap("entry")


@settings(max_examples=300, deadline=None)
@given(limits=limits(), steps=requests, later=st.integers(0, 100))
def test_exits_are_granted_whenever_entries_are_and_entries_whenever_background_is(
    limits, steps, later
):
    broker, now = replay(limits, steps)
    logs, now = broker.logs(), now + later
    if decide(now, logs, "background", limits).granted:
        assert decide(now, logs, "entry", limits).granted
    if decide(now, logs, "entry", limits).granted:
        assert decide(now, logs, "exit", limits).granted


@settings(max_examples=300, deadline=None)
@given(limits=limits(), steps=requests, later=st.integers(0, 3))
def test_an_exit_gets_the_reserve_that_entries_may_not_touch(limits, steps, later):
    broker, now = replay(limits, steps)
    logs, now = broker.logs(), now + later
    minute = in_window(list(logs.minute), now, limits.minute_ms)
    hour = in_window(list(logs.hour), now, limits.hour_ms)
    if limits.minute_cap("entry") <= minute < limits.per_minute and hour < limits.per_hour:
        assert not decide(now, logs, "entry", limits).granted
        assert decide(now, logs, "exit", limits).granted


@settings(max_examples=300, deadline=None)
@given(limits=limits(), steps=requests, priority=priorities, pause=st.integers(0, 200))
def test_the_wait_is_exactly_the_time_until_a_retry_succeeds(limits, steps, priority, pause):
    broker, now = replay(limits, steps)
    paused_until = now + pause
    decision = decide(now, broker.logs(), priority, limits, paused_until)
    if decision.granted:
        return
    assert decision.wait_ms > 0
    retry_at = now + decision.wait_ms
    assert decide(retry_at, broker.logs(), priority, limits, paused_until).granted
    assert not decide(retry_at - 1, broker.logs(), priority, limits, paused_until).granted


@settings(max_examples=200, deadline=None)
@given(limits=limits(), steps=requests, priority=priorities, pause=st.integers(1, 10_000))
def test_nothing_is_granted_while_paused(limits, steps, priority, pause):
    broker, now = replay(limits, steps)
    decision = decide(now, broker.logs(), priority, limits, now + pause, "p-captcha")
    assert not decision.granted
    assert decision.wait_ms >= pause
    if decision.wait_ms == pause:
        assert decision.reason == "paused:p-captcha"
