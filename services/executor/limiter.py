"""The broker rate limiter: one sliding-window budget per broker user in Redis, shared by every
worker.

`decide` is the arithmetic (windows, pauses, priority reserves) on plain values; `BrokerLimiter`
runs the same rules atomically in a Lua script against Redis' clock.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import redis

Priority = Literal["exit", "entry", "background"]
PRIORITIES: tuple[Priority, ...] = ("exit", "entry", "background")

# Tradovate: a 429/423 lockout is a rolling hour and a captcha cannot be solved by a program;
# both are waited out for an hour (docs/outside/tradovate.md §3).
LOCKOUT_PAUSE_S = 3600
CAPTCHA_PAUSE_S = 3600
# A p-ticket without p-time has not been seen; wait as long as the longest documented back-off.
DEFAULT_P_TIME_S = 30

# Sleeping in chunks lets a worker notice a pause an operator lifts (key deleted) early.
_MAX_SLEEP_S = 5.0
_JITTER_S = 0.02


class SlotTimeout(Exception):
    """No slot was granted within the caller's timeout; `decision` is the last refusal."""

    def __init__(self, user: str, priority: str, decision: Decision) -> None:
        super().__init__(
            f"no {priority} slot for broker user {user} in time "
            f"(reason={decision.reason} wait_ms={decision.wait_ms})"
        )
        self.user, self.priority, self.decision = user, priority, decision


@dataclass(frozen=True)
class Limits:
    per_minute: int = 60
    per_hour: int = 4000
    exit_reserve: int = 5
    background_share: float = 0.10
    minute_ms: int = 60_000
    hour_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if not 0 <= self.exit_reserve < min(self.per_minute, self.per_hour):
            raise ValueError("exit_reserve must leave entries at least one slot per window")
        if not 0 < self.background_share <= 1:
            raise ValueError("background_share must be in (0, 1]")
        if self.minute_ms <= 0 or self.hour_ms < self.minute_ms:
            raise ValueError("windows must be positive and the hour no shorter than the minute")

    def minute_cap(self, priority: Priority) -> int:
        return self.per_minute if priority == "exit" else self.per_minute - self.exit_reserve

    def hour_cap(self, priority: Priority) -> int:
        return self.per_hour if priority == "exit" else self.per_hour - self.exit_reserve

    @property
    def background_cap(self) -> int:
        # At least one, or a small budget would starve reconciliation altogether.
        return max(1, math.floor(self.per_minute * self.background_share))


class Logs(NamedTuple):
    """Grant times in ms, ascending; times outside the windows are ignored."""

    minute: Sequence[int]
    hour: Sequence[int]
    background: Sequence[int]


@dataclass(frozen=True)
class Decision:
    granted: bool
    wait_ms: int  # 0 when granted; otherwise the earliest time a retry can succeed
    reason: str | None  # "minute", "hour", "background" or "paused:<why>"; None when granted
    at_ms: int  # the clock the decision was made at (Redis server time in BrokerLimiter)


def _window_wait(log: Sequence[int], cap: int, window_ms: int, now_ms: int) -> int:
    """Ms until the window holds fewer than `cap` grants; 0 if it already does."""
    start = bisect_right(log, now_ms - window_ms)
    excess = len(log) - start - cap
    if excess < 0:
        return 0
    return log[start + excess] + window_ms - now_ms


def decide(
    now_ms: int,
    logs: Logs,
    priority: Priority,
    limits: Limits,
    paused_until_ms: int = 0,
    pause_reason: str = "",
) -> Decision:
    """Grant or refuse one request at `now_ms`; a refusal says how long to wait and why."""
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}")
    checks = [
        (logs.minute, limits.minute_cap(priority), limits.minute_ms, "minute"),
        (logs.hour, limits.hour_cap(priority), limits.hour_ms, "hour"),
    ]
    if priority == "background":
        checks.append((logs.background, limits.background_cap, limits.minute_ms, "background"))
    waits = [(max(0, paused_until_ms - now_ms), f"paused:{pause_reason}")]
    waits += [(_window_wait(log, cap, window, now_ms), name) for log, cap, window, name in checks]
    wait_ms, reason = max(waits, key=lambda w: w[0])  # ties keep the first: a pause is named
    if wait_ms == 0:
        return Decision(True, 0, None, now_ms)
    return Decision(False, wait_ms, reason, now_ms)


