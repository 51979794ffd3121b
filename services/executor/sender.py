"""Sending the intents of one subaccount, in sequence, at most once each.

An intent is claimed (`queued` → `sending`, committed) before its request goes out and answered
(`filled`, `accepted`, `rejected`) after. An intent found in `sending` was interrupted: the broker
is asked whether it has it (by clOrdId) before anything is sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from libs.common import events, streams
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.instruments import CONTRACTS, MAX_ORDER_CONTRACTS
from libs.common.futures.rolls import ContractError, resolve_ticker
from libs.common.serialize import intent_dict
from libs.common.storage.db import transaction
from libs.common.storage.models import Account, OrderIntent, Subaccount
from services.executor.brokers import Answer, Broker, BrokerPaused, BrokerUnavailable, Ticket

log = logging.getLogger("executor")

LOCK_TIMEOUT_S = 120  # a worker killed while holding the lock frees it after this
MOVES = ("move_stop", "move_target")  # only the latest level of a run of them matters
SUPERSEDED = "superseded by a later stop move"
# In no registry of its own: the executor's /metrics registry adds it (tests build several).
ORDERS = Counter(
    "jt_orders",
    "Intents answered, by outcome (filled, accepted, rejected).",
    ["status"],
    registry=None,
)


@dataclass
class Sender:
    settings_prefix: str
    sessions: sessionmaker[Session]
    redis: redis.Redis
    broker_for: Callable[[Account], Broker]
    # The risk desk's refusal of an intent before it goes out (account_limits.py); None: none.
    refuse: Callable[[Session, OrderIntent, Subaccount], str | None] | None = None

    def drain(self, subaccount_id: int, wait_s: float = 60.0) -> int:
        """Send every queued intent of the subaccount in order; returns how many were answered."""
        lock = self.redis.lock(
            f"{self.settings_prefix}executor:subaccount:{subaccount_id}",
            timeout=LOCK_TIMEOUT_S,
            blocking_timeout=wait_s,
        )
        if not lock.acquire():
            return 0
        answered = 0
        try:
            while self._send_next(subaccount_id):
                answered += 1
                lock.extend(LOCK_TIMEOUT_S, replace_ttl=True)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning(
                    "subaccount lock expired while sending",
                    extra={"kv": {"subaccount_id": subaccount_id}},
                )
        return answered

    def _next(self, session: Session, subaccount_id: int) -> OrderIntent | None:
        return session.scalar(
            select(OrderIntent)
            .where(
                OrderIntent.subaccount_id == subaccount_id,
                OrderIntent.status.in_(("queued", "sending")),
            )
            .order_by(OrderIntent.sequence)
            .limit(1)
            .with_for_update()
        )

    def _send_next(self, subaccount_id: int) -> bool:
        self._events: list[tuple[str, dict]] = []
        try:
            sent = self._claim_and_send(subaccount_id)
        except Exception:
            self._events = []  # the transaction rolled back: there is nothing to tell
            raise
        for event_type, data in self._events:
            streams.publish_event(
                self.redis, self.settings_prefix + streams.EVENTS, event_type, data
            )
        return sent

    def _claim_and_send(self, subaccount_id: int) -> bool:
        with transaction(self.sessions) as session:
            intent = self._next(session, subaccount_id)
            if intent is None:
                return False
            if self._superseded(session, intent):
                self._skip(session, intent)
                return True
            subaccount = session.get_one(Subaccount, subaccount_id)
            refused = None
            if intent.status == "queued" and self.refuse is not None:
                refused = self.refuse(session, intent, subaccount)
            if refused is not None:
                self._answer(session, intent, Answer("rejected", error=refused))
                return True
            if intent.status == "queued" and not _within_holding(session, intent):
                session.flush()
                self._publish(events.ORDER_SKIPPED, intent)
                return True
            broker = self.broker_for(subaccount.account)
            ticket = self._ticket(intent, subaccount)
            if isinstance(ticket, str):
                self._answer(session, intent, Answer("rejected", error=ticket))
                return True
            if intent.status == "sending":
                found = broker.lookup(ticket, session)
                if found is not None:
                    log.info(
                        "interrupted intent found at the broker",
                        extra={
                            "kv": {
                                "intent_id": intent.id,
                                "signal_id": intent.signal_id,
                                "cl_ord_id": intent.cl_ord_id,
                            }
                        },
                    )
                    self._answer(session, intent, found)
                    return True
            intent.status, intent.contract = "sending", ticket.contract
            intent.attempts += 1
            intent.sent_at = datetime.now(UTC)
            log.info(
                "intent sending",
                extra={
                    "kv": {
                        "intent_id": intent.id,
                        "signal_id": intent.signal_id,
                        "cl_ord_id": intent.cl_ord_id,
                        "subaccount_id": subaccount_id,
                        "kind": intent.kind,
                        "side": intent.side,
                        "quantity": intent.quantity,
                        "contract": ticket.contract,
                        "attempt": intent.attempts,
                    }
                },
            )
        # The claim is committed: from here a crash leaves `sending`, which the next drain checks.
        with transaction(self.sessions) as session:
            intent = session.get_one(OrderIntent, intent.id, with_for_update=True)
            try:
                answer = broker.send(ticket, session)
            except BrokerPaused as paused:
                intent.status = "queued"  # nothing went out; it waits for the pause to end
                intent.error = paused.reason
                self._publish(events.ORDER_PAUSED, intent)
                return False
            except BrokerUnavailable as exc:
                intent.error = (
                    f"the broker did not answer: {exc}; it will be asked before any resend"
                )
                return False
            self._answer(session, intent, answer)
        return True

    @staticmethod
    def _superseded(session: Session, intent: OrderIntent) -> bool:
        """A stop (or target) move followed, with no other order for the contract in between, by
        another of the same kind: the later level wins, so only the later one goes out."""
        if intent.kind not in MOVES:
            return False
        later = session.scalar(
            select(OrderIntent)
            .where(
                OrderIntent.subaccount_id == intent.subaccount_id,
                OrderIntent.symbol == intent.symbol,
                OrderIntent.status == "queued",
                OrderIntent.sequence > intent.sequence,
            )
            .order_by(OrderIntent.sequence)
            .limit(1)
        )
        return later is not None and later.kind == intent.kind

    def _skip(self, session: Session, intent: OrderIntent) -> None:
        intent.status, intent.error = "skipped", SUPERSEDED
        intent.finished_at = datetime.now(UTC)
        session.flush()
        ORDERS.labels(status="skipped").inc()
        self._publish(events.ORDER_SKIPPED, intent)
        log.info(
            "intent skipped",
            extra={
                "kv": {
                    "intent_id": intent.id,
                    "signal_id": intent.signal_id,
                    "kind": intent.kind,
                    "reason": SUPERSEDED,
                }
            },
        )

    def _ticket(self, intent: OrderIntent, subaccount: Subaccount) -> Ticket | str:
        size = intent.quantity
        shown = f"{size.normalize():f}"
        if size < 0 or size != size.to_integral_value():
            return f"the order is for {shown} contracts; a broker takes whole contracts only"
        if size > MAX_ORDER_CONTRACTS:
            return f"the order is for {shown} contracts, above the {MAX_ORDER_CONTRACTS} allowed"
        # A guard's close names only the root: it closes the front contract, as entries trade it.
        ticker = intent.ticker or (
            f"{intent.symbol}1!" if intent.symbol in CONTRACTS else intent.symbol
        )
        try:
            contract = resolve_ticker(ticker, trade_date(datetime.now(UTC)))
        except ContractError:
            contract = intent.symbol  # not a futures root we know (e.g. AAPL): trade it as named
        return Ticket(
            intent_id=str(intent.id),
            cl_ord_id=intent.cl_ord_id,
            subaccount_id=subaccount.id,
            account_spec=subaccount.name,
            broker_account_id=subaccount.broker_account_id,
            kind=intent.kind,
            symbol=intent.symbol,
            contract=intent.contract or contract,
            side=intent.side,
            quantity=intent.quantity,
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            tp_price=intent.tp_price,
            sl_price=intent.sl_price,
            targets=_legs(intent.targets),
            entry_price=_entry_price(intent.targets),
            trader_id=intent.trader_id,
            position_quantity=intent.position_quantity,
        )

    def _answer(self, session: Session, intent: OrderIntent, answer: Answer) -> None:
        intent.status = answer.status
        intent.broker_order_id = answer.broker_order_id
        intent.fill_price = answer.fill_price
        intent.error = answer.error
        intent.finished_at = datetime.now(UTC)
        if answer.status in ("accepted", "filled") and intent.accepted_at is None:
            intent.accepted_at = intent.finished_at  # the broker's first yes; never moved later
        session.flush()
        self._publish(events.order_event(answer.status), intent)
        ORDERS.labels(status=answer.status).inc()
        log.info(
            "intent answered",
            extra={
                "kv": {
                    "intent_id": intent.id,
                    "signal_id": intent.signal_id,
                    "cl_ord_id": intent.cl_ord_id,
                    "status": answer.status,
                    "broker_order_id": answer.broker_order_id,
                }
            },
        )

    def _publish(self, event_type: str, intent: OrderIntent) -> None:
        self._events.append((event_type, intent_dict(intent)))


def _legs(targets: dict[str, Any] | None) -> tuple[tuple[Decimal, Decimal], ...]:
    """(price, qty) per target leg of an intent's `targets` (docs/contract.md §3b)."""
    if not targets:
        return ()
    return tuple((Decimal(leg["price"]), Decimal(leg["qty"])) for leg in targets["legs"])


