"""Execution figure for exit plans: a tick that trails a recorder's stop → every working stop of
its trader moved at the Tradovate simulator, through the engine and a real executor process."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

from sqlalchemy import update

from libs.common import streams
from libs.common.events import POSITION_OPENED
from libs.common.futures.instruments import contract_spec
from libs.common.storage import db
from libs.common.storage.models import Recorder
from libs.common.streams import SignalMessage, TickMessage
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.broker_entities import JSON
from tools.bench.execution import ExecutionBench, stop_process
from tools.bench.processes import engine_process
from tools.bench.table import ROUNDS, Rounds

ENTRY = Decimal("25640")
# Two legs, so the entry goes out as an order strategy and a stop rests per leg; the targets
# sit far above the highs the bench makes, and the trail follows every new high by one tick.
PLAN = {
    "stop": {"ticks": 40},
    "targets": [{"ticks": 400, "qty": 1}, {"ticks": 800}],
    "trail": {"trigger": {"ticks": 4}, "distance": {"ticks": 4}},
}
QTY = 2
TRIGGER_TICKS = 4
SPACING_S = 0.02  # between a stop's move and the next tick: the run stays near 50 moves a second
WAIT_S = 5.0


class StopWatch:
    """Listens to the simulator's book: when was each stop level reached by `stops` orders?"""

    def __init__(self, stops: int):
        self.stops = stops
        self._seen: dict[Decimal, int] = {}
        self._reached: dict[Decimal, float] = {}
        self._changed = threading.Condition()

    def __call__(self, entity_type: str, event_type: str, entity: JSON, account_id: int) -> None:
        """Runs on the simulator's request thread, under its lock: note the time and go."""
        if entity_type != "orderVersion" or entity.get("orderType") != "Stop":
            return
        level = Decimal(str(entity["stopPrice"]))
        with self._changed:
            self._seen[level] = self._seen.get(level, 0) + 1
            if self._seen[level] == self.stops:
                self._reached[level] = time.perf_counter()
                self._changed.notify_all()

    def wait(self, level: Decimal) -> float:
        """perf_counter() when the last working stop went to `level`."""
        with self._changed:
            if not self._changed.wait_for(lambda: level in self._reached, WAIT_S):
                raise RuntimeError(f"the simulator's stops did not reach {level} within {WAIT_S} s")
            return self._reached[level]


class StopMoveBench(ExecutionBench):
    def tick_to_stop_moved(self) -> None:
        bench = self.bench
        bench.clean_streams()  # the executor's queues and limiter windows of the rows before
        [recorder] = bench.make_recorders(1)
        with db.transaction(bench.sessions) as s:
            s.execute(
                update(Recorder)
                .where(Recorder.id == recorder.id)
                .values(exits=PLAN, default_qty=Decimal(QTY))
            )
        sim = self._simulator()
        self._connect(sim, recorder.id, recorder.user_id)
        watch = StopWatch(stops=len(PLAN["targets"]))
        sim.add_listener(watch)
        executor = self._executor(sim, per_minute=1_000_000)  # room in the limiter: latency only
        try:
            with engine_process(self.settings):
                moves = self._trail(sim, recorder.id, watch)
        finally:
            stop_process(executor)
            sim.stop()
        bench.add_latency(
            "Tick on stream -> stop moved at the Tradovate simulator, p50 / p99",
            moves,
            50,
            f"{moves.samples} new highs over {ROUNDS} rounds, {SPACING_S * 1000:.0f} ms apart, "
            f"each {2 + QTY} requests "
            f"(2 reads, a modify per stop) with room in the limiter: at 60/min its budget, "
            "not latency, would pace them",
        )

    def _trail(self, sim: BrokerSimulator, recorder_id: int, watch: StopWatch) -> Rounds:
        """Open the position, then one new high a tick above the last per measurement; the
        warm-up round warms the executor (connections, contract lookup, order reads)."""
        bench, tick_size = self.bench, contract_spec("MNQ").tick_size
        events = self.settings.stream(streams.EVENTS)
        last = bench.mark(events)
        self._open(recorder_id)
        last = bench._wait_type(events, last, POSITION_OPENED)
        watch.wait(ENTRY - 40 * tick_size)  # the strategy's stops rest at the plan's stop
        highs = 0

        def measure(count: int) -> list[float]:
            nonlocal highs
            lat = []
            for _ in range(count):
                high = ENTRY + (TRIGGER_TICKS + highs) * tick_size
                highs += 1
                sim.set_price(self.front, high)  # the broker trades there too: stops stay below
                tick = TickMessage("MNQ", high, streams.now_ms(), "bench")
                t = time.perf_counter()
                streams.add(bench.redis, self.settings.stream(streams.TICKS), tick.to_fields())
                moved = watch.wait(high - TRIGGER_TICKS * tick_size)
                lat.append((moved - t) * 1000)
                time.sleep(SPACING_S)
            return lat

        return bench.rounds(measure, 200)

    def _open(self, recorder_id: int) -> None:
        msg = SignalMessage(
            str(uuid.uuid4()),
            recorder_id,
            "buy",
            "MNQ1!",
            "MNQ",
            ENTRY,
            None,
            None,
            None,
            streams.now_ms(),
            "{}",
        )
        streams.add(self.bench.redis, self.settings.stream(streams.SIGNALS), msg.to_fields())
