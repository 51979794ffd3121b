"""The `notifications` RQ queue: one job per notice and destination, sent with retries and
backoff (NOTIFY_RETRY_INTERVALS) and the outcome recorded on the destination.

Jobs travel as JSON and a worker runs only `deliver` (`NotifyJob`): whoever can write to Redis
must not be able to make a worker run a function of their choosing. The process that works the
queue (the notifier) calls `configure` first with its settings and database sessions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job, get_current_job
from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import Settings
from libs.common.notify import senders
from libs.common.rq_jobs import JSONSerializer, OwnJob
from libs.common.security import SecretBox
from libs.common.storage.models import NotificationDestination, utcnow

log = logging.getLogger(__name__)

QUEUE = "notifications"
__all__ = ["JSONSerializer", "NotifyJob", "configure", "deliver", "enqueue", "notify_queue"]
JOB_FUNCTIONS = frozenset({"libs.common.notify.delivery.deliver"})


class NotifyJob(OwnJob):
    """An RQ job that runs only `deliver`."""

    functions = JOB_FUNCTIONS


def notify_queue(conn: redis.Redis, prefix: str) -> Queue:
    """The queue as every producer and worker must see it: JSON job data and NotifyJob."""
    return Queue(prefix + QUEUE, connection=conn, job_class=NotifyJob, serializer=JSONSerializer)


def enqueue(
    conn: redis.Redis, settings: Settings, destination_id: int, event: str, data: dict[str, Any]
) -> Job:
    intervals = list(settings.notify_retry_intervals)
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None
    plain = json.loads(json.dumps(data, default=str))  # what JSON keeps of it, decimals as text
    return notify_queue(conn, settings.stream_prefix).enqueue(
        deliver,
        destination_id,
        event,
        plain,
        retry=retry,
        result_ttl=3600,
        failure_ttl=86_400,
        job_timeout=120,
    )


@dataclass
class DeliveryContext:
    settings: Settings
    sessions: sessionmaker[Session]


_context: DeliveryContext | None = None


def configure(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Make this process's workers deliver with these settings and database sessions."""
    global _context
    _context = DeliveryContext(settings, sessions)


def deliver_now(
    settings: Settings,
    session: Session,
    dest: NotificationDestination,
    event: str,
    data: dict[str, Any],
    retry_note: str = "",
) -> str | None:
    """Send one notice to `dest` and record the outcome on it (the caller commits); the error,
    or None when delivered."""
    box = SecretBox(settings.encryption_key)
    target = json.loads(box.decrypt(dest.target_sealed))
    secret = box.decrypt(dest.secret_sealed) if dest.secret_sealed else None
    dest.last_delivery_at, dest.last_delivery_event = utcnow(), event
    try:
        senders.send(settings, dest.kind, target, secret, event, data)
    except senders.DeliveryFailed as exc:
        dest.last_delivery_ok, dest.last_delivery_error = False, f"{exc}{retry_note}"
        dest.deliveries_failed += 1
        return str(exc)
    dest.last_delivery_ok, dest.last_delivery_error = True, None
    dest.deliveries_ok += 1
    return None


def _retry_note(settings: Settings) -> str:
    job = get_current_job()
    left = job.retries_left if job is not None and job.retries_left else 0
    tries = len(settings.notify_retry_intervals) + 1
    if left:
        wait = settings.notify_retry_intervals[tries - 1 - left]
        return f" (try {tries - left} of {tries}; retrying in {wait} s)"
    return f" (gave up after {tries} {'try' if tries == 1 else 'tries'})"


def deliver(destination_id: int, event: str, data: dict[str, Any]) -> str:
    """RQ job: send the notice to the destination; raise on failure so RQ retries it."""
    ctx = _context
    if ctx is None:
        raise RuntimeError(
            "no notifier is set up in this process: run `python -m services.notifier`"
        )
    with ctx.sessions() as session:
        dest = session.get(NotificationDestination, destination_id)
        if dest is None or not dest.enabled or event not in [*dest.events, "test"]:
            return "skipped"
        error = deliver_now(ctx.settings, session, dest, event, data, _retry_note(ctx.settings))
        session.commit()
    kv = {"destination_id": destination_id, "kind": dest.kind, "event": event}
    if error is not None:
        log.warning("notification failed", extra={"kv": {**kv, "error": error}})
        raise senders.DeliveryFailed(error)
    log.info("notification delivered", extra={"kv": kv})
    return "delivered"
