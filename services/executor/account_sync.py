"""Tradovate account sync (docs/outside/tradovate.md §6.1–6.4): one account socket per connected
account keeps order intents, risk status and broker positions current, and reconciles them with
what the platform expects (docs/contract.md §4) on a background share of the user's rate limit."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, streams
from libs.common.config import Settings
from libs.common.serialize import intent_dict, num
from libs.common.storage.db import transaction
from libs.common.storage.models import Account, OrderIntent, Position, Subaccount, Trader
from libs.common.tradovate import frames
from libs.common.tradovate.accounts import (
    AccountUnusable,
    TokenKeeper,
    base_url,
    limiter_user,
    risk_status,
)
from libs.common.tradovate.client import PenaltyTicket, RateLimited, TradovateError
from libs.common.tradovate.socket_session import (
    Connection,
    Dial,
    Ending,
    ReconnectingSocket,
    SocketTimings,
)
from services.executor import owners, reconcile
from services.executor.limiter import BrokerLimiter, Penalty, penalty_for

if TYPE_CHECKING:
    from services.executor.jobs import ExecutorContext

log = logging.getLogger("executor")

BRACKET_SEEN_S = 7 * 86400  # a bracket fill is announced once, even across restarts and re-syncs


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
    """One `_AccountStream` per connected Tradovate account; `run` until `stop` is set.

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
        self._streams: dict[int, _AccountStream] = {}
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

    def stream(self, account_id: int) -> _AccountStream | None:
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
                self._streams[account_id] = _AccountStream(self, account_id)
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


