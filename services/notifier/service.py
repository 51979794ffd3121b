"""Runs the notifier as a process: the event relay (its own consumer group on `jt:events`), the
daily summary clock, and an RQ worker of the `notifications` queue with RQ's scheduler for the
retries' backoff. Its own process, so a slow SMTP server never holds an order worker."""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from rq.worker import SimpleWorker

from libs.common import orders, redis_conn
from libs.common.config import Settings
from libs.common.notify import delivery
from libs.common.storage import db
from services.notifier.relay import EventRelay
from services.notifier.summary import run_summaries

log = logging.getLogger("notifier")


def worker(settings: Settings, rq_conn: redis.Redis, name: str) -> SimpleWorker:
    queue = delivery.notify_queue(rq_conn, settings.stream_prefix)
    return SimpleWorker(
        [queue],
        connection=rq_conn,
        name=name,
        job_class=delivery.NotifyJob,
        serializer=delivery.JSONSerializer,
    )


def run(settings: Settings) -> None:
    sessions = db.make_sessionmaker(db.make_engine(settings.database_url, pool_size=2))
    delivery.configure(settings, sessions)
    client = redis_conn.connect(settings.redis_url, decode_responses=True)
    rq_conn = orders.rq_connection(settings.queue_url)
    name = f"{socket.gethostname()}-{os.getpid()}"
    stop = threading.Event()
    relay = EventRelay(settings, sessions, client, rq_conn, name)
    threading.Thread(target=relay.run, args=(stop,), daemon=True, name="notify-relay").start()
    threading.Thread(
        target=run_summaries,
        args=(settings, sessions, client, rq_conn, stop),
        daemon=True,
        name="daily-summary",
    ).start()
    log.info("notifier starting", extra={"kv": {"queue": settings.stream_prefix + delivery.QUEUE}})
    try:
        worker(settings, rq_conn, f"notifier-{name}").work(
            with_scheduler=True, logging_level=settings.log_level
        )
    finally:
        stop.set()
        log.info("notifier stopped")
