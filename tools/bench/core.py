"""`justtrades bench`: latency and throughput of the signal path, printed as one table.

Everything runs against the configured (or embedded) servers under the stream prefix `jtbench:`
and a throw-away bench user, so a running installation's streams and data are left alone.
Each figure is shown beside its goal; throughput is read against raw Redis rates measured in the
same run. Clients, servers and the services measured share this machine's cores: the notes say
where that weighs on a figure.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
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
from libs.common.storage.embedded import free_port
from libs.common.storage.models import Recorder, User
from libs.common.streams import SignalMessage, TickMessage
from services.position_engine.engine import PositionEngine
from tools.bench.execution import ExecutionBench
from tools.bench.live import LiveBench
from tools.bench.machine import OtherWork
from tools.bench.notifier import notifier_running
from tools.bench.processes import background_ticks, engine_process, mnq_signal
from tools.bench.stop_moves import StopMoveBench
from tools.bench.table import Row, pct, render

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
    def __init__(self, settings: Settings, quick: bool):
        self.settings = replace(settings, stream_prefix="jtbench:")
        self.quick = quick
        self.redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        self.sessions = db.make_sessionmaker(db.make_engine(settings.database_url))
        self.rows: list[Row] = []
        self.load_at_start = os.getloadavg()[0]
        self.other_work = OtherWork()

    pct = staticmethod(pct)

    def n(self, full: int) -> int:
        return max(50, full // 10) if self.quick else full

    def clean_streams(self) -> None:
        keys = list(self.redis.scan_iter(match="jtbench:*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def add(self, what: str, value: str, goal: str, met: bool | None, note: str = "") -> None:
        """One row; its note ends with how much CPU other processes took while it was measured."""
        others = self.other_work.since_last()
        if others is not None:
            note = (
                f"{note}; others used {others:.0%} of the cores"
                if note
                else f"others used {others:.0%} of the cores"
            )
        self.rows.append(Row(what, value, goal, met, note))
        print(f"  measured: {what}: {value} (goal {goal})", file=sys.stderr, flush=True)

    def add_with_notifier(
        self,
        what: str,
        goal_p99_ms: float,
        note: str,
        alone: list[float],
        notified: list[float],
        delivered: int,
    ) -> None:
        """Two latency rows: measured alone, then with the notifier running (ratio in its note)."""
        ratio = pct(notified, 99) / max(pct(alone, 99), 1e-9)
        for latencies, label, row_note in (
            (alone, "", note),
            (
                notified,
                ", notifier running",
                f"p99 {ratio:.2f}x the row above (same run); "
                f"{delivered} notifications delivered meanwhile",
            ),
        ):
            p99 = pct(latencies, 99)
            self.add(
                what + label,
                f"{pct(latencies, 50):.2f} / {p99:.2f} ms",
                f"p99 <= {goal_p99_ms:g} ms",
                p99 <= goal_p99_ms,
                row_note,
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
            recorder_tokens.put(self.redis, self.settings.stream_prefix, r)
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
        self.add("Redis XADD, pipelined", f"{xadd_rate:,.0f}/s", "reference", None)
        self.add(
            f"Redis XREADGROUP+XACK, batches of {ENGINE_BATCH} like the engine",
            f"{read_rate:,.0f}/s",
            "reference",
            None,
            "what the engine's tick rate is read against",
        )
        return xadd_rate, read_rate

    def webhook(self, recorder: Recorder) -> None:
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=self.settings.database_url,
            REDIS_URL=self.settings.redis_url,
            JT_STREAM_PREFIX=self.settings.stream_prefix,
            GATEWAY_PORT=str(port),
            GATEWAY_METRICS_PORT=str(free_port()),  # beside, not on, a running installation's
            WEBHOOK_RATE_LIMIT="1000000",
            LOG_LEVEL="WARNING",
            JT_VAR_DIR=str(self.settings.var_dir),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        path = f"/webhook/{recorder.webhook_token}"
        body = json.dumps({"action": "buy", "ticker": "MNQ1!", "price": 25640.25}).encode()
        # http.client with a kept-alive connection per thread: a client as lean as the standard
        # library allows, since every cycle it spends is taken from the gateway on these cores.
        local = threading.local()

        def post(_: int = 0) -> float:
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            t = time.perf_counter()
            local.conn.request("POST", path, body)
            answer = local.conn.getresponse()
            text = answer.read()
            assert answer.status == 202, text
            return (time.perf_counter() - t) * 1000

        try:
            self.wait_http(f"http://127.0.0.1:{port}/healthz")
            for _ in range(50):
                post()
            lat = [post() for _ in range(self.n(2_000))]
            p99 = pct(lat, 99)
            self.add(
                "Webhook accepted, one at a time, p50 / p99",
                f"{pct(lat, 50):.2f} / {p99:.2f} ms",
                "p99 <= 5 ms",
                p99 <= 5,
                "HTTP client on the same cores",
            )
            total = self.n(8_000)
            start, cpu = time.perf_counter(), time.process_time()
            with ThreadPoolExecutor(16) as pool:
                lat16 = list(pool.map(post, range(total)))
            took = time.perf_counter() - start
            rate, client = total / took, (time.process_time() - cpu) / took
            p99 = pct(lat16, 99)
            self.add(
                "Webhook accepted, 16 concurrent: throughput, p99",
                f"{rate:,.0f}/s, {p99:.1f} ms",
                ">= 1,500/s, p99 <= 25 ms",
                rate >= 1_500 and p99 <= 25,
                f"the 16 client threads alone used {client:.0%} of a core",
            )
        finally:
            proc.terminate()
            proc.wait(10)

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

    def _signals_to_positions(self, recorder: Recorder) -> list[float]:
        self.redis.delete(self.settings.stream(streams.SIGNALS))
        events = self.settings.stream(streams.EVENTS)
        lat = []
        with engine_process(self.settings):
            last = self.mark(events)
            for i in range(self.n(500)):
                msg = mnq_signal(recorder.id, "buy" if i % 2 == 0 else "sell", "25640.25")
                sid = msg.signal_id
                t = time.perf_counter()
                _add(self.redis, self.settings.stream(streams.SIGNALS), msg)
                last = self._wait_event(events, last, sid)
                lat.append((time.perf_counter() - t) * 1000)
                time.sleep(max(0.0, 0.02 - (time.perf_counter() - t)))  # 50 signals/s
        return lat

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
        )

    def tick_to_close(self, background_per_s: int = 5_000) -> None:
        """A tick through a take-profit → the position.closed event, while other symbols tick."""
        self.clean_streams()
        [recorder] = self.make_recorders(1, tp_ticks=4)
        events = self.settings.stream(streams.EVENTS)
        lat = []
        with (
            engine_process(self.settings),
            background_ticks(self.settings, background_per_s) as rate,
        ):
            last = self.mark(events)
            for _ in range(self.n(300)):
                msg = SignalMessage(
                    str(uuid.uuid4()),
                    recorder.id,
                    "buy",
                    "MNQ1!",
                    "MNQ",
                    Decimal("25600"),
                    None,
                    None,
                    None,
                    streams.now_ms(),
                    "{}",
                )
                _add(self.redis, self.settings.stream(streams.SIGNALS), msg)
                last = self._wait_type(events, last, POSITION_OPENED)
                t = time.perf_counter()
                tick = TickMessage("MNQ", Decimal("25601.25"), streams.now_ms(), "bench")
                _add(self.redis, self.settings.stream(streams.TICKS), tick)
                last = self._wait_type(events, last, POSITION_CLOSED)
                lat.append((time.perf_counter() - t) * 1000)
            reached = rate()
        p99 = pct(lat, 99)
        self.add(
            f"Tick -> position.closed event, p50 / p99, {background_per_s:,} other ticks/s",
            f"{pct(lat, 50):.2f} / {p99:.2f} ms",
            "p99 <= 10 ms",
            p99 <= 10,
            f"{len(lat)} exits; background reached {reached:,.0f}/s; engine in its own process",
        )

    def _wait_type(self, events: str, last: str, event_type: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for entry_id, fields in self._read_events(events, last, block_ms=1000, count=500):
                last = entry_id
                if fields.get("type") == event_type:
                    return last
        raise RuntimeError(f"no {event_type} event within 5 s")

    def run(self) -> None:
        self.load_at_start = os.getloadavg()[0]
        self.other_work = OtherWork()
        self.clean_streams()
        try:
            _, read_rate = self.raw_redis()
            [recorder] = self.make_recorders(1)
            self.webhook(recorder)
            self.signal_to_position(recorder)
            self.ticks_through_engine(read_rate)
            self.tick_to_close()
            execution = ExecutionBench(self)
            execution.signal_to_order()
            StopMoveBench(self).tick_to_stop_moved()
            execution.burst_utilisation()
            LiveBench(self).event_to_browser()
        finally:
            self.drop_bench_user()
            self.clean_streams()
        self.print_table()

    def print_table(self) -> None:
        servers = (
            f"servers: {self.settings.database_url.split('@')[-1]}, "
            f"{self.settings.redis_url.split('@')[-1]}"
        )
        load = (
            f"1-minute load average when the bench started: {self.load_at_start:.2f} "
            "(other work on these cores weighs on every figure)"
        )
        print(render(self.rows, [servers, *NOTES, load]))


# What the figures share, printed under the table.
NOTES = (
    "Every client (HTTP, Socket.IO, the tick and signal writers) runs on the same cores as Redis,",
    "PostgreSQL and the service it measures: a client's CPU is taken from the server it times.",
    "'others': the CPU of every process outside the bench and the services it started (the Redis",
    "and PostgreSQL servers among them) while a row was measured, as a share of all cores; much",
    "more than the servers' own share means other work on the machine weighed on that row.",
)


def run_bench(settings: Settings, quick: bool = False) -> None:
    logging.getLogger("position_engine").setLevel(logging.WARNING)  # one line per signal otherwise
    Bench(settings, quick).run()
