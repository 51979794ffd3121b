"""The hand-over of order intents from the engine (and the UI) to the executor's RQ queues, and
the one way to write a new intent row (`new_intent`, with its `jt-…` client order id).

Exits and flattens go to their own queue, which workers take before entries. A job drains every
queued intent of one subaccount in sequence, so several jobs for one subaccount are harmless.

The job is this module's `drain_subaccount`, enqueued by reference (RQ stores its dotted path), so
a renamed job function fails at import time rather than in a worker. libs/common never imports
`services`: the executor registers the function that does the work (`register_drain`) when it
sets up its process (services.executor.jobs.use_context, which its service and tests call
before a worker runs); a job that reaches a process where nothing registered fails with a
plain error, and the intent waits for the executor's sweep to enqueue it again.

Jobs travel as JSON, never pickles, and a worker runs only the drain job (`OrderJob`): whoever
can write to Redis must not be able to make the executor run a function of their choosing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from libs.common import redis_conn
from libs.common.rq_jobs import OwnJob
from libs.common.storage.models import OrderIntent

QUEUE_EXITS = "exits"
QUEUE_ENTRIES = "entries"
QUEUES = (QUEUE_EXITS, QUEUE_ENTRIES)  # the order workers take them in

# The only functions an executor runs: the drain job, under its name and the one jobs queued
# before it moved here still carry.
JOB_FUNCTIONS = frozenset(
    {"libs.common.orders.drain_subaccount", "services.executor.jobs.drain_subaccount"}
)

DrainHandler = Callable[[int], int]  # subaccount id -> intents sent
_drain_handler: DrainHandler | None = None


@dataclass(frozen=True)
class QueuedIntent:
    intent_id: uuid.UUID
    subaccount_id: int
    priority: str  # exit | entry


def client_order_id(intent_id: uuid.UUID) -> str:
    """The id the broker sees: fixed by the intent's id, so a send retried after a crash carries
    the same one and the broker can be asked whether it already has it (at-most-once sending)."""
    return f"jt-{intent_id.hex[:24]}"


def new_intent(
    *,
    user_id: int,
    subaccount_id: int,
    source: str,
    kind: str,
    side: str,
    symbol: str,
    ticker: str | None,
    quantity: Decimal,
    priority: str,
    trader_id: int | None = None,
    signal_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    order_type: str = "market",
    limit_price: Decimal | None = None,
    tp_price: Decimal | None = None,
    sl_price: Decimal | None = None,
    targets: dict[str, Any] | None = None,
    position_quantity: Decimal | None = None,
) -> OrderIntent:
    """A queued intent with a fresh id and its client order id; the caller adds it to a session."""
    intent_id = uuid.uuid4()
    return OrderIntent(
        id=intent_id,
        user_id=user_id,
        subaccount_id=subaccount_id,
        trader_id=trader_id,
        source=source,
        signal_id=signal_id,
        parent_id=parent_id,
        kind=kind,
        symbol=symbol,
        ticker=ticker,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        tp_price=tp_price,
        sl_price=sl_price,
        targets=targets,
        position_quantity=position_quantity,
        priority=priority,
        status="queued",
        cl_ord_id=client_order_id(intent_id),
    )


def queue_name(prefix: str, priority: str) -> str:
    return f"{prefix}{QUEUE_EXITS if priority == 'exit' else QUEUE_ENTRIES}"


def rq_connection(queue_url: str) -> redis.Redis:
    """The connection RQ's queues use (`Settings.queue_url`). RQ compresses job data, so it does
    not decode responses. Its workers and MULTI blocks need one server: a cluster URL is refused
    (NeedsPlainRedis)."""
    return redis_conn.connect(redis_conn.plain_url(queue_url, "RQ"))


class OrderJob(OwnJob):
    """An RQ job that runs only the drain job (JOB_FUNCTIONS)."""

    functions = JOB_FUNCTIONS


def order_queue(conn: redis.Redis, name: str) -> Queue:
    """The RQ queue `name` (stream prefix included) as every producer and worker must see it:
    JSON job data and OrderJob."""
    return Queue(name, connection=conn, job_class=OrderJob, serializer=JSONSerializer)


def order_queues(conn: redis.Redis, prefix: str) -> list[Queue]:
    """The executor's queues in the order workers take them."""
    return [order_queue(conn, prefix + name) for name in QUEUES]


def register_drain(handler: DrainHandler) -> None:
    """Make `handler` run this process's drain jobs (the executor's, before a worker starts)."""
    global _drain_handler
    _drain_handler = handler


def drain_subaccount(subaccount_id: int) -> int:
    """RQ job: send the subaccount's queued intents in order (by the registered handler)."""
    handler = _drain_handler
    if handler is None:
        raise RuntimeError(
            "no executor is set up in this process to drain subaccounts: run workers with "
            "`python -m services.executor` (or call services.executor.jobs.use_context first)"
        )
    return handler(subaccount_id)


def enqueue(conn: redis.Redis, prefix: str, intents: Iterable[QueuedIntent]) -> None:
    """One drain job per intent; its id names the intent, for the logs and for RQ's own views."""
    for intent in intents:
        order_queue(conn, queue_name(prefix, intent.priority)).enqueue(
            drain_subaccount,
            intent.subaccount_id,
            job_id=f"intent-{intent.intent_id}",
            result_ttl=3600,
            failure_ttl=86_400,
            job_timeout=120,
        )


def flatten_intent(user_id: int, subaccount_id: int, source: str) -> OrderIntent:
    """Every contract of the subaccount liquidated and every working order cancelled, at exits'
    priority (the kill switch, a manual flatten, the risk desk, a copy group's lock)."""
    return new_intent(
        user_id=user_id,
        subaccount_id=subaccount_id,
        source=source,
        kind="flatten",
        side="sell",
        symbol="*",
        ticker=None,
        quantity=Decimal(0),
        priority="exit",
    )


# Intents that move a protective order and trade nothing (quantity 0): docs/contract.md §3b.
LEVEL_MOVES = ("move_stop", "move_target")


def targets_json(
    entry_price: Decimal, legs: tuple[tuple[Decimal, Decimal], ...]
) -> dict[str, Any] | None:
    """An intent's `targets`: several legs as (price, qty), with the average they came from."""
    if len(legs) < 2:
        return None
    return {
        "entry_price": str(entry_price),
        "legs": [{"price": str(price), "qty": str(qty)} for price, qty in legs],
    }
