"""The broker limiter against real Redis: threads and processes share one budget per broker user.

Windows are shortened (a "minute" of 1 s, an "hour" of 60 s) so bursts finish in seconds.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from services.executor.limiter import BrokerLimiter, Penalty, SlotTimeout

FAST = {"minute_ms": 1_000, "hour_ms": 60_000}


@pytest.fixture
def make_limiter(settings, redis_client):
    def make(**options) -> BrokerLimiter:
        return BrokerLimiter(redis_client, settings.stream_prefix, **{**FAST, **options})

    return make


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def most_in_any_window(times: list[int], window_ms: int) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + window_ms) for i, t in enumerate(times))


def burst_worker(url, prefix, options, user, priority, count, ready, go, out) -> None:
    """One worker process: acquire `count` slots; report the first answer and the grant times."""
    limiter = BrokerLimiter(redis.Redis.from_url(url), prefix, **options)
    ready.wait()
    go.wait()
    first = limiter.try_acquire(user, priority)
    granted = [first.at_ms] if first.granted else []
    while len(granted) < count:
        granted.append(limiter.acquire_request_slot(user, priority, timeout_s=20).granted_at_ms)
    out.put((first.reason, granted))


def run_processes(settings, options, count, processes, before_go=lambda: None):
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Barrier(processes + 1), ctx.Event(), ctx.Queue()
    args = (
        settings.redis_url,
        settings.stream_prefix,
        options,
        "alice",
        "entry",
        count,
        ready,
        go,
        out,
    )
    workers = [ctx.Process(target=burst_worker, args=args) for _ in range(processes)]
    for worker in workers:
        worker.start()
    ready.wait(timeout=20)  # every process has imported and connected: the race starts together
    before_go()
    go.set()
    results = [out.get(timeout=25) for _ in workers]
    for worker in workers:
        worker.join(timeout=5)
        assert worker.exitcode == 0
    return results


def test_a_burst_from_eight_threads_never_exceeds_the_minute_budget(make_limiter):
    limiter = make_limiter(per_minute=20, exit_reserve=5)
    priorities = ["exit" if i % 2 else "entry" for i in range(150)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = list(pool.map(lambda p: limiter.acquire_request_slot("alice", p, 20), priorities))

    granted = [slot.granted_at_ms for slot in slots]
    # The promise is the ceiling; how full a window gets depends on how fast the waiting threads
    # come back, which on a loaded machine can leave a window one short.
    assert most_in_any_window(granted, 1_000) <= 20
    entries = [s.granted_at_ms for s in slots if s.priority == "entry"]
    assert most_in_any_window(entries, 1_000) <= 15


def test_four_processes_share_one_budget(settings, redis_client):
    options = {**FAST, "per_minute": 20, "exit_reserve": 0}

    results = run_processes(settings, options, count=20, processes=4)

    granted = [t for _, times in results for t in times]
    assert len(granted) == 80
    assert most_in_any_window(granted, 1_000) == 20


def test_a_pause_holds_every_process_until_it_ends(settings, redis_client):
    limiter = BrokerLimiter(redis_client, settings.stream_prefix, **FAST)
    ends = []

    def pause():
        ends.append(server_ms(redis_client) + 800)
        limiter.pause("alice", 0.8, "p-ticket")

    results = run_processes(settings, {**FAST}, count=2, processes=2, before_go=pause)

    assert [reason for reason, _ in results] == ["paused:p-ticket"] * 2
    assert min(t for _, times in results for t in times) >= ends[0]


def test_a_pause_holds_every_thread_and_every_priority_until_it_ends(make_limiter, redis_client):
    limiter = make_limiter()
    end_ms = server_ms(redis_client) + 600
    limiter.pause("alice", 0.6, "http-429")

    with ThreadPoolExecutor(max_workers=6) as pool:
        slots = list(
            pool.map(lambda p: limiter.acquire_request_slot("alice", p, 5), ["exit", "entry"] * 3)
        )

    assert min(slot.granted_at_ms for slot in slots) >= end_ms
    assert limiter.try_acquire("bob").granted  # other broker users are not paused


def test_a_pause_extends_but_never_shortens(make_limiter):
    limiter = make_limiter()

    limiter.pause("alice", 3600, "http-429")
    kept = limiter.pause("alice", 12, "p-ticket")

    assert kept.reason == "http-429" and kept.remaining_s > 3590
    assert limiter.pause("alice", 7200, "p-captcha").reason == "p-captcha"
    assert limiter.paused("alice").remaining_s > 7190
    assert limiter.paused("bob") is None


def test_a_penalty_pauses_and_is_counted(make_limiter):
    limiter = make_limiter()

    pause = limiter.apply_penalty("alice", Penalty(12, "p-ticket", alert=False, ticket="zE1o"))
    decision = limiter.try_acquire("alice", "exit")

    assert pause.reason == "p-ticket" and 11 < pause.remaining_s <= 12
    assert (decision.granted, decision.reason) == (False, "paused:p-ticket")
    assert 11_000 < decision.wait_ms <= 12_000
    assert limiter.usage("alice").penalties == 1


def test_an_exit_goes_out_while_entries_wait_on_the_reserve(make_limiter):
    limiter = make_limiter(per_minute=10, exit_reserve=3)
    for _ in range(7):
        limiter.acquire_request_slot("alice", "entry", 1)
    waiting = threading.Thread(target=limiter.acquire_request_slot, args=("alice", "entry", 5))
    waiting.start()

    exits = [limiter.try_acquire("alice", "exit") for _ in range(4)]

    assert [d.granted for d in exits] == [True, True, True, False]
    assert limiter.try_acquire("alice", "entry").reason == "minute"
    waiting.join()  # the waiting entry still gets its slot once the window moves on


def test_background_never_exceeds_its_share(make_limiter):
    limiter = make_limiter(per_minute=20, exit_reserve=0, background_share=0.1)

    with ThreadPoolExecutor(max_workers=3) as pool:
        slots = list(
            pool.map(lambda _: limiter.acquire_request_slot("alice", "background", 5), range(4))
        )
    share = [limiter.try_acquire("bob", "background") for _ in range(3)]

    assert most_in_any_window([s.granted_at_ms for s in slots], 1_000) == 2
    assert [d.granted for d in share] == [True, True, False]
    assert share[-1].reason == "background"
    assert limiter.try_acquire("bob", "entry").granted  # the rest of the budget stays open
    assert limiter.usage("bob").background_used == 2


def test_slot_timeout_when_the_budget_stays_full(make_limiter):
    limiter = make_limiter(per_minute=3, exit_reserve=0, minute_ms=30_000)
    for _ in range(3):
        limiter.acquire_request_slot("alice", "exit")

    started = time.monotonic()
    with pytest.raises(SlotTimeout) as refused:
        limiter.acquire_request_slot("alice", "exit", timeout_s=3)

    # The wait (30 s) outlasts the timeout, so it raises at once instead of sleeping 3 s first.
    assert time.monotonic() - started < 2
    assert refused.value.decision.reason == "minute"


def test_the_hour_budget_holds_when_minutes_are_free(make_limiter):
    limiter = make_limiter(per_minute=20, per_hour=8, exit_reserve=2)

    decisions = [limiter.try_acquire("alice", "entry") for _ in range(7)]
    exits = [limiter.try_acquire("alice", "exit") for _ in range(3)]

    assert [d.granted for d in decisions] == [True] * 6 + [False]
    assert decisions[-1].reason == "hour"
    assert [d.granted for d in exits] == [True, True, False]
    assert 59_000 < exits[-1].wait_ms <= 60_000


def test_usage_reports_the_windows_pause_and_penalties(make_limiter, settings, redis_client):
    limiter = make_limiter()
    for priority in ("entry", "exit", "background"):
        limiter.try_acquire("alice", priority)
    limiter.record_penalty("alice")
    limiter.pause("alice", 30, "p-captcha")

    usage = limiter.usage("alice")

    assert (usage.minute_used, usage.hour_used, usage.background_used) == (3, 3, 1)
    assert (usage.per_minute, usage.per_hour) == (60, 4000)
    assert (usage.paused_reason, usage.penalties) == ("p-captcha", 1)
    assert redis_client.exists(f"{settings.stream_prefix}limiter:alice:minute")
    time.sleep(1.05)  # the "minute" passes; the hour still counts
    assert (limiter.usage("alice").minute_used, limiter.usage("alice").hour_used) == (0, 3)
