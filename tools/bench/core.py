"""`justtrades bench`: latency and throughput of the signal path, printed as one table.

Everything runs against the configured (or embedded) servers under the stream prefix `jtbench:`
and a throw-away bench user, so a running installation's streams and data are left alone.
Each figure is shown beside its goal; throughput is read against raw Redis rates measured in the
same run. Clients, servers and the services measured share this machine's cores: the notes say
where that weighs on a figure. `--json` prints the same table as JSON for scripts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import cast

import redis
import requests
from redis.client import Pipeline
from sqlalchemy import delete

from libs.common import recorder_tokens, streams
from libs.common.config import Settings
from libs.common.events import BENCH_MARK, POSITION_CLOSED, POSITION_OPENED, SIGNALS
from libs.common.security import hash_password, new_webhook_token
from libs.common.storage import db
from libs.common.storage.models import Recorder, User
from libs.common.streams import SignalMessage, TickMessage
from services.position_engine.engine import PositionEngine
from tools.bench.execution import ExecutionBench
from tools.bench.live import LiveBench
from tools.bench.machine import OtherWork
from tools.bench.notifier import notifier_running
from tools.bench.processes import background_ticks, engine_process, mnq_signal
from tools.bench.stop_moves import StopMoveBench
from tools.bench.sustained import SustainedBench
from tools.bench.table import ROUNDS, Figure, Machine, Rounds, Row, pct, render, render_json
from tools.bench.webhooks import WebhookBench

# XREAD/XREADGROUP on the bench's client, which decodes replies (redis-py's types cannot tell).

BENCH_EMAIL = "bench@justtrades.invalid"
BENCH_PASSWORD = "bench password, throw-away"
ENGINE_BATCH = PositionEngine.DEFAULT_BATCH
SYMBOLS = [
    "ES",
    "MES",
    "NQ",
    "MNQ",
    "YM",
    "MYM",
    "RTY",
    "M2K",
    "CL",
    "MCL",
    "NG",
    "GC",
    "MGC",
    "SI",
    "SIL",
    "HG",
    "ZB",
    "ZN",
    "6E",
    "6J",
]


def _add(client: redis.Redis | Pipeline, stream: str, message: SignalMessage | TickMessage) -> None:
    streams.add(client, stream, message.to_fields())


class Bench:
    def __init__(self, settings: Settings, quick: bool, as_json: bool = False):
        self.settings = replace(settings, stream_prefix="jtbench:")
        self.quick = quick
        self.as_json = as_json
        self.redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self.sessions = db.make_sessionmaker(db.make_engine(settings.database_url))
        self.rows: list[Row] = []
        self.load_at_start = os.getloadavg()[0]
        self.next_load = self.load_at_start  # when the next row's measurement began
        self.other_work = OtherWork()
        self._raw_read_rate: float | None = None

    pct = staticmethod(pct)

    def n(self, full: int) -> int:
        return max(50, full // 10) if self.quick else full

    def clean_streams(self) -> None:
        keys = list(self.redis.scan_iter(match="jtbench:*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def add(
        self,
        what: str,
        value: str,
        goal: str,
        met: bool | None,
        note: str = "",
        numbers: Mapping[str, Figure] | None = None,
        load: float | None = None,
        others: float | None = None,
    ) -> None:
        """One row; its note ends with the machine's 1-minute load average when its measurement
        began (`load`, else when the row before it was added) and the share of the cores other
        processes used while it was measured (`others`, else since the row before)."""
        load = self.next_load if load is None else load
        since_last = self.other_work.since_last()
        others = since_last if others is None else others
        machine = f"load {load:.2f} at start"
        if others is not None:
            machine += f", others used {others:.0%} of the cores"
        note = f"{note}; {machine}" if note else machine
        self.rows.append(Row(what, value, goal, met, note, dict(numbers or {}), load))
        self.next_load = os.getloadavg()[0]
        print(f"  measured: {what}: {value} (goal {goal})", file=sys.stderr, flush=True)

    def rounds(self, measure: Callable[[int], list[float]], full: int) -> Rounds:
        """A warm-up round that is not counted, then ROUNDS rounds of `self.n(full)` latencies;
        the load average is read before the warm-up, other processes' CPU over the rounds."""
        load, count = os.getloadavg()[0], self.n(full)
        measure(max(10, count // 4))
        self.other_work.since_last()
        measured = [measure(count) for _ in range(ROUNDS)]
        return Rounds.of(measured, load, self.other_work.since_last())

    def add_latency(self, what: str, rounds: Rounds, goal_p99_ms: float, note: str) -> None:
        """A latency row: the median p50 / p99 of the rounds and the spread of their p99."""
        self.add(
            what,
            rounds.value,
            f"p99 <= {goal_p99_ms:g} ms",
            rounds.p99.median <= goal_p99_ms,
            note,
            rounds.numbers,
            rounds.load,
            rounds.others,
        )

    def add_with_notifier(
        self,
        what: str,
        goal_p99_ms: float,
        note: str,
        alone: Rounds,
        notified: Rounds,
        delivered: int,
    ) -> None:
        """Two latency rows: measured alone, then with the notifier running (ratio in its note)."""
        ratio = notified.p99.median / max(alone.p99.median, 1e-9)
        self.add_latency(what, alone, goal_p99_ms, note)
        self.add_latency(
            what + ", notifier running",
            notified,
            goal_p99_ms,
            f"p99 {ratio:.2f}x the row above (same run); "
            f"{delivered} notifications delivered meanwhile",
        )

    # --- fixtures ----------------------------------------------------------------------------

    def make_recorders(self, count: int, tp_ticks: int | None = None) -> list[Recorder]:
        """A fresh bench user and its recorders; whatever an earlier figure left goes with the old
        user."""
        with db.transaction(self.sessions) as s:
            s.execute(delete(User).where(User.email == BENCH_EMAIL))
            user = User(email=BENCH_EMAIL, password_hash=hash_password(BENCH_PASSWORD))
            s.add(user)
            s.flush()
            recorders = [
                Recorder(
                    user_id=user.id,
                    name=f"bench {i}",
                    webhook_token=new_webhook_token(),
                    default_qty=Decimal(1),
                    on_opposite="reverse",
                    allow_dca=True,
                    enabled=True,
                    allow_delayed_exits=False,
                    tp_ticks=tp_ticks,
                    sl_ticks=tp_ticks and 400,
                )
                for i in range(count)
            ]
            s.add_all(recorders)
        for r in recorders:
            recorder_tokens.put(self.redis, self.settings, r)
        return recorders

    def bench_login(self) -> tuple[int, str, str]:
        """A fresh bench user with no recorders: its id, email and password."""
        self.make_recorders(0)
        with self.sessions() as s:
            user_id = s.query(User.id).filter(User.email == BENCH_EMAIL).scalar()
        return user_id, BENCH_EMAIL, BENCH_PASSWORD

    def drop_bench_user(self) -> None:
        with db.transaction(self.sessions) as s:
            s.execute(delete(User).where(User.email == BENCH_EMAIL))

    def engine(self) -> PositionEngine:
        sessions = db.make_sessionmaker(
            db.make_engine(self.settings.database_url, pre_ping=False)
        )  # as the service's
        eng = PositionEngine(self.settings, sessions, self.redis, consumer=f"bench-{os.getpid()}")
        eng.prepare()
        return eng

    # --- measurements ------------------------------------------------------------------------

    def raw_redis(self) -> tuple[float, float]:
        stream = self.settings.stream("raw")
        n = self.n(50_000)
        fields = TickMessage("MNQ", Decimal("25640.25"), streams.now_ms(), "bench").to_fields()
        start = time.perf_counter()
        pipe = self.redis.pipeline(transaction=False)
        for i in range(n):
            streams.add(pipe, stream, fields)
            if i % 500 == 499:
                pipe.execute()
        pipe.execute()
        xadd_rate = n / (time.perf_counter() - start)
        streams.ensure_group(self.redis, stream, "g")
        start = time.perf_counter()
        while True:
            got = streams.read_entries(
                self.redis.xreadgroup("g", "c", {stream: ">"}, count=ENGINE_BATCH)
            )
            if not got:
                break
            ids = [entry_id for entry_id, _ in got]
            self.redis.xack(stream, "g", *ids)
        read_rate = n / (time.perf_counter() - start)
        self._raw_read_rate = read_rate
        self.add(
            "Redis XADD, pipelined",
            f"{xadd_rate:,.0f}/s",
            "reference",
            None,
            numbers={"rate_per_s": round(xadd_rate)},
        )
        self.add(
            f"Redis XREADGROUP+XACK, batches of {ENGINE_BATCH} like the engine",
            f"{read_rate:,.0f}/s",
            "reference",
            None,
            "what the engine's tick rate is read against",
            numbers={"rate_per_s": round(read_rate)},
        )
        return xadd_rate, read_rate

    def wait_http(self, url: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not come up")

    def signal_to_position(self, recorder: Recorder) -> None:
        """Measured alone, then with the notifier running and a destination for every event."""
        alone = self._signals_to_positions(recorder)
        with notifier_running(self.settings, self.sessions, recorder.user_id) as receiver:
            notified = self._signals_to_positions(recorder)
        self.add_with_notifier(
            "Signal on stream -> position committed, p50 / p99 (50/s)",
            20,
            "until the signal.applied event; engine in its own process",
            alone,
            notified,
            len(receiver.received),
        )

    def _signals_to_positions(self, recorder: Recorder) -> Rounds:
        self.redis.delete(self.settings.stream(streams.SIGNALS))
        events = self.settings.stream(streams.EVENTS)
        with engine_process(self.settings):
            last = self.mark(events)

            def measure(count: int) -> list[float]:
                nonlocal last
                lat = []
                for i in range(count):
                    msg = mnq_signal(recorder.id, "buy" if i % 2 == 0 else "sell", "25640.25")
                    t = time.perf_counter()
                    _add(self.redis, self.settings.stream(streams.SIGNALS), msg)
                    last = self._wait_event(events, last, msg.signal_id)
                    lat.append((time.perf_counter() - t) * 1000)
                    time.sleep(max(0.0, 0.02 - (time.perf_counter() - t)))  # 50 signals/s
                return lat

            return self.rounds(measure, 500)

    def mark(self, events: str) -> str:
        """Add a bench.mark entry to `events`; its id is where a measurement starts reading."""
        return cast(str, self.redis.xadd(events, {"type": BENCH_MARK, "data": "{}"}))

    def _read_events(
        self, events: str, last: str, block_ms: int, count: int
    ) -> list[streams.Entry]:
        """Entries of `events` after `last`; an empty list if none came within `block_ms`."""
        return streams.read_entries(self.redis.xread({events: last}, block=block_ms, count=count))

    def _wait_event(self, events: str, last: str, signal_id: str) -> str:
        while True:
            got = self._read_events(events, last, block_ms=2000, count=100)
            if not got:
                raise RuntimeError("the engine did not apply a signal within 2 s")
            for entry_id, fields in got:
                last = entry_id
                if fields.get("type") in SIGNALS and signal_id in fields.get("data", ""):
                    return last

    def ticks_through_engine(self, raw_read_rate: float) -> None:
        recorders = self.make_recorders(50)
        sig_stream = self.settings.stream(streams.SIGNALS)
        pipe = self.redis.pipeline(transaction=False)
        for r in recorders:
            for sym in SYMBOLS:
                msg = SignalMessage(
                    str(uuid.uuid4()),
                    r.id,
                    "buy",
                    sym,
                    sym,
                    Decimal(100),
                    None,
                    None,
                    None,
                    0,
                    "{}",
                )
                _add(pipe, sig_stream, msg)
        pipe.execute()
        engine = self.engine()
        while engine.step(block_ms=None):
            pass
        n = (
            20_000 if self.quick else 50_000
        )  # fewer, and the first batch (every row written) weighs more
        tick_stream = self.settings.stream(streams.TICKS)
        pipe = self.redis.pipeline(transaction=False)
        for i in range(n):
            sym = SYMBOLS[i % len(SYMBOLS)]
            price = Decimal(100) + Decimal(i % 40 - 20) * Decimal("0.25")
            _add(pipe, tick_stream, TickMessage(sym, price, streams.now_ms(), "bench"))
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        start = time.perf_counter()
        while engine.step(block_ms=None):
            pass
        rate = n / (time.perf_counter() - start)
        share = rate / raw_read_rate
        self.add(
            "Ticks through the engine, 1,000 open positions on 20 symbols",
            f"{rate:,.0f}/s",
            ">= 50% of raw read",
            share >= 0.5,
            f"{share:.0%} of raw XREADGROUP+XACK",
            numbers={"rate_per_s": round(rate), "share_of_raw": round(share, 3)},
        )

    def tick_to_close(self, background_per_s: int = 5_000) -> None:
        """A tick through a take-profit → the position.closed event, while other symbols tick."""
        self.clean_streams()
        [recorder] = self.make_recorders(1, tp_ticks=4)
        events = self.settings.stream(streams.EVENTS)
        with (
            engine_process(self.settings),
            background_ticks(self.settings, background_per_s) as rate,
        ):
            last = self.mark(events)

            def measure(count: int) -> list[float]:
                nonlocal last
                lat = []
                for _ in range(count):
                    msg = mnq_signal(recorder.id, "buy", "25600")
                    _add(self.redis, self.settings.stream(streams.SIGNALS), msg)
                    last = self._wait_type(events, last, POSITION_OPENED)
                    t = time.perf_counter()
                    tick = TickMessage("MNQ", Decimal("25601.25"), streams.now_ms(), "bench")
                    _add(self.redis, self.settings.stream(streams.TICKS), tick)
                    last = self._wait_type(events, last, POSITION_CLOSED)
                    lat.append((time.perf_counter() - t) * 1000)
                return lat

            exits = self.rounds(measure, 300)
            reached = rate()
        self.add_latency(
            f"Tick -> position.closed event, p50 / p99, {background_per_s:,} other ticks/s",
            exits,
            10,
            f"{exits.samples} exits over {ROUNDS} rounds; background reached {reached:,.0f}/s; "
            "engine in its own process",
        )

    def _wait_type(self, events: str, last: str, event_type: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for entry_id, fields in self._read_events(events, last, block_ms=1000, count=500):
                last = entry_id
                if fields.get("type") == event_type:
                    return last
        raise RuntimeError(f"no {event_type} event within 5 s")

    def steps(self) -> list[Step]:
        """Each measurement in the order it runs, named by the rows it adds (`--only` matches
        a part of these names)."""
        return [
            ("Redis XADD, pipelined / Redis XREADGROUP+XACK", self.raw_redis),
            (
                "Reference: bare Flask view / Webhook accepted",
                lambda: WebhookBench(self).run(self.make_recorders(1)[0]),
            ),
            (
                "Signal on stream -> position committed",
                lambda: self.signal_to_position(self.make_recorders(1)[0]),
            ),
            (
                "Ticks through the engine",
                lambda: self.ticks_through_engine(self.raw_read_rate()),
            ),
            ("Tick -> position.closed event", self.tick_to_close),
            (
                "Signal on stream -> order accepted by the Tradovate simulator",
                lambda: ExecutionBench(self).signal_to_order(),
            ),
            (
                "Tick on stream -> stop moved at the Tradovate simulator",
                lambda: StopMoveBench(self).tick_to_stop_moved(),
            ),
            ("Limiter during a burst", lambda: ExecutionBench(self).burst_utilisation()),
            ("Event on jt:events -> Socket.IO client", lambda: LiveBench(self).event_to_browser()),
            (
                "Sustained signals through the engine, 10,000 recorders",
                lambda: SustainedBench(self).run(),
            ),
        ]

    def raw_read_rate(self) -> float:
        """The raw XREADGROUP+XACK rate of this run, measured (with its rows) if not yet."""
        if self._raw_read_rate is None:
            self.raw_redis()
        assert self._raw_read_rate is not None
        return self._raw_read_rate

    def run(self, only: str | None = None) -> None:
        """Every measurement, or with `only` those whose rows' names hold it (any case)."""
        self.load_at_start = os.getloadavg()[0]
        self.other_work = OtherWork()
        self.clean_streams()
        chosen = only_steps(self.steps(), only)
        if not chosen:
            raise SystemExit(f"no bench row's name holds {only!r}")
        try:
            for _, step in chosen:
                step()
        finally:
            self.drop_bench_user()
            self.clean_streams()
        self.print_table()

    def print_table(self) -> None:
        database = (self.settings.database_url or "").split("@")[-1]
        redis_at = (self.settings.redis_url or "").split("@")[-1]
        if self.as_json:
            machine = Machine(os.cpu_count() or 1, self.load_at_start, database, redis_at)
            print(render_json(self.rows, machine))
            return
        servers = f"servers: {database}, {redis_at}"
        load = (
            f"1-minute load average when the bench started: {self.load_at_start:.2f} "
            "(other work on these cores weighs on every figure)"
        )
        print(render(self.rows, [servers, *NOTES, load]))


Step = tuple[str, Callable[[], object]]  # a measurement, named by the rows it adds


def only_steps(steps: list[Step], only: str | None) -> list[Step]:
    """The steps whose name holds `only` (any case); all of them without it."""
    return [s for s in steps if only is None or only.lower() in s[0].lower()]


# What the figures share, printed under the table.
NOTES = (
    "Every client (HTTP, Socket.IO, the tick and signal writers) runs on the same cores as Redis,",
    "PostgreSQL and the service it measures: a client's CPU is taken from the server it times.",
    "'others': the CPU of every process outside the bench and the services it started (the Redis",
    "and PostgreSQL servers among them) while a row was measured, as a share of all cores; much",
    "more than the servers' own share means other work on the machine weighed on that row.",
)


def run_bench(
    settings: Settings, quick: bool = False, as_json: bool = False, only: str | None = None
) -> None:
    """Measure every row (or, with `only`, the rows whose names hold it), then print the table
    (or, with `as_json`, the table as JSON)."""
    logging.getLogger("position_engine").setLevel(logging.WARNING)  # one line per signal otherwise
    Bench(settings, quick, as_json).run(only)
