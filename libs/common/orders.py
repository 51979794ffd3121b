"""The hand-over of order intents from the engine (and the UI) to the executor's RQ queues.

Exits and flattens go to their own queue, which workers take before entries. A job drains every
queued intent of one subaccount in sequence, so several jobs for one subaccount are harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from rq import Queue

QUEUE_EXITS = "exits"
QUEUE_ENTRIES = "entries"
QUEUES = (QUEUE_EXITS, QUEUE_ENTRIES)  # the order workers take them in
DRAIN_JOB = "services.executor.jobs.drain_subaccount"


@dataclass(frozen=True)
class QueuedIntent:
    intent_id: uuid.UUID
    subaccount_id: int
    priority: str  # exit | entry


def queue_name(prefix: str, priority: str) -> str:
    return f"{prefix}{QUEUE_EXITS if priority == 'exit' else QUEUE_ENTRIES}"


def rq_connection(redis_url: str) -> redis.Redis:
    """RQ stores pickled jobs, so it needs a connection that does not decode responses."""
    return redis.Redis.from_url(redis_url)


def enqueue(conn: redis.Redis, prefix: str, intents: Iterable[QueuedIntent]) -> None:
    """One drain job per intent; its id names the intent, for the logs and for RQ's own views."""
    for intent in intents:
        Queue(queue_name(prefix, intent.priority), connection=conn).enqueue(
            DRAIN_JOB,
            intent.subaccount_id,
            job_id=f"intent-{intent.intent_id}",
            result_ttl=3600,
            failure_ttl=86_400,
            job_timeout=120,
        )
