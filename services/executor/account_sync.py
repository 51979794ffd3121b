"""Tradovate account sync (docs/outside/tradovate.md §6.1–6.4): one account socket per connected
account keeps order intents, risk status and broker positions current, and reconciles them with
what the platform expects (docs/contract.md §4) on a background share of the user's rate limit."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from libs.common import streams
from libs.common.config import Settings
from libs.common.storage.models import Account
from libs.common.tradovate.accounts import TokenKeeper, base_url
from services.executor import owners
from services.executor.account_stream import AccountStream
from services.executor.limiter import BrokerLimiter

if TYPE_CHECKING:
    from services.executor.jobs import ExecutorContext

log = logging.getLogger("executor")


def account_socket_url(rest_url: str) -> str:
    """`https://demo.tradovateapi.com/v1` → `wss://demo.tradovateapi.com/v1/websocket` (§1)."""
    parts = urlsplit(rest_url.rstrip("/"))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path + "/websocket", "", ""))


@dataclass(frozen=True)
class SyncTimings:
    heartbeat_s: float = 2.5  # the client's `[]` (§6.3)
    silence_s: float = 15.0  # no frame for this long: the socket is dead, reconnect
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    quota_backoff_s: float = 300.0  # after a shutdown for ConnectionQuotaReached / IPQuotaReached
    refresh_s: float = 10.0  # how often the accounts table is read
    grace_s: float = 10.0  # fills lag orders: a mismatch alerts once it has lasted this long
    debounce_s: float = 2.0  # at most one check this often after position changes
    check_every_s: float = 15.0  # recorder positions change without the broker: look anyway
    settle_s: float = 1.0  # retry of finished orders no intent could take yet (row busy)
    settle_window_s: float = 30.0  # a finished order no intent claims by then is not ours


class AccountSync:
    """One `AccountStream` per connected Tradovate account; `run` until `stop` is set.

    Several executor processes may run it: a Redis lease per account lets one of them own it.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis,
        keeper: TokenKeeper,
        limiter: BrokerLimiter,
        *,
        socket_urls: dict[str, str] | None = None,
        timings: SyncTimings | None = None,
        seed: int | None = None,
    ) -> None:
        self.settings, self.sessions, self.redis = settings, sessions, redis_client
        self.keeper, self.limiter = keeper, limiter
        self.socket_urls = socket_urls or {}  # environment → URL; derived from REST when absent
        self.timings = timings or SyncTimings()
        self.rng = random.Random(seed)
        self._streams: dict[int, AccountStream] = {}
        self._leases: dict[int, Any] = {}
        self.thread: threading.Thread | None = None  # set by `start`

    @classmethod
    def from_context(cls, ctx: ExecutorContext, **kw: Any) -> AccountSync:
        return cls(ctx.settings, ctx.sessions, ctx.redis, ctx.keeper, ctx.limiter, **kw)

    def socket_url(self, environment: str | None) -> str:
        configured = (
            self.settings.tradovate_live_ws_url
            if environment == "live"
            else self.settings.tradovate_demo_ws_url
        )
        return (
            self.socket_urls.get(environment or "")
            or configured
            or account_socket_url(base_url(self.settings, environment))
        )

    def publish(self, event_type: str, data: Mapping[str, object]) -> None:
        streams.publish_event(self.redis, self.settings.stream(streams.EVENTS), event_type, data)

    def alert(self, broker_user: str, message: str) -> None:
        owners.publish_alert(
            self.redis, self.settings.stream(streams.EVENTS), self.sessions, broker_user, message
        )

    def stream(self, account_id: int) -> AccountStream | None:
        return self._streams.get(account_id)

    def start(self, stop: threading.Event) -> AccountSync:
        """`run` in a daemon thread (`self.thread`), beside the RQ worker."""
        self.thread = threading.Thread(
            target=self.run, args=(stop,), daemon=True, name="account-sync"
        )
        self.thread.start()
        return self

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.refresh()
                except Exception:  # a database hiccup must not end the sync for good
                    log.exception("account sync refresh failed")
                stop.wait(self.timings.refresh_s)
        finally:
            for account_id in list(self._streams):
                self._drop(account_id)

    def refresh(self) -> None:
        """Start streams for newly connected accounts, stop those gone, renew the leases."""
        with self.sessions() as s:
            wanted = set(
                s.scalars(
                    select(Account.id).where(
                        Account.broker == "tradovate", Account.status == "connected"
                    )
                )
            )
        for account_id, stream in list(self._streams.items()):
            if (
                account_id not in wanted
                or not stream.thread.is_alive()
                or not self._renew(account_id)
            ):
                self._drop(account_id)
        for account_id in sorted(wanted - set(self._streams)):
            lease = self.redis.lock(
                self.settings.stream(f"account_sync:lease:{account_id}"),
                timeout=3 * self.timings.refresh_s,
                thread_local=False,
            )
            if lease.acquire(blocking=False):
                self._leases[account_id] = lease
                self._streams[account_id] = AccountStream(self, account_id)
                self._streams[account_id].thread.start()

    def _renew(self, account_id: int) -> bool:
        try:
            return bool(self._leases[account_id].reacquire())
        except redis.exceptions.LockError:
            return False

    def _drop(self, account_id: int) -> None:
        self._streams.pop(account_id).stop()
        lease = self._leases.pop(account_id, None)
        with contextlib.suppress(redis.exceptions.LockError, AttributeError):
            lease.release()


def start_account_sync(ctx: ExecutorContext, stop: threading.Event, **kw: Any) -> AccountSync:
    """The executor's entry point: sync every connected Tradovate account until `stop` is set."""
    return AccountSync.from_context(ctx, **kw).start(stop)