@dataclass(frozen=True)
class Penalty:
    seconds: int
    reason: str  # "p-ticket", "p-captcha", "http-429", "http-423"
    alert: bool  # a lockout or captcha needs a person; the caller publishes the alert
    ticket: str | None = None  # resend the identical request with it after the pause


def penalty_for(status: int, body: Mapping[str, Any] | None) -> Penalty | None:
    """The pause a broker answer calls for, or None for an ordinary answer."""
    if status in (423, 429):
        return Penalty(LOCKOUT_PAUSE_S, f"http-{status}", alert=True)
    if status != 200 or not body or "p-ticket" not in body:
        return None
    if body.get("p-captcha"):
        return Penalty(CAPTCHA_PAUSE_S, "p-captcha", alert=True)
    seconds = int(body.get("p-time") or DEFAULT_P_TIME_S)
    return Penalty(seconds, "p-ticket", alert=False, ticket=str(body["p-ticket"]))


# --- Redis adapter -------------------------------------------------------------------------

# KEYS: minute, hour, background, pause.
# ARGV: member, minute cap, hour cap, background cap (0 = not background), minute ms, hour ms.
# Mirrors `decide`: the clock is Redis' own, so workers on different machines agree on it.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute_ms, hour_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - minute_ms)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - hour_ms)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - minute_ms)

local function window_wait(key, cap, window)
  local n = redis.call('ZCARD', key)
  if n < cap then return 0 end
  local at = redis.call('ZRANGE', key, n - cap, n - cap, 'WITHSCORES')
  return tonumber(at[2]) + window - now
end

local wait, reason = 0, ''
local left = redis.call('PTTL', KEYS[4])
if left == -1 then left = minute_ms end  -- a pause set by hand without expiry holds until deleted
if left > 0 then wait, reason = left, 'paused:' .. (redis.call('GET', KEYS[4]) or '') end
local checks = {
  {KEYS[1], tonumber(ARGV[2]), minute_ms, 'minute'},
  {KEYS[2], tonumber(ARGV[3]), hour_ms, 'hour'},
}
if tonumber(ARGV[4]) > 0 then
  table.insert(checks, {KEYS[3], tonumber(ARGV[4]), minute_ms, 'background'})
end
for _, c in ipairs(checks) do
  local w = window_wait(c[1], c[2], c[3])
  if w > wait then wait, reason = w, c[4] end
end
if wait > 0 then return {0, now, wait, reason} end

redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], minute_ms)
redis.call('PEXPIRE', KEYS[2], hour_ms)
if tonumber(ARGV[4]) > 0 then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], minute_ms)
end
return {1, now, 0, ''}
"""

# KEYS: pause. ARGV: ms, reason. Extends, never shortens: a short p-time must not cut a lockout.
_PAUSE_LUA = """
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left == -1 or left >= ms then return {redis.call('GET', KEYS[1]), left} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
return {ARGV[2], ms}
"""


@dataclass(frozen=True)
class Slot:
    user: str
    priority: Priority
    request_id: str
    granted_at_ms: int  # Redis server time
    waited_s: float


@dataclass(frozen=True)
class Pause:
    reason: str
    remaining_s: float | None  # None: set by hand without expiry


@dataclass(frozen=True)
class Usage:
    minute_used: int
    hour_used: int
    per_minute: int
    per_hour: int
    paused_reason: str | None
    penalties: int
    background_used: int = 0


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class BrokerLimiter:
    """Request slots for one broker's users; every process with the same Redis shares them."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        per_minute: int = 60,
        per_hour: int = 4000,
        exit_reserve: int = 5,
        background_share: float = 0.10,
        minute_ms: int = 60_000,
        hour_ms: int = 3_600_000,
        guard_ms: int = 0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        # Grants are timed here, arrivals at the broker: a request granted at the end of a window
        # may land in the next one. Counting each grant for `guard_ms` longer than the window
        # keeps the broker's own count within the budget despite that skew.
        self.limits = Limits(
            per_minute,
            per_hour,
            exit_reserve,
            background_share,
            minute_ms + guard_ms,
            hour_ms + guard_ms,
        )
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._pause = client.register_script(_PAUSE_LUA)

    def key(self, user: str, part: str) -> str:
        return f"{self.prefix}limiter:{user}:{part}"

    def try_acquire(
        self, user: str, priority: Priority = "entry", request_id: str | None = None
    ) -> Decision:
        """One atomic attempt; a grant is already counted against the user's budget."""
        if priority not in PRIORITIES:
            raise ValueError(f"unknown priority {priority!r}")
        limits = self.limits
        keys = [self.key(user, p) for p in ("minute", "hour", "background", "pause")]
        args: list[str | int] = [
            request_id or uuid.uuid4().hex,
            limits.minute_cap(priority),
            limits.hour_cap(priority),
            limits.background_cap if priority == "background" else 0,
            limits.minute_ms,
            limits.hour_ms,
        ]
        granted, at_ms, wait_ms, reason = self._acquire(keys=keys, args=args)
        if granted:
            return Decision(True, 0, None, int(at_ms))
        return Decision(False, int(wait_ms), _text(reason), int(at_ms))

    def acquire_request_slot(
        self, user: str, priority: Priority = "entry", timeout_s: float | None = None
    ) -> Slot:
        """Block until the user's budget grants a slot; SlotTimeout once it cannot in time."""
        started = time.monotonic()
        request_id = uuid.uuid4().hex
        while True:
            decision = self.try_acquire(user, priority, request_id)
            waited = time.monotonic() - started
            if decision.granted:
                return Slot(user, priority, request_id, decision.at_ms, waited)
            wait_s = decision.wait_ms / 1000
            # Pauses only extend and windows only fill, so a wait past the deadline is final.
            if timeout_s is not None and waited + wait_s > timeout_s:
                raise SlotTimeout(user, priority, decision)
            # Jitter keeps the workers that were refused together from retrying in lockstep.
            time.sleep(min(wait_s, _MAX_SLEEP_S) + random.uniform(0, _JITTER_S))

    def pause(self, user: str, seconds: float, reason: str) -> Pause:
        """Stop every worker of the user for `seconds`; a longer pause already set stands."""
        held, left_ms = self._pause(
            keys=[self.key(user, "pause")], args=[max(1, round(seconds * 1000)), reason]
        )
        return Pause(_text(held) or "", None if int(left_ms) == -1 else int(left_ms) / 1000)

    def apply_penalty(self, user: str, penalty: Penalty) -> Pause:
        """Pause for a broker's penalty answer and count it for the status page."""
        self.record_penalty(user)
        return self.pause(user, penalty.seconds, penalty.reason)

    def paused(self, user: str) -> Pause | None:
        pipe = self.client.pipeline()
        pipe.get(self.key(user, "pause"))
        pipe.pttl(self.key(user, "pause"))
        reason, left_ms = pipe.execute()
        if reason is None or left_ms == -2:  # -2: expired between the two reads
            return None
        return Pause(_text(reason) or "", None if left_ms == -1 else left_ms / 1000)

    def record_penalty(self, user: str) -> int:
        return int(self.client.incr(self.key(user, "penalties")))

    def usage(self, user: str) -> Usage:
        """Requests counted in the current windows, for the status page and metrics."""
        seconds, micros = self.client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        limits = self.limits
        pipe = self.client.pipeline()
        pipe.zcount(self.key(user, "minute"), f"({now_ms - limits.minute_ms}", "+inf")
        pipe.zcount(self.key(user, "hour"), f"({now_ms - limits.hour_ms}", "+inf")
        pipe.zcount(self.key(user, "background"), f"({now_ms - limits.minute_ms}", "+inf")
        pipe.get(self.key(user, "penalties"))
        minute, hour, background, penalties = pipe.execute()
        pause = self.paused(user)
        return Usage(
            minute,
            hour,
            limits.per_minute,
            limits.per_hour,
            pause.reason if pause else None,
            int(penalties or 0),
            background,
        )