def _entry_price(targets: dict[str, Any] | None) -> Decimal | None:
    return Decimal(targets["entry_price"]) if targets and targets.get("entry_price") else None


def trader_holding(session: Session, intent: OrderIntent) -> Decimal:
    """What the trader's own orders put on this contract of the subaccount, signed, since it was
    last closed or the subaccount flattened: an upper bound of what it holds (its brackets at the
    broker only take away from it)."""
    rows = session.execute(
        select(OrderIntent.kind, OrderIntent.side, OrderIntent.quantity, OrderIntent.trader_id)
        .where(
            OrderIntent.subaccount_id == intent.subaccount_id,
            OrderIntent.sequence < intent.sequence,
            OrderIntent.status.in_(("accepted", "filled")),
            ((OrderIntent.trader_id == intent.trader_id) & (OrderIntent.symbol == intent.symbol))
            | (OrderIntent.kind == "flatten"),
        )
        .order_by(OrderIntent.sequence)
    )
    held = Decimal(0)
    for kind, side, quantity, _trader in rows:
        if kind in ("close", "flatten"):
            held = Decimal(0)
        elif kind in ("entry", "add", "reduce"):
            held += quantity if side == "buy" else -quantity
    return held


def _within_holding(session: Session, intent: OrderIntent) -> bool:
    """A trader's reduce sells no more than its own orders bought (§4b): on a shared subaccount
    an entry that was rejected must not turn its exit into a sale of another trader's contracts.
    Caps the intent, or answers it `skipped` when the trader holds none (returns False)."""
    if intent.kind != "reduce" or intent.trader_id is None:
        return True
    held = trader_holding(session, intent)
    closing = -held if intent.side == "buy" else held  # what this side can take off
    if closing <= 0:
        intent.status, intent.finished_at = "skipped", datetime.now(UTC)
        intent.error = "the trader holds none of this contract here (its entry was not filled)"
        return False
    if intent.quantity > closing:
        intent.error = f"capped at the {closing:f} contracts the trader's own orders put on"
        intent.quantity = closing
    return True
