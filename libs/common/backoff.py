"""How long to wait before trying again: one capped exponential back-off (jittered for clients
that reconnect to a shared server) and the long pause a connection quota calls for."""

from __future__ import annotations

import math
import random

# 2**32 times any base is past every cap in use; the bound keeps the float from overflowing
# after a day of failed attempts.
MAX_DOUBLINGS = 32


def capped_exponential(attempt: int, base_s: float, cap_s: float) -> float:
    """`base_s` doubled `attempt` times, at most `cap_s`: 0 → base, 1 → 2 × base, ..."""
    return min(cap_s, math.ldexp(base_s, min(max(attempt, 0), MAX_DOUBLINGS)))


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """The capped exponential times a random factor in [0.5, 1]: clients dropped together (every
    account on one server, every worker of one host) come back spread out, not in step."""
    return capped_exponential(attempt, base_s, cap_s) * rng.uniform(0.5, 1.0)


def quota_pause(pause_s: float, rng: random.Random) -> float:
    """After a ConnectionQuotaReached / IPQuotaReached shutdown (docs/outside/tradovate.md §6.1):
    the long pause, stretched by up to a fifth so the clients it sent away do not return at once."""
    return pause_s * rng.uniform(1.0, 1.2)
