"""Runs the engine as a process: one active copy at a time, health and metrics endpoints, and a
clean stop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import ThreadingHTTPServer

import redis
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from libs.common import partitions, redis_conn, streams
from libs.common.config import Settings
from libs.common.metrics import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS, ScrapeCollector
from libs.common.status_server import json_route, metrics_route, start_status_server
from libs.common.storage import db
from services.position_engine.engine import LostLead, PositionEngine

log = logging.getLogger("position_engine")


def health(engine: PositionEngine, active: threading.Event) -> dict:
    stats = engine.stats
    pending = {}
    for name in (streams.SIGNALS, streams.TICKS):
        try:
            info = engine.redis.xpending(engine.settings.own_key(name), streams.ENGINE_GROUP)
            pending[name] = info["pending"]
        except redis.RedisError:
            pending[name] = None
    return {
        "ok": active.is_set(),
        "active": active.is_set(),
        "consumer": engine.consumer,
        "partition": engine.partition,
        "partitions": engine.settings.engine_partitions,
        "batches": stats.batches,
        "signals": stats.signals,
        "ticks": stats.ticks,
        "exits": stats.exits,
        "rejected_entries": stats.rejected_entries,
        "last_batch_at": stats.last_batch_at or None,
        "last_batch_size": stats.last_batch_size,
        "last_batch_ms": round(stats.last_batch_ms, 2),
        "pending": pending,
    }


LAG_COUNT_CAP = 10_000  # Redis < 7 has no lag in XINFO GROUPS: count unread entries up to this


def _id_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def _unread(engine: PositionEngine, key: str, group: dict) -> int:
    if group.get("lag") is not None:
        return group["lag"]
    after = "(" + group["last-delivered-id"]
    return len(engine.redis.xrange(key, min=after, max="+", count=LAG_COUNT_CAP) or [])


def stream_metrics(engine: PositionEngine) -> Iterator[Metric]:
    """Lag (entries the group has not read, and how far behind in time) and pending (read, not
    acknowledged) for each stream the engine reads, asked of Redis at scrape time."""
    lag = GaugeMetricFamily(
        "jt_stream_lag", "Entries the engine's group has not read yet.", labels=["stream"]
    )
    lag_s = GaugeMetricFamily(
        "jt_stream_lag_seconds", "Newest entry's time minus the last read one's.", labels=["stream"]
    )
    pending = GaugeMetricFamily(
        "jt_stream_pending", "Entries read but not acknowledged.", labels=["stream"]
    )
    for name in (streams.SIGNALS, streams.TICKS):
        key = engine.settings.own_key(name)
        try:
            groups = engine.redis.xinfo_groups(key)
            last_id = engine.redis.xinfo_stream(key)["last-generated-id"]
        except redis.ResponseError:  # no stream yet: nothing waits
            continue
        group = next((g for g in groups if g["name"] == streams.ENGINE_GROUP), None)
        if group is None:
            continue
        pending.add_metric([key], group["pending"])
        lag.add_metric([key], _unread(engine, key, group))
        lag_s.add_metric([key], max(0, _id_ms(last_id) - _id_ms(group["last-delivered-id"])) / 1000)
    yield from (lag, lag_s, pending)


def stats_metrics(engine: PositionEngine, active: threading.Event) -> Iterator[Metric]:
    stats = engine.stats
    for name, value, doc in (
        ("jt_engine_signals", stats.signals, "Signals applied."),
        ("jt_engine_ticks", stats.ticks, "Ticks read."),
        ("jt_engine_exits", stats.exits, "Positions closed by a tick (take profit, stop loss)."),
        (
            "jt_engine_rejected_entries",
            stats.rejected_entries,
            "Malformed or refused stream entries.",
        ),
        ("jt_engine_batches", stats.batches, "Batches applied."),
    ):
        yield CounterMetricFamily(name, doc, value=value)
    yield GaugeMetricFamily(
        "jt_engine_active", "1 when this copy holds the leader lock.", value=int(active.is_set())
    )


def engine_registry(engine: PositionEngine, active: threading.Event) -> CollectorRegistry:
    """The engine's metrics; batch histograms are fed by the engine's `on_batch` hook."""
    registry = CollectorRegistry()
    sizes = Histogram(
        "jt_engine_batch_size",
        "Entries per applied batch.",
        buckets=BATCH_SIZE_BUCKETS,
        registry=registry,
    )
    seconds = Histogram(
        "jt_engine_batch_seconds",
        "Time to apply and publish one batch.",
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )

    def on_batch(size: int, took_s: float) -> None:
        sizes.observe(size)
        seconds.observe(took_s)

    engine.on_batch = on_batch
    registry.register(ScrapeCollector(lambda: stats_metrics(engine, active), "engine stats"))
    registry.register(ScrapeCollector(lambda: stream_metrics(engine), "stream lag"))
    return registry


def start_health_server(
    port: int, engine: PositionEngine, active: threading.Event
) -> ThreadingHTTPServer:
    """`/healthz` and `/status` (503 while standing by) and `/metrics` on `port`."""
    health_json = json_route(lambda: health(engine, active), lambda body: body["ok"])
    routes = {
        "/healthz": health_json,
        "/status": health_json,
        "/metrics": metrics_route(engine_registry(engine, active)),
    }
    return start_status_server(port, routes, "engine-health", engine.settings.internal_host)


LEAD_GRACE_S = 1.0  # after taking the lock, longer than a lost leader takes to notice (engine.py)
LEAD_BACKOFF_S = 3.0  # after losing it: a standby (asking every second) gets it first


class LeaderLock:
    """The PostgreSQL advisory lock that makes one engine the active one, on a connection of its
    own: a session lock lasts as long as that connection, and a restarted server drops it."""

    def __init__(self, sql: Engine, partition: int = 0):
        self.sql = sql
        self.key = db.engine_leader_lock(partition)
        self.conn: Connection | None = None

    def acquire(self, stopping: threading.Event) -> bool:
        """Wait for the lock (a hot standby waits here); False when asked to stop first."""
        while not stopping.is_set():
            try:
                if self.conn is None:
                    self.conn = self.sql.connect()
                got = self.conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
                ).scalar()
                self.conn.commit()
                if got:
                    return True
            except DBAPIError:
                self.release()  # PostgreSQL is away: a new connection next time
            stopping.wait(1.0)
        return False

    def held(self) -> bool:
        """True while our connection is alive and still holds the lock."""
        if self.conn is None:
            return False
        try:
            held = self.conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND objid = :k AND pid = pg_backend_pid() AND granted)"
                ),
                {"k": self.key},
            ).scalar()
            self.conn.commit()
            return bool(held)
        except DBAPIError:
            return False

    def release(self) -> None:
        """Let go of the connection, and the lock with it if the connection is still alive."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                conn.invalidate()  # closed for good, not returned to the pool holding the lock
                conn.close()
            except DBAPIError:
                pass