class _AccountStream:
    """One account's socket: connect, authorize, sync, apply props; reconnect with back-off."""

    def __init__(self, sync: AccountSync, account_id: int) -> None:
        self.sync, self.account_id, self.t = sync, account_id, sync.timings
        self.lock = threading.Lock()  # over the mirror, which `positions` reads from other threads
        self.mirror = reconcile.BrokerMirror()
        self.alerts = reconcile.MismatchAlerts(self.t.grace_s)
        self.synced, self.syncs = False, 0  # snapshot applied on this connection; on any
        self.unsettled: dict[int, float] = {}  # finished order → when first seen finished
        self.accounted: set[int] = set()  # finished orders already dealt with
        self.subs: dict[int, int] = {}  # broker account id → subaccount id
        self.user = ""  # the limiter key of the account's broker user
        self.owner_id: int | None = None  # the platform user whose account it is
        self.broker_user_id: int | None = None  # whom the syncrequest asks for, when known
        self._syncs_at_dial = 0
        self._stop = threading.Event()
        self._next_check = self._next_settle = math.inf
        self._last_check = -math.inf
        t = self.t
        self.socket = ReconnectingSocket(
            self,
            SocketTimings(
                t.heartbeat_s, t.silence_s, t.backoff_base_s, t.backoff_max_s, t.quota_backoff_s
            ),
            self._stop,
            name="account sync",
            reader_name=f"account-sync-reader-{account_id}",
            rng=sync.rng,
            logger=log,
            log_kv={"account_id": account_id},
        )
        self.thread = threading.Thread(
            target=self.socket.run, daemon=True, name=f"account-sync-{account_id}"
        )

    def stop(self) -> None:
        self._stop.set()
        self.socket.wake()  # the loop then sees `stop`
        self.thread.join(10)

    def positions(self) -> dict[tuple[int, str], Decimal]:
        """The broker's net per (subaccount, contract name, or `#id` while unnamed)."""
        with self.lock:
            return {
                (self.subs[a], self.mirror.contracts.get(c, f"#{c}")): net
                for (a, c), net in self.mirror.positions.items()
                if a in self.subs
            }

    # -- the socket session (SocketUser) ---------------------------------------------------------

    def dial(self) -> Dial | str:
        with self.sync.sessions() as s:
            account = s.get(Account, self.account_id)
            if account is None or account.status != "connected":
                return "gone"
            self.subs = {sub.broker_account_id: sub.id for sub in account.subaccounts if sub.active}
        try:
            token = self.sync.keeper.token(None, account)
        except (AccountUnusable, TradovateError) as exc:
            log.warning(
                "account sync has no token",
                extra={"kv": {"account_id": self.account_id, "error": str(exc)}},
            )
            return "no token"
        self.user, self.owner_id = limiter_user(account), account.user_id
        self.broker_user_id = account.broker_user_id
        if not self._background_slot():  # the syncrequest is the request this slot pays for
            return "stopped"
        self._syncs_at_dial = self.syncs
        return Dial(self.sync.socket_url(account.environment), token)

    def _background_slot(self) -> bool:
        while not self._stop.is_set():
            decision = self.sync.limiter.try_acquire(self.user, "background")
            if decision.granted:
                return True
            self._stop.wait(min(decision.wait_ms / 1000, 5.0))  # short waits keep `stop` prompt
        return False

    def authorized(self, conn: Connection) -> None:
        body = (
            {"users": [self.broker_user_id]}
            if self.broker_user_id
            else {"accounts": sorted(self.subs)}
        )
        conn.request("user/syncrequest", body)

    def refused(self, conn: Connection, answer: frames.Response) -> None:
        # A stale token: have the keeper renew it before the next try.
        with transaction(self.sync.sessions) as s:
            account = s.get(Account, self.account_id)
            if account is not None:
                account.token_expires_at = datetime.now(UTC)

    def on_messages(
        self, conn: Connection, messages: list[frames.Response | frames.Event]
    ) -> str | None:
        touched: list[reconcile.Touched] = []
        for message in messages:
            if isinstance(message, frames.Response):
                verdict = self._on_response(message)
                if verdict:
                    return verdict
            elif (
                message.e == "props"
                and isinstance(message.d, dict)
                and isinstance(message.d.get("entity"), dict)
            ):
                with self.lock:
                    found = self.mirror.apply(
                        str(message.d.get("entityType")),
                        str(message.d.get("eventType")),
                        message.d["entity"],
                    )
                touched += [found] if found else []
        self._after(touched)
        return None

    def next_due(self) -> float:
        return min(self._next_check, self._next_settle) if self.synced else math.inf

    def tick(self, conn: Connection, now: float) -> str | None:
        if self.synced and now >= self._next_settle:
            self._settle()
        if self.synced and now >= self._next_check:
            self._check()
        return None

    def ended(self, ending: Ending) -> bool:
        self.synced = False
        return self.syncs > self._syncs_at_dial

    def _on_response(self, response: frames.Response) -> str | None:
        penalty = penalty_for(response.s, response.d if isinstance(response.d, dict) else None)
        if penalty is not None:
            self._penalized(penalty)
            return "penalty"
        if not (response.ok and isinstance(response.d, dict) and "users" in response.d):
            return f"sync refused ({response.s} {response.d})"
        with self.lock:
            self.mirror = reconcile.BrokerMirror(contracts=self.mirror.contracts)  # names last
            touched = self.mirror.load(response.d)
        self.synced, self.syncs = True, self.syncs + 1
        self._next_check = time.monotonic()  # events missed while down are not replayed
        self._after(touched)
        log.info(
            "account synced",
            extra={"kv": {"account_id": self.account_id, "orders": len(self.mirror.orders)}},
        )
        return None

    def _penalized(self, penalty: Penalty | None) -> None:
        if penalty is None:  # an ordinary answer: nothing to pause
            return
        self.sync.limiter.apply_penalty(self.user, penalty)
        if penalty.alert:  # a lockout or captcha needs a person
            self.sync.alert(
                self.user,
                f"Tradovate paused account sync ({penalty.reason}) for {penalty.seconds} s",
            )

    def _owner(self, s: Session) -> int:
        if self.owner_id is None:
            self.owner_id = s.get_one(Account, self.account_id).user_id
        return self.owner_id

    # -- applying what the socket said -----------------------------------------------------------

    def _after(self, touched: list[reconcile.Touched]) -> None:
        now, finished = time.monotonic(), False
        for kind, ident in touched:
            if kind == "order" and ident not in self.accounted and self.mirror.outcome(ident):
                finished = finished or ident not in self.unsettled
                self.unsettled.setdefault(ident, now)
            elif kind == "position":  # debounced: a burst of fills makes one comparison
                self._next_check = min(
                    self._next_check, max(now, self._last_check + self.t.debounce_s)
                )
        risks = {ident for kind, ident in touched if kind == "risk"}
        if risks:
            self._apply_risks(risks)
        if finished:  # at once; orders already waiting are retried by the settle timer
            self._settle()

    def _apply_risks(self, broker_ids: set[int]) -> None:
        changes: list[events.RiskStatusData] = []
        with transaction(self.sync.sessions) as s:
            for sub in s.scalars(
                select(Subaccount).where(
                    Subaccount.account_id == self.account_id,
                    Subaccount.broker_account_id.in_(broker_ids),
                )
            ):
                status = risk_status(self.mirror.risks.get(sub.broker_account_id))
                if status != sub.risk_status:
                    changes.append(
                        {
                            "user_id": self._owner(s),
                            "account_id": self.account_id,
                            "subaccount_id": sub.id,
                            "name": sub.name,
                            "risk_status": status,
                            "previous": sub.risk_status,
                        }
                    )
                    sub.risk_status, sub.refreshed_at = status, datetime.now(UTC)
        for data in changes:
            self.sync.publish(events.ACCOUNT_RISK_STATUS, data)

    def _settle(self) -> None:
        """Write finished orders onto their intents (by order id, or by clOrdId when the sender
        has not committed the order id yet); a row the sender still holds is tried again later."""
        done = {oid: outcome for oid in self.unsettled if (outcome := self.mirror.outcome(oid))}
        by_id = {str(oid): oid for oid in done}
        by_cl = {self.mirror.cl_ord_ids[oid]: oid for oid in done if oid in self.mirror.cl_ord_ids}
        outgoing: list[tuple[str, dict]] = []
        with transaction(self.sync.sessions) as s:
            rows = s.scalars(
                select(OrderIntent)
                .where(
                    OrderIntent.subaccount_id.in_(self.subs.values()),
                    OrderIntent.status.in_(("sending", "accepted")),
                    or_(OrderIntent.broker_order_id.in_(by_id), OrderIntent.cl_ord_id.in_(by_cl)),
                )
                .with_for_update(skip_locked=True)
            ).all()
            for intent in rows:
                oid = by_id.get(intent.broker_order_id or "") or by_cl[intent.cl_ord_id]
                status, price, why = done[oid]
                intent.status, intent.broker_order_id = status, intent.broker_order_id or str(oid)
                intent.fill_price, intent.finished_at = price, datetime.now(UTC)
                intent.error = (
                    f"Tradovate rejected the order after accepting it: {why}" if why else None
                )
                outgoing.append((events.order_event(status), intent_dict(intent)))
                self._account(oid)
            for oid in [o for o in self.unsettled if self.mirror.is_bracket(o)]:
                self._account(oid)
                outcome = done.get(oid)
                if outcome is not None and outcome[0] == "filled":
                    outgoing += self._bracket_filled(s, oid, outcome[1])
        for event_type, data in outgoing:
            self.sync.publish(event_type, data)
        now = time.monotonic()
        for oid, seen in list(self.unsettled.items()):
            if now - seen > self.t.settle_window_s:  # placed by hand, or by another platform
                self._account(oid)
        self._next_settle = now + self.t.settle_s if self.unsettled else math.inf

    def _account(self, order_id: int) -> None:
        self.unsettled.pop(order_id, None)
        self.accounted.add(order_id)

    def _bracket_filled(
        self, s: Session, order_id: int, price: Decimal | None
    ) -> list[tuple[str, dict]]:
        key = self.sync.settings.stream(f"account_sync:bracket:{order_id}")
        if not self.sync.redis.set(key, 1, nx=True, ex=BRACKET_SEEN_S):
            return []  # announced before this re-sync (or by another process)
        order = self.mirror.orders[order_id]
        parent = order.get("parentId")
        account, contract_id = reconcile.ref(order, "accountId"), reconcile.ref(order, "contractId")
        subaccount_id = None if account is None else self.subs.get(account)
        contract = None if contract_id is None else self.mirror.contracts.get(contract_id)
        net = (
            None
            if account is None or contract_id is None
            else self.mirror.positions.get((account, contract_id))
        )
        intent_id = parent and s.scalar(
            select(OrderIntent.id).where(OrderIntent.broker_order_id == str(parent))
        )
        order_type = self.mirror.order_types.get(order_id, "")
        return [
            (
                events.ORDER_BRACKET_FILLED,
                {
                    "user_id": self._owner(s),
                    "account_id": self.account_id,
                    "subaccount_id": subaccount_id,
                    "contract": contract,
                    "broker_order_id": str(order_id),
                    "intent_id": str(intent_id) if intent_id else None,
                    "reason": "tp"
                    if order_type == "Limit"
                    else "sl"
                    if "Stop" in order_type
                    else None,
                    "side": str(order.get("action", "")).lower(),
                    "fill_price": num(price),
                    "net_qty": num(net),
                },
            )
        ]

    # -- reconciliation --------------------------------------------------------------------------

    def _check(self) -> None:
        now = time.monotonic()
        self._last_check, self._next_check = now, now + self.t.check_every_s
        if not self._name_contracts():
            self._next_check = now + self.t.debounce_s
            return
        with self.sync.sessions() as s:  # subaccounts too: the UI may have added or retired one
            self.subs = dict(
                s.execute(
                    select(Subaccount.broker_account_id, Subaccount.id).where(
                        Subaccount.account_id == self.account_id, Subaccount.active.is_(True)
                    )
                )
                .tuples()
                .all()
            )
            traders = list(
                s.scalars(
                    select(Trader).where(
                        Trader.subaccount_id.in_(self.subs.values()), Trader.enabled.is_(True)
                    )
                )
            )
            positions = list(
                s.scalars(
                    select(Position).where(
                        Position.recorder_id.in_({t.recorder_id for t in traders}),
                        Position.status == "open",
                    )
                )
            )
            owner = self._owner(s)
        traded = {t.subaccount_id for t in traders}  # only where the platform has an expectation
        expected = reconcile.expected_positions(traders, positions, at=datetime.now(UTC))
        found = [
            m for m in reconcile.compare(expected, self.positions()) if m.subaccount_id in traded
        ]
        state = self.alerts.observe(found, now)
        self._next_check = min(self._next_check, self.alerts.next_due(now) or math.inf)
        report = reconcile.mismatch_report(self.account_id, state, now, time.time() - now)
        self.sync.redis.set(
            self.sync.settings.stream(f"reconcile:{self.account_id}"), json.dumps(report)
        )
        if state.changed:
            self.sync.publish(events.ACCOUNT_MISMATCH, {"user_id": owner, **report})
            log.warning(
                "reconcile",
                extra={"kv": {"account_id": self.account_id, "mismatches": len(state.alerted)}},
            )

    def _name_contracts(self) -> bool:
        """Names of the contracts held, looked up (a background slot each) when the snapshot had
        none; False while one is unknown: comparing without it would raise false alarms."""
        missing = {
            c
            for (_, c), net in self.mirror.positions.items()
            if net and c not in self.mirror.contracts
        }
        for contract_id in sorted(missing):
            if not self.sync.limiter.try_acquire(self.user, "background").granted:
                return False
            try:
                with self.sync.sessions() as s:
                    client = self.sync.keeper.client_for(s, s.get_one(Account, self.account_id))
                found = client.contract_item(contract_id)
            except PenaltyTicket as exc:
                body = {"p-ticket": exc.ticket, "p-time": exc.wait_s, "p-captcha": exc.captcha}
                self._penalized(penalty_for(200, body))
                return False
            except RateLimited as exc:
                self._penalized(penalty_for(exc.status, None))
                return False
            except (TradovateError, AccountUnusable):
                return False
            with self.lock:
                self.mirror.contracts[contract_id] = str(
                    (found or {}).get("name") or f"#{contract_id}"
                )
        return True
