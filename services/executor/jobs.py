"""The executor's RQ jobs and the resources they share within one worker process."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import redis
from redis import Redis
from sqlalchemy.orm import Session

from libs.common import orders, redis_conn, streams
from libs.common.config import Settings, load_settings
from libs.common.storage import db
from libs.common.storage.models import Account, OrderIntent, Subaccount
from libs.common.tradovate.accounts import TokenKeeper
from services.executor import owners
from services.executor.account_limits import entry_refusal
from services.executor.brokers import Answer, Broker, Ticket
from services.executor.limiter import BrokerLimiter
from services.executor.paper import PaperBroker
from services.executor.sender import Sender
from services.executor.tradovate_broker import TradovateBroker


class NotConnectedBroker(Broker):
    """A broker this installation cannot send to; every intent is rejected with the reason."""

    def __init__(self, reason: str):
        self.reason = reason

    def send(self, ticket: Ticket, session) -> Answer:
        return Answer("rejected", error=self.reason)

    def lookup(self, ticket: Ticket, session) -> Answer | None:
        return None


@dataclass
class ExecutorContext:
    settings: Settings

    @cached_property
    def sessions(self):
        return db.make_sessionmaker(db.make_engine(self.settings.database_url, pool_size=4))

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_conn.connect(self.settings.redis_url, decode_responses=True)

    @cached_property
    def paper(self) -> PaperBroker:
        return PaperBroker(self.redis, self.settings.stream_prefix)

    @cached_property
    def queue_redis(self) -> Redis:  # `redis` in this class is the property above
        """The queues' plain Redis (QUEUE_REDIS_URL, else REDIS_URL), decoding replies."""
        url = redis_conn.plain_url(self.settings.queue_url, "The broker rate limiter")
        if url == self.settings.redis_url:
            return self.redis  # one Redis for everything
        return redis_conn.connect(url, decode_responses=True)

    @cached_property
    def limiter(self) -> BrokerLimiter:
        # On the queues' Redis: its script reads and writes four keys of a user at once, which a
        # cluster refuses unless they share a slot (docs/operations.md "Redis Cluster").
        return BrokerLimiter(
            self.queue_redis,
            self.settings.stream_prefix,
            per_minute=self.settings.tradovate_rate_limit_per_min,
            guard_ms=250,
        )

    @cached_property
    def keeper(self) -> TokenKeeper:
        return TokenKeeper(self.settings, self.redis, sessions=self.sessions)

    def alert(self, user: str, message: str) -> None:
        """`account.alert` to every platform user of the broker login `user` (a limiter key)."""
        owners.publish_alert(
            self.redis, self.settings.stream(streams.EVENTS), self.sessions, user, message
        )

    def broker_for(self, account: Account) -> Broker:
        if account.broker == "paper":
            return self.paper
        if account.broker == "tradovate":
            return TradovateBroker(account.id, self.keeper, self.limiter, self.alert)
        return NotConnectedBroker(f"the broker {account.broker!r} is not supported")

    @cached_property
    def sender(self) -> Sender:
        return Sender(
            self.settings.stream_prefix, self.sessions, self.redis, self.broker_for, self.refuse
        )

    def refuse(self, session: Session, intent: OrderIntent, sub: Subaccount) -> str | None:
        return entry_refusal(session, self.redis, self.settings, intent, sub, datetime.now(UTC))


_context: ExecutorContext | None = None
_context_lock = threading.Lock()


def context() -> ExecutorContext:
    global _context
    with _context_lock:
        if _context is None:
            _context = ExecutorContext(load_settings())
        return _context


def use_context(ctx: ExecutorContext) -> None:
    """Set the process's context (the service does at start-up, tests do for their settings) and
    make this process run drain jobs (libs.common.orders.drain_subaccount) with it."""
    global _context
    with _context_lock:
        _context = ctx
    orders.register_drain(drain_subaccount)


def drain_subaccount(subaccount_id: int) -> int:
    """Send the subaccount's queued intents in order. The handler behind the RQ job
    libs.common.orders.drain_subaccount; jobs enqueued by name before that job existed still
    name this function, so it stays an RQ job too (one of orders.JOB_FUNCTIONS, the only
    functions the executor's worker runs)."""
    return context().sender.drain(subaccount_id)