def run(settings: Settings) -> None:
    k, n = settings.engine_partition, settings.engine_partitions
    if not 0 <= k < n:
        raise SystemExit(
            f"engine partition {k} does not exist: ENGINE_PARTITIONS={n} gives partitions "
            f"0 to {n - 1}"
        )
    # Partition K's engine serves its health and metrics on ENGINE_PORT + K.
    settings = replace(settings, engine_port=settings.engine_port + k)
    sql = db.make_engine(settings.database_url, pre_ping=False)
    sessions = db.make_sessionmaker(sql)
    client = redis_conn.connect(settings.redis_url, decode_responses=True)
    try:
        partitions.check(client, settings)  # before anything else: refuse on a mismatch
    except partitions.PartitionMismatch as exc:
        client.close()
        raise SystemExit(f"engine not started: {exc}") from None
    engine = PositionEngine(settings, sessions, client)
    stopping = threading.Event()
    active = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server = start_health_server(settings.engine_port, engine, active)
    log.info(
        "engine starting",
        extra={
            "kv": {
                "consumer": engine.consumer,
                "port": settings.engine_port,
                "partition": f"{settings.engine_partition}/{settings.engine_partitions}",
            }
        },
    )
    lock = LeaderLock(sql, settings.engine_partition)
    engine.still_leading = lock.held
    # Only one engine applies entries at a time, so ticks reach each position in order; another
    # copy waits as a hot standby and takes over when the active one dies or loses the lock.
    while lock.acquire(stopping):
        stopping.wait(LEAD_GRACE_S)  # a leader that lost the lock a moment ago stops first
        if stopping.is_set():
            break
        active.set()
        log.info("engine active", extra={"kv": {"consumer": engine.consumer}})
        lost = False
        try:
            engine.run_forever(stop=stopping.is_set)
        except LostLead:
            log.warning(
                "leader lock lost; standing by", extra={"kv": {"consumer": engine.consumer}}
            )
            lost = True
        finally:
            active.clear()
            lock.release()
        if lost:
            stopping.wait(LEAD_BACKOFF_S)
    lock.release()  # asked to stop while waiting: the connection, if any
    server.shutdown()
    client.close()
    sql.dispose()
    log.info("engine stopped")
