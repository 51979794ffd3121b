"""What runs beside the latency figures in processes of its own, so that no client waits on the
GIL of what it measures: the position engine, as in production (minus the service's leader lock:
the bench's streams have a prefix of their own, and an installation's engine may hold the lock on
the same database), and a steady writer of background ticks."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

import redis

from libs.common import streams
from libs.common.config import Settings
from libs.common.storage import db
from libs.common.streams import SignalMessage, TickMessage
from services.position_engine.engine import PositionEngine

START_TIMEOUT_S = 30.0
BACKGROUND_SYMBOLS = (
    "ES",
    "MES",
    "NQ",
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
    "HG",
    "ZB",
    "ZN",
    "6E",
    "6J",
)


def mnq_signal(recorder_id: int, action: str, price: str) -> SignalMessage:
    """A signal of `recorder_id` on MNQ1! as the gateway writes it."""
    return SignalMessage(
        str(uuid.uuid4()),
        recorder_id,
        action,
        "MNQ1!",
        "MNQ",
        Decimal(price),
        None,
        None,
        None,
        streams.now_ms(),
        "{}",
    )


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a service started by the bench: the bench's servers and stream prefix."""
    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        JT_STREAM_PREFIX=settings.stream_prefix,
        LOG_LEVEL="WARNING",
        JT_VAR_DIR=str(settings.var_dir),
        ENCRYPTION_KEY=settings.encryption_key,
        SECRET_KEY=settings.secret_key,
    )
    env.update(extra)
    return env


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets a worker finish its job; a job waiting on the budget may take long."""
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def prepared_engine(settings: Settings) -> PositionEngine:
    """A position engine on the bench's servers, in the process that calls it, prepared to read
    its streams."""
    logging.getLogger("position_engine").setLevel(logging.WARNING)  # one line per signal otherwise
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    sessions = db.make_sessionmaker(
        db.make_engine(settings.database_url, pre_ping=False)
    )  # as the service's
    engine = PositionEngine(settings, sessions, client, consumer=f"bench-{os.getpid()}")
    engine.prepare()
    return engine


def _run(settings: Settings, ready: Event, stop: Event) -> None:
    engine = prepared_engine(settings)
    ready.set()
    engine.run_forever(stop=stop.is_set)


@contextmanager
def engine_process(settings: Settings) -> Iterator[None]:
    """An engine reading the bench's streams until the block ends."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(target=_run, args=(settings, ready, stop), daemon=True)
    process.start()
    try:
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the bench's engine process did not start")
        yield
    finally:
        stop.set()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


def _write_ticks(
    settings: Settings, per_s: int, started_event: Event, stop: Event, rate: Synchronized[float]
) -> None:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    stream = settings.stream(streams.TICKS)
    chunk = max(1, per_s // 100)  # a pipelined chunk every 10 ms
    started, sent = time.monotonic(), 0
    while not stop.is_set():
        pipe = client.pipeline(transaction=False)
        for i in range(chunk):
            symbol = BACKGROUND_SYMBOLS[(sent + i) % len(BACKGROUND_SYMBOLS)]
            tick = TickMessage(symbol, Decimal(100), streams.now_ms(), "bg")
            streams.add(pipe, stream, tick.to_fields())
        pipe.execute()
        sent += chunk
        started_event.set()
        time.sleep(max(0.0, started + sent / per_s - time.monotonic()))
        rate.value = sent / (time.monotonic() - started)


@contextmanager
def background_ticks(settings: Settings, per_s: int) -> Iterator[Callable[[], float]]:
    """Ticks of other symbols at `per_s` until the block ends; yields how to read its rate."""
    context = multiprocessing.get_context("spawn")
    started, stop, rate = context.Event(), context.Event(), context.Value("d", 0.0)
    process = context.Process(
        target=_write_ticks, args=(settings, per_s, started, stop, rate), daemon=True
    )
    process.start()
    try:
        if not started.wait(START_TIMEOUT_S):
            raise RuntimeError("the bench's tick writer did not start")
        time.sleep(1.0)  # at its pace before the first figure
        yield lambda: rate.value
    finally:
        stop.set()
        process.join(5)
        if process.is_alive():
            process.kill()
