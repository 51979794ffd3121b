"""One Tradovate account socket (docs/outside/tradovate.md §6.1–6.4): connect, authorize, sync and
apply props to a broker mirror; reconnect with back-off (the socket session's `SocketUser`)."""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from libs.common.storage.db import transaction
from libs.common.storage.models import Account
from libs.common.tradovate import frames
from libs.common.tradovate.accounts import AccountUnusable, limiter_user
from libs.common.tradovate.client import TradovateError
from libs.common.tradovate.socket_session import (
    Connection,
    Dial,
    Ending,
    ReconnectingSocket,
    SocketTimings,
)
from services.executor import account_check, account_effects, broker_view, reconcile
from services.executor.limiter import Penalty, penalty_for

if TYPE_CHECKING:
    from services.executor.account_sync import AccountSync

log = logging.getLogger("executor")


class AccountStream:
    """One account's socket: connect, authorize, sync, apply props; reconnect with back-off."""

    def __init__(self, sync: AccountSync, account_id: int) -> None:
        self.sync, self.account_id, self.t = sync, account_id, sync.timings
        self.lock = threading.Lock()  # over the mirror, which `positions` reads from other threads
        self.mirror = reconcile.BrokerMirror()
        self.alerts = reconcile.MismatchAlerts(self.t.grace_s)
        self.view = broker_view.ViewSchedule()  # the account view the UI reads (broker_view.py)
        self.synced, self.syncs = False, 0  # snapshot applied on this connection; on any
        self.unsettled: dict[int, float] = {}  # finished order → when first seen finished
        self.accounted: set[int] = set()  # finished orders already dealt with
        self.subs: dict[int, int] = {}  # broker account id → subaccount id
        self.user = ""  # the limiter key of the account's broker user
        self.owner_id: int | None = None  # the platform user whose account it is
        self.broker_user_id: int | None = None  # whom the syncrequest asks for, when known
        self._syncs_at_dial = 0
        self._stop = threading.Event()
        self.next_check = self.next_settle = math.inf
        self.last_check = -math.inf
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
                    self.view.book.apply(
                        str(message.d.get("entityType")),
                        str(message.d.get("eventType")),
                        message.d["entity"],
                    )
                self.view.changed(time.monotonic())  # a stop moved is a version: no `touched`
                touched += [found] if found else []
        account_effects.after(self, touched)
        return None

    def next_due(self) -> float:
        return min(self.next_check, self.next_settle, self.view.due) if self.synced else math.inf

    def tick(self, conn: Connection, now: float) -> str | None:
        if self.synced and now >= self.next_settle:
            account_effects.settle(self)
        if self.synced and now >= self.next_check:
            account_check.check(self)
        if self.synced and now >= self.view.due:
            broker_view.publish(self)
        return None

    def ended(self, ending: Ending) -> bool:
        self.synced = False
        return self.syncs > self._syncs_at_dial

    def _on_response(self, response: frames.Response) -> str | None:
        penalty = penalty_for(response.s, response.d if isinstance(response.d, dict) else None)
        if penalty is not None:
            self.penalized(penalty)
            return "penalty"
        if not (response.ok and isinstance(response.d, dict) and "users" in response.d):
            return f"sync refused ({response.s} {response.d})"
        with self.lock:
            self.mirror = reconcile.BrokerMirror(contracts=self.mirror.contracts)  # names last
            touched = self.mirror.load(response.d)
            self.view.book = broker_view.BrokerBook()
            self.view.book.load(response.d)
        self.synced, self.syncs = True, self.syncs + 1
        self.view.changed(time.monotonic())
        self.next_check = time.monotonic()  # events missed while down are not replayed
        account_effects.after(self, touched)
        log.info(
            "account synced",
            extra={"kv": {"account_id": self.account_id, "orders": len(self.mirror.orders)}},
        )
        return None

    def penalized(self, penalty: Penalty | None) -> None:
        if penalty is None:  # an ordinary answer: nothing to pause
            return
        self.sync.limiter.apply_penalty(self.user, penalty)
        if penalty.alert:  # a lockout or captcha needs a person
            self.sync.alert(
                self.user,
                f"Tradovate paused account sync ({penalty.reason}) for {penalty.seconds} s",
            )

    def owner(self, s: Session) -> int:
        if self.owner_id is None:
            self.owner_id = s.get_one(Account, self.account_id).user_id
        return self.owner_id
