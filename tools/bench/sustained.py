"""Sustained signals through the engine: backlogs of signals over 10,000 recorders of 100 users,
applied by 1 and by 2 engine partitions in the same run; the second row's note gives the ratio,
what a second partition buys on this machine.

Each partition count has its own users, recorders and streams (a stream prefix of its own) and
its own engines: one process per partition, as `justtrades engine --partition K` runs them,
minus the leader lock like the bench's other engines. They run from the start and hold between
rounds: a round's backlog is written while they hold, and the clock runs from letting them go
until every partition's stream is read and acknowledged, which the engine does only after the
batch's commit. The two counts' rounds alternate, so a change in the machine's load weighs on
both.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select

from libs.common import partitions as partitions_recorded
from libs.common import streams
from libs.common.config import Settings
from libs.common.security import hash_password
from libs.common.storage import db
from libs.common.storage.models import Recorder, Signal, User
from tools.bench.machine import proc_stat
from tools.bench.processes import START_TIMEOUT_S, prepared_engine
from tools.bench.sustained_plan import (
    WAVES,
    Planned,
    Sustained,
    backlog,
    ratio,
    ratio_note,
    recorder_rows,
    round_ratios,
    row_name,
)
from tools.bench.table import ROUNDS

if TYPE_CHECKING:
    from tools.bench.core import Bench

USERS, RECORDERS_PER_USER = 100, 100
EMAIL = "bench-sustained-{}p-{:03d}@justtrades.invalid"
EMAIL_LIKE = "bench-sustained-%@justtrades.invalid"
PARTITION_COUNTS = (1, 2)
# Signals a round, four for each of 750 recorders (other ones each round): about 300-500
# signals/s on 2 shared cores, so a round takes 5-10 s. Every recorder of the 10,000 exists
# and is loaded by the engines. `--quick` writes a tenth.
SIGNALS_PER_ROUND = 3_000
WRITE_CHUNK = 1000  # XADDs per pipelined round trip
DRAIN_TIMEOUT_S = 300.0
POLL_S = 0.01

# --- the engines -----------------------------------------------------------------------------


def _run_held(
    settings: Settings,
    ready: Event,
    go: Event,
    stop: Event,
    hold: Synchronized[int],
    holding: Synchronized[int],
) -> None:
    """One partition's engine: applies entries while `go` is set; otherwise it tells which hold
    it is in (`holding` := `hold`) and reads nothing."""
    engine = prepared_engine(settings)
    ready.set()
    try:
        while not stop.is_set():
            if go.is_set():
                engine.step(block_ms=20)
            else:
                holding.value = hold.value
                go.wait(0.05)
    finally:
        engine.commands.stop()


class HeldEngines:
    """One engine process per partition, each holding until `release()`; `hold()` returns once
    none of them reads any more."""

    def __init__(self, settings: Settings, partitions: int):
        context = multiprocessing.get_context("spawn")
        self.go, self.stop = context.Event(), context.Event()
        self.hold_no = context.Value("i", 0)
        self.holding = [context.Value("i", -1) for _ in range(partitions)]
        self.ready = [context.Event() for _ in range(partitions)]
        self.processes = [
            context.Process(
                target=_run_held,
                args=(
                    replace(settings, engine_partitions=partitions, engine_partition=k),
                    self.ready[k],
                    self.go,
                    self.stop,
                    self.hold_no,
                    self.holding[k],
                ),
                daemon=True,
            )
            for k in range(partitions)
        ]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        for ready in self.ready:
            if not ready.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError("the bench's engine processes did not start")
        self.hold()

    def release(self) -> None:
        self.go.set()

    def hold(self) -> None:
        self.go.clear()
        with self.hold_no.get_lock():
            self.hold_no.value += 1
        deadline = time.monotonic() + 10
        while any(h.value != self.hold_no.value for h in self.holding):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the bench's engines did not hold")
            time.sleep(POLL_S)

    def cpu_s(self) -> float | None:
        """CPU seconds the engine processes have used so far (Linux /proc; else None)."""
        total = 0.0
        for process in self.processes:
            fields = proc_stat(str(process.pid))  # "None" before it starts: no such file
            if fields is None:
                return None
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def check_alive(self) -> None:
        if not all(p.is_alive() for p in self.processes):
            raise RuntimeError("a bench engine process ended (its error is above)")

    def close(self) -> None:
        self.stop.set()
        self.go.set()
        for process in self.processes:
            if process.pid is None:  # never started
                continue
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


@contextmanager
def held_engines(settings: Settings, partitions: int) -> Iterator[HeldEngines]:
    engines = HeldEngines(settings, partitions)
    try:
        engines.start()
        yield engines
    finally:
        engines.close()


# --- the measurement -------------------------------------------------------------------------


@dataclass
class Setup:
    """One partition count's own users, recorders, streams (a stream prefix of its own) and
    engines, and what its rounds measured."""

    partitions: int
    settings: Settings
    user_ids: list[int]
    recorder_ids: list[int]
    engines: HeldEngines
    load: float | None = None
    rates: list[float] = field(default_factory=list)
    others: list[tuple[float, float | None]] = field(default_factory=list)  # (s, share) a round
    signals: int = 0  # the last round's backlog (every measured round's is as long)
    engine_cpu: list[tuple[float, float]] = field(default_factory=list)  # (s, CPU s) a round

    def others_share(self) -> float | None:
        """The share of the cores other processes used over the measured rounds."""
        timed = [(s, share) for s, share in self.others if share is not None]
        total = sum(s for s, _ in timed)
        return sum(s * share for s, share in timed) / total if total else None

    def engine_cores(self) -> float | None:
        """How many cores the engine processes kept busy over the measured rounds."""
        took = sum(s for s, _ in self.engine_cpu)
        return sum(cpu for _, cpu in self.engine_cpu) / took if took else None


class SustainedBench:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.redis = bench.redis
        self.sessions = bench.sessions

    def run(self) -> None:
        """Both rows. Every partition count has its own users, recorders and streams, and its
        engines run from the start, held while another's round runs; their rounds alternate
        (1, 2, 1, 2 ...) so that a change in the machine's load weighs on both alike."""
        count = self.bench.n(SIGNALS_PER_ROUND)
        self.bench.clean_streams()
        self.drop_users()
        try:
            with ExitStack() as stack:
                setups = [self.setup(p, stack) for p in PARTITION_COUNTS]
                for setup in setups:
                    setup.load = os.getloadavg()[0]
                    self.round(setup, max(WAVES, count // 4), 0)  # warm-up, not counted
                    setup.rates.clear()
                    setup.others.clear()
                before = [self.statuses(s.user_ids) for s in setups]
                for n in range(ROUNDS):
                    for setup in setups:
                        self.round(setup, count, n + 1)
            results = [
                self.result(setup, warmed) for setup, warmed in zip(setups, before, strict=True)
            ]
        finally:
            self.drop_users()
            self.bench.clean_streams()
        self.add_rows(results)

    def add_rows(self, results: Sequence[Sustained]) -> None:
        one = results[0]
        for result in results:
            note = (
                f"{result.signals:,} signals a round on {result.recorders:,} recorders "
                "(entries, adds, reversals and closes alike); from letting the engines read to "
                f"the last acknowledged commit; median of {ROUNDS} rounds after a warm-up, "
                "alternating with the other row's"
            )
            if result.engine_cores is not None:
                note += f"; the engines kept {result.engine_cores:.2f} cores busy"
            numbers = result.numbers
            if result is not one:
                note = f"{ratio_note(one, result, os.cpu_count() or 1)}; {note}"
                numbers = {
                    **numbers,
                    "ratio_to_1_partition": round(ratio(one, result), 3),
                    "ratio_rounds": round_ratios(one, result),
                }
            self.bench.add(
                row_name(result.partitions),
                result.value,
                "reference",
                None,
                note,
                numbers,
                result.load,
                result.others,
            )

    def setup(self, partitions: int, stack: ExitStack) -> Setup:
        prefix = f"{self.bench.settings.stream_prefix}{partitions}p:"
        settings = replace(self.bench.settings, stream_prefix=prefix, engine_partitions=partitions)
        partitions_recorded.check(self.redis, settings)  # what the engines' service does first
        user_ids, recorder_ids = self.seed(partitions)
        engines = stack.enter_context(held_engines(settings, partitions))
        return Setup(partitions, settings, user_ids, recorder_ids, engines)

    def result(self, setup: Setup, warmed: Mapping[str, int]) -> Sustained:
        """The measured rounds, once the signals rows show every signal written was applied."""
        after = self.statuses(setup.user_ids)
        measured = {s: n - warmed.get(s, 0) for s, n in after.items()}
        written = setup.signals
        if sum(measured.values()) != ROUNDS * written:
            raise RuntimeError(
                f"{sum(measured.values())} signals recorded, {ROUNDS * written} written"
            )
        return Sustained(
            setup.partitions,
            tuple(setup.rates),
            written,
            written // WAVES,
            measured,
            setup.load,
            setup.others_share(),
            setup.engine_cores(),
        )

    def round(self, setup: Setup, count: int, round_no: int) -> None:
        """Write a backlog while the engines hold, let them go, and time them through it."""
        plan = backlog(setup.recorder_ids, count, round_no)
        setup.signals = len(plan)
        keys = self.write(setup.settings, plan)
        self.bench.other_work.since_last()
        cpu = setup.engines.cpu_s()
        start = time.perf_counter()
        setup.engines.release()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not self.drained(keys):
            setup.engines.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the engines did not work through the backlog")
            time.sleep(POLL_S)
        took = time.perf_counter() - start
        setup.others.append((took, self.bench.other_work.since_last()))
        cpu_after = setup.engines.cpu_s()
        if cpu is not None and cpu_after is not None:
            setup.engine_cpu.append((took, cpu_after - cpu))
        setup.engines.hold()
        setup.rates.append(len(plan) / took)

    def write(self, settings: Settings, plan: Sequence[Planned]) -> list[str]:
        """Each signal XADDed to its recorder's partition stream, pipelined; the streams
        written to."""
        keys = settings.all_partition_keys(streams.SIGNALS)
        written = set()
        pipe = self.redis.pipeline(transaction=False)
        for i, planned in enumerate(plan):
            key = keys[settings.partition_of(planned.recorder_id)]
            written.add(key)
            streams.add(pipe, key, planned.message().to_fields())
            if i % WRITE_CHUNK == WRITE_CHUNK - 1:
                pipe.execute()
        pipe.execute()
        return sorted(written)

    def drained(self, keys: Sequence[str]) -> bool:
        """Every entry of every stream read by the engines' group and acknowledged."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.xinfo_stream(key)
            pipe.xinfo_groups(key)
        replies = pipe.execute()
        for key, info, groups in zip(keys, replies[::2], replies[1::2], strict=True):
            group = next((g for g in groups if g["name"] == streams.ENGINE_GROUP), None)
            if group is None:
                raise RuntimeError(f"no engine reads {key}")
            if group["pending"] or group["last-delivered-id"] != info["last-generated-id"]:
                return False
        return True

    # --- the users and their recorders -------------------------------------------------------

    def seed(self, partitions: int) -> tuple[list[int], list[int]]:
        """Users and recorders of their own for one partition count: their ids, the recorders'
        in order."""
        password_hash = hash_password("bench password, throw-away")
        with db.transaction(self.sessions) as s:
            emails = [EMAIL.format(partitions, u) for u in range(USERS)]
            user_ids = list(
                s.scalars(
                    insert(User).returning(User.id),
                    [{"email": e, "password_hash": password_hash} for e in emails],
                )
            )
            s.execute(insert(Recorder), recorder_rows(user_ids, RECORDERS_PER_USER))
            ids = s.scalars(
                select(Recorder.id).where(Recorder.user_id.in_(user_ids)).order_by(Recorder.id)
            )
            return user_ids, list(ids)

    def statuses(self, user_ids: Sequence[int]) -> dict[str, int]:
        """The signals rows of these users' recorders, by status."""
        with self.sessions() as s:
            rows = s.execute(
                select(Signal.status, func.count())
                .join(Recorder, Recorder.id == Signal.recorder_id)
                .where(Recorder.user_id.in_(user_ids))
                .group_by(Signal.status)
            )
            return {status: n for status, n in rows}

    def drop_users(self) -> None:
        with db.transaction(self.sessions) as s:
            s.execute(delete(User).where(User.email.like(EMAIL_LIKE)))
