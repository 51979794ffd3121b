"""Runs the engine as a process: one active copy at a time, a health endpoint, clean stop."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from sqlalchemy import text

from libs.common import db, streams
from libs.common.config import Settings
from services.position_engine.engine import PositionEngine

log = logging.getLogger("position_engine")
LEADER_LOCK = 727_002  # PostgreSQL advisory lock held by the active engine


def health(engine: PositionEngine, active: threading.Event) -> dict:
    stats = engine.stats
    pending = {}
    for name in (streams.SIGNALS, streams.TICKS):
        try:
            info = engine.redis.xpending(engine.settings.stream(name), streams.ENGINE_GROUP)
            pending[name] = info["pending"]
        except redis.RedisError:
            pending[name] = None
    return {
        "ok": active.is_set(),
        "active": active.is_set(),
        "consumer": engine.consumer,
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


def start_health_server(port: int, engine: PositionEngine, active: threading.Event) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path not in ("/healthz", "/status"):
                self.send_error(404)
                return
            body = health(engine, active)
            data = json.dumps(body).encode()
            self.send_response(200 if body["ok"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="engine-health").start()
    return server


def run(settings: Settings) -> None:
    sql = db.make_engine(settings.database_url)
    sessions = db.make_sessionmaker(sql)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    engine = PositionEngine(settings, sessions, client)
    stopping = threading.Event()
    active = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server = start_health_server(settings.engine_port, engine, active)
    log.info("engine starting", extra={"kv": {"consumer": engine.consumer, "port": settings.engine_port}})
    with sql.connect() as lock_conn:
        # Only one engine applies entries at a time, so ticks reach each position in order;
        # a second copy waits here as a hot standby and takes over when the first one dies.
        while not stopping.is_set():
            got = lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK}).scalar()
            lock_conn.commit()
            if got:
                break
            time.sleep(1.0)
        if not stopping.is_set():
            active.set()
            log.info("engine active", extra={"kv": {"consumer": engine.consumer}})
            engine.run_forever(stop=stopping.is_set)
    server.shutdown()
    client.close()
    sql.dispose()
    log.info("engine stopped")
