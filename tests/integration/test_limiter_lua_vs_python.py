"""The limiter's Lua script, run by the real Redis, answers as its Python arithmetic (`decide`)
does: the same random requests, times, pauses and budgets get the same grant or refusal, the same
wait and reason, and leave the same requests counted in each window.

Redis' clock cannot be set, so time is moved the other way: "`gap` ms pass" shifts every stored
grant `gap` ms into the past. The model's clock is the script's own (`at_ms`) plus all shifts
so far, so the real milliseconds between two steps pass for both alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.executor.limiter import BrokerLimiter, Decision, Limits, Logs, Priority, decide

PARTS = ("minute", "hour", "background")

# KEYS: the three windows. ARGV: ms. Every grant moves `ms` into the past: as if `ms` had passed.
_SHIFT_LUA = """
for _, key in ipairs(KEYS) do
  local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do
    redis.call('ZADD', key, tonumber(flat[i + 1]) - tonumber(ARGV[1]), flat[i])
  end
end
"""


@dataclass
class Model:
    """What the script keeps, in plain Python, on the model's clock (ms)."""

    limits: Limits
    grants: list[tuple[int, str]] = field(default_factory=list)
    pause: tuple[int | None, str] | None = None  # (until, reason); until None: set by hand

    def decide(self, now: int, priority: Priority, pause_early_ms: int = 0) -> Decision:
        times = [t for t, _ in self.grants]
        background = [t for t, p in self.grants if p == "background"]
        until, reason = 0, ""
        if self.pause is not None:
            until, reason = self.pause[0], self.pause[1]
            # A pause without expiry holds a minute at a time (until an operator deletes it).
            until = now + self.limits.minute_ms if until is None else until - pause_early_ms
        return decide(now, Logs(times, times, background), priority, self.limits, until, reason)

    def counted(self, now: int) -> dict[str, list[int]]:
        """Grant times each window still holds at `now`."""
        minute, hour = now - self.limits.minute_ms, now - self.limits.hour_ms
        return {
            "minute": [t for t, _ in self.grants if t > minute],
            "hour": [t for t, _ in self.grants if t > hour],
            "background": [t for t, p in self.grants if p == "background" and t > minute],
        }


class Runner:
    """Drives the script through `BrokerLimiter` and the model side by side."""

    def __init__(self, client: redis.Redis, prefix: str, limiter: BrokerLimiter) -> None:
        self.client, self.limiter = client, limiter
        self.user = uuid.uuid4().hex[:12]
        self.model = Model(limiter.limits)
        self.shifted = 0  # ms moved so far; model time = Redis time + shifted
        self.last_wait = 0  # of the last refusal: a retry after it lands on a window's edge
        self.windows = [limiter.key(self.user, part) for part in PARTS]
        self.pause_key = limiter.key(self.user, "pause")
        self._shift = client.register_script(_SHIFT_LUA)

    def server_now(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000 + self.shifted

    def wait(self, gap_ms: int) -> None:
        if gap_ms:
            self._shift(keys=self.windows, args=[gap_ms])
            self.shifted += gap_ms

    def set_pause(self, ms: int | None, reason: str) -> None:
        """A pause as a penalty leaves it (`ms` from now) or an operator does (None: no expiry)."""
        self.model.pause = (None if ms is None else self.server_now() + ms, reason)

    def lift_pause(self) -> None:
        self.model.pause = None

    def _write_pause(self) -> None:
        """The model's pause into Redis, its end on Redis' clock (gone if already over)."""
        if self.model.pause is None:
            self.client.delete(self.pause_key)
        elif self.model.pause[0] is None:
            self.client.set(self.pause_key, self.model.pause[1])
        else:
            until = self.model.pause[0] - self.shifted
            self.client.set(self.pause_key, self.model.pause[1], pxat=max(1, until))

    def request(self, priority: Priority) -> Decision:
        self._write_pause()
        lua = self.limiter.try_acquire(self.user, priority)
        now = lua.at_ms + self.shifted
        answers = {self._answer(self.model.decide(now, priority, early)) for early in (0, 1)}
        # The script reads the clock twice (TIME, then the pause's PTTL), microseconds apart:
        # when they straddle a millisecond the pause looks one ms shorter to it. Only a pause
        # can differ so; without one both answers are the same.
        assert self._answer(lua) in answers, (priority, now, lua, answers, self.model)
        if lua.granted:
            self.model.grants.append((now, priority))
        else:
            self.last_wait = lua.wait_ms
        assert self.counted() == self.model.counted(now)
        return lua

    def counted(self) -> dict[str, list[int]]:
        pipe = self.client.pipeline()
        for key in self.windows:
            pipe.zrange(key, 0, -1, withscores=True)
        return {
            part: sorted(int(score) + self.shifted for _, score in found)
            for part, found in zip(PARTS, pipe.execute(), strict=True)
        }

    @staticmethod
    def _answer(decision: Decision) -> tuple[bool, int, str | None]:
        return decision.granted, decision.wait_ms, decision.reason


@st.composite
def budgets(draw) -> dict:
    per_minute = draw(st.integers(1, 12))
    # At least 40 ms: the keys expire with their window, and on a loaded machine reading them
    # back a few milliseconds after the script found a 5 ms window already gone.
    minute_ms = draw(st.integers(40, 300))
    return {
        "per_minute": per_minute,
        "per_hour": draw(st.integers(per_minute, 40)),
        "exit_reserve": draw(st.integers(0, per_minute - 1)),
        "background_share": draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0])),
        "minute_ms": minute_ms,
        "hour_ms": draw(st.integers(minute_ms, minute_ms * 8)),
        "guard_ms": draw(st.integers(0, 5)),
    }


