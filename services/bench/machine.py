"""How much of the machine's CPU went to work outside the bench while a figure was measured:
every client and service here shares the same cores, so a figure taken while something else ran
says less. Reads /proc/stat (Linux); elsewhere it says nothing."""

from __future__ import annotations

import os
import time


def _machine_busy_s() -> float | None:
    """CPU seconds all cores spent busy since boot."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    """CPU seconds of this process and of its children that have ended (the services it ran)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherWork:
    """Each call to `since_last()` tells the share of all cores busy with other processes
    (the Redis and PostgreSQL servers among them) since the previous call."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), _machine_busy_s(), _own_s())

    def since_last(self) -> float | None:
        now = (time.monotonic(), _machine_busy_s(), _own_s())
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        self._last = now
        if busy0 is None or busy1 is None or t1 <= t0:
            return None
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * (os.cpu_count() or 1))
