"""How much of the machine's CPU went to work outside the bench while a figure was measured:
every client and service here shares the same cores, so a figure taken while something else ran
says less. Reads /proc/stat (Linux); elsewhere it says nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass


def _machine_busy_s() -> float | None:
    """CPU seconds all cores spent busy since boot."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int | str) -> list[str] | None:
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
        if entry.isdigit() and (fields := proc_stat(entry)) is not None:
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


# Every counter read here moves in clock ticks (1/CLK_TCK s, 10 ms): /proc/stat per core, and
# each process's times. Over a window only a few ticks long the difference of two readings is
# mostly that rounding (one more tick on the machine and none yet on ours reads as "others used
# all of it"), which is how back-to-back rows showed more than 100 %: so a share is only told over
# at least MIN_WINDOW_S, and never above all of the cores.
MIN_WINDOW_S = 0.5


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds
    busy_s: float | None  # CPU seconds all cores spent busy (None: unknown here)
    own_s: float  # CPU seconds of the bench and everything it started


def others_share(before: Reading, after: Reading, cpus: int) -> float | None:
    """The share of all cores busy with other processes between two readings; None when the
    window is too short to tell (MIN_WINDOW_S) or the machine's busy time is unknown."""
    window = after.at - before.at
    if before.busy_s is None or after.busy_s is None or window < MIN_WINDOW_S:
        return None
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return min(1.0, max(0.0, others / (window * cpus)))


def read_machine() -> Reading:
    return Reading(time.monotonic(), _machine_busy_s(), _own_s())


class OtherWork:
    """Each call to `since_last()` tells the share of all cores busy with other processes
    (the Redis and PostgreSQL servers among them) since the previous call that told one: a call
    too soon after it (MIN_WINDOW_S) answers None and leaves the window open."""

    def __init__(self, read: Callable[[], Reading] = read_machine, cpus: int | None = None) -> None:
        self._read = read
        self._cpus = cpus or os.cpu_count() or 1
        self._last = read()

    def since_last(self) -> float | None:
        now = self._read()
        share = others_share(self._last, now, self._cpus)
        if now.at - self._last.at >= MIN_WINDOW_S:
            self._last = now
        return share