priorities = st.sampled_from(["exit", "entry", "background"])
# Mostly close together, so windows fill and the reserve, the shares and the waits come in.
gaps = st.one_of(st.integers(0, 3), st.integers(0, 40), st.integers(0, 2_500))
reasons = st.sampled_from(["p-ticket", "p-captcha", "http-429", "http-423"])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("request"), gaps, priorities),
        st.tuples(st.just("request"), gaps, priorities),
        st.tuples(st.just("retry"), st.just(0), priorities),  # exactly when the refusal said
        st.tuples(st.just("pause"), gaps, st.one_of(st.integers(1, 400), st.none()), reasons),
        st.tuples(st.just("lift"), gaps),
    ),
    max_size=60,
)


@pytest.fixture
def make_runner(settings, redis_client):
    def make(budget: dict) -> Runner:
        limiter = BrokerLimiter(redis_client, settings.stream_prefix, **budget)
        return Runner(redis_client, settings.stream_prefix, limiter)

    return make


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(budget=budgets(), script=steps)
def test_the_script_in_redis_answers_every_request_as_decide_does(make_runner, budget, script):
    runner = make_runner(budget)  # a fresh broker user per example: no keys shared
    for step in script:
        runner.wait(runner.last_wait if step[0] == "retry" else step[1])
        if step[0] in ("request", "retry"):
            runner.request(step[2])
        elif step[0] == "pause":
            runner.set_pause(step[2], step[3])
        else:
            runner.lift_pause()


def test_the_reserve_the_windows_and_a_pause_by_hand_answer_alike(make_runner):
    runner = make_runner({"per_minute": 3, "per_hour": 5, "exit_reserve": 1, "minute_ms": 100})
    answers = [runner.request("exit") for _ in range(3)]
    answers.append(runner.request("entry"))  # the last slot of the minute is the exits'
    runner.wait(60)
    answers.append(runner.request("exit"))  # the minute is full
    runner.wait(45)
    answers.append(runner.request("entry"))  # the first three have left the minute
    answers.append(runner.request("background"))  # the hour has no room left but the reserve
    runner.set_pause(None, "http-429")
    answers.append(runner.request("exit"))  # a pause set by hand holds a minute at a time
    assert [a.reason for a in answers] == [None] * 3 + ["minute", "minute", None, "hour"] + [
        "paused:http-429"
    ]
    assert answers[-1].wait_ms == 100
