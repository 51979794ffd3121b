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


def _stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return None


def _own_s() -> float:
    """CPU seconds of this process and of every process it started, living or ended (the
    services it measures, and the embedded servers when it started them)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    children: dict[int, list[tuple[int, list[str]]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(entry)) is not None:
            children.setdefault(int(fields[1]), []).append((int(entry), fields))
    ticks = os.sysconf("SC_CLK_TCK")
    stack = [os.getpid()]
    while stack:
        for pid, fields in children.get(stack.pop(), []):
            total += (
                sum(int(v) for v in fields[11:15]) / ticks
            )  # utime, stime, and of its ended children
            stack.append(pid)
    return total


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
