"""Sending tickets to Tradovate (docs/contract.md §4): bracket entries (an order strategy when
there are several target legs), adds and reduces with the protection re-armed, stop and target
moves, liquidations; every request through the shared limiter of the broker user.

A penalty ticket pauses every worker of that user for p-time, then the identical request is sent
again with the ticket; a captcha, 423 or 429 pauses the user for an hour and the intent waits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.storage.models import Account
from libs.common.tradovate import client as tradovate
from libs.common.tradovate.accounts import AccountUnusable, TokenKeeper, limiter_user
from services.executor.brokers import Answer, Broker, BrokerPaused, BrokerUnavailable, Ticket
from services.executor.limiter import (
    CAPTCHA_PAUSE_S,
    LOCKOUT_PAUSE_S,
    BrokerLimiter,
    Penalty,
    Priority,
    SlotTimeout,
)

log = logging.getLogger("executor")

MAX_PENALTY_RETRIES = 3
WAIT_FOR_SLOT_S = 90.0  # a worker waits this long for budget; longer pauses put the intent back
EXIT_KINDS = ("close", "flatten", "reduce", "move_stop", "move_target")
LIVE = ("Working", "Suspended")
MODIFY_RETRIES = 3  # AnotherCommandPending: a previous command on the order is still in flight
MODIFY_RETRY_WAIT_S = 0.5
_CONTRACT_IDS: dict[tuple[str, str], int] = {}  # (base url, contract name) → Tradovate contract id


class TradovateBroker(Broker):
    name = "tradovate"

    def __init__(
        self,
        account_id: int,
        keeper: TokenKeeper,
        limiter: BrokerLimiter,
        alert: Callable[[str, str], None] = lambda user, message: None,
    ):
        self.account_id = account_id
        self.keeper = keeper
        self.limiter = limiter
        self.alert = alert  # (broker user, message): lockouts and captchas need a person

    # --- sending -----------------------------------------------------------------------------

    def send(self, ticket: Ticket, session: Session) -> Answer:
        account = session.get_one(Account, self.account_id)
        try:
            client = self.keeper.client_for(session, account)
        except AccountUnusable as exc:
            return Answer("rejected", error=str(exc))
        call = _Caller(
            self.limiter,
            limiter_user(account),
            "exit" if ticket.kind in EXIT_KINDS else "entry",
            self.alert,
        )
        try:
            return self._send(client, call, ticket)
        except tradovate.Rejected as exc:
            return Answer(
                "rejected",
                error=f"Tradovate refused the order: {exc.failure_reason}: {exc.failure_text}",
            )
        except tradovate.TokenExpired:
            account.token_expires_at = datetime.now(UTC)  # renew before the next try
            raise BrokerUnavailable(
                "Tradovate no longer accepted the token; it is renewed before a retry"
            ) from None
        except tradovate.BrokerUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from exc

    def _send(self, client: tradovate.TradovateClient, call: _Caller, ticket: Ticket) -> Answer:
        if ticket.kind == "flatten":
            return self._flatten(client, call, ticket)
        contract_id = self._contract_id(client, call, ticket.contract)
        if contract_id is None:
            return Answer(
                "rejected", error=f"Tradovate does not know the contract {ticket.contract}"
            )
        if ticket.kind == "close":
            return _accepted(call(client.liquidate_position, ticket.broker_account_id, contract_id))
        if ticket.kind in ("move_stop", "move_target"):
            return self._move(client, call, ticket, contract_id)
        action = "Buy" if ticket.side == "buy" else "Sell"
        qty = int(ticket.quantity)
        order_type = "Limit" if ticket.order_type == "limit" else "Market"
        if ticket.kind == "entry" and ticket.targets:
            return self._start_strategy(client, call, ticket, action, order_type)
        brackets = _brackets(ticket)
        if ticket.kind == "entry" and brackets:
            result = call(
                client.place_oso,
                ticket.broker_account_id,
                ticket.account_spec,
                action,
                ticket.contract,
                qty,
                *brackets,
                order_type=order_type,
                price=ticket.limit_price,
                cl_ord_id=ticket.cl_ord_id,
            )
            return _accepted(result.order_id)
        order_id = call(
            client.place_order,
            ticket.broker_account_id,
            ticket.account_spec,
            action,
            ticket.contract,
            qty,
            order_type=order_type,
            price=ticket.limit_price,
            cl_ord_id=ticket.cl_ord_id,
        )
        if ticket.kind in ("add", "reduce") and (brackets or ticket.targets):
            try:
                self._rearm(client, call, ticket, contract_id)
            except (tradovate.TradovateError, BrokerPaused) as exc:
                # The order is out: answering anything but accepted would send it again.
                log.warning(
                    "protection not re-armed",
                    extra={"kv": {"intent_id": ticket.intent_id, "error": str(exc)}},
                )
                return Answer(
                    "accepted",
                    broker_order_id=str(order_id),
                    error=f"the order went out but its protective orders were not re-armed: {exc}",
                )
        return _accepted(order_id)

    def _start_strategy(
        self,
        client: tradovate.TradovateClient,
        call: _Caller,
        ticket: Ticket,
        action: str,
        order_type: str,
    ) -> Answer:
        """Several target legs: one order strategy, a bracket per leg at signed offsets from the
        entry's fill (§5.8). Its uuid is the intent's clOrdId, which `lookup` finds it by."""
        qty = int(ticket.quantity)
        reference = ticket.entry_price if ticket.entry_price is not None else ticket.limit_price
        if reference is None:
            return Answer("rejected", error="target legs without the entry price they offset from")
        entry: dict[str, Any] = {"orderQty": qty, "orderType": order_type, "timeInForce": "Day"}
        if order_type == "Limit":
            entry["price"] = ticket.limit_price
        brackets = []
        for price, leg_qty in _fit_legs(ticket.targets, qty):
            bracket: dict[str, Any] = {"qty": leg_qty, "profitTarget": price - reference}
            if ticket.sl_price is not None:  # omitted: the legs stand without a stop
                bracket["stopLoss"] = ticket.sl_price - reference
            bracket["trailingStop"] = False
            brackets.append(bracket)
        strategy = call(
            client.start_order_strategy,
            ticket.broker_account_id,
            ticket.account_spec,
            action,
            ticket.contract,
            entry,
            brackets,
            uuid=ticket.cl_ord_id,
        )
        return _accepted(self._strategy_entry(client, call, int(strategy["id"])))

    @staticmethod
    def _strategy_entry(client: tradovate.TradovateClient, call: _Caller, strategy_id: int) -> int:
        """The strategy's entry order, whose fill settles the intent; the strategy's own id when
        its links cannot be read (the strategy is out: nothing here may fail the answer)."""
        try:
            links = call(client.order_strategy_link_deps, strategy_id, ticket=False)
        except (tradovate.TradovateError, BrokerPaused):
            return strategy_id
        orders = sorted(int(link["orderId"]) for link in links if link.get("orderId"))
        entry = next((int(k["orderId"]) for k in links if k.get("label") == "Entry"), None)
        return entry or (orders[0] if orders else strategy_id)

    def _move(
        self, client: tradovate.TradovateClient, call: _Caller, ticket: Ticket, contract_id: int
    ) -> Answer:
        """Every working stop (move_stop) or target (move_target) closing the position on the
        contract goes to the new level: one modify each, with its own qty and time in force."""
        stop = ticket.kind == "move_stop"
        level = ticket.sl_price if stop else ticket.tp_price
        what = "stop" if stop else "target"
        if level is None:
            return Answer("rejected", error=f"{ticket.kind} carries no new {what} level")
        closing = "Buy" if ticket.side == "buy" else "Sell"
        orders = [
            o
            for o in call(client.order_deps, ticket.broker_account_id, ticket=False)
            if o.get("contractId") == contract_id
            and o.get("ordStatus") in LIVE
            and o.get("action") == closing
        ]
        versions = _latest_versions(
            call(client.order_version_ldeps, [int(o["id"]) for o in orders], ticket=False)
            if orders
            else []
        )
        wanted = "Stop" if stop else "Limit"
        moving = [(int(o["id"]), versions[o["id"]]) for o in orders if o["id"] in versions]
        moving = [(i, v) for i, v in moving if v.get("orderType") == wanted]
        if not moving:
            return Answer("accepted", error=f"no working {what} order to move")
        moved, refused = [], []
        for order_id, version in moving:
            current = version.get("stopPrice" if stop else "price")
            if current is not None and Decimal(str(current)) == level:
                moved.append(order_id)  # already there (a resend after a crash)
                continue
            try:
                self._modify(client, call, order_id, version, level, stop)
                moved.append(order_id)
            except tradovate.Rejected as exc:  # e.g. TooLate: it filled meanwhile
                refused.append(f"{order_id}: {exc.failure_reason}: {exc.failure_text}")
        if not moved:
            return Answer("rejected", error="Tradovate refused the move: " + "; ".join(refused))
        return Answer(
            "accepted",
            broker_order_id=str(moved[0]),
            error=("some orders were not moved: " + "; ".join(refused)) if refused else None,
        )

    @staticmethod
    def _modify(
        client: tradovate.TradovateClient,
        call: _Caller,
        order_id: int,
        version: dict[str, Any],
        level: Decimal,
        stop: bool,
    ) -> None:
        """The full state Tradovate wants (§5.6): same qty, type and time in force, new price."""
        for attempt in range(MODIFY_RETRIES + 1):
            try:
                call(
                    client.modify_order,
                    order_id,
                    int(version["orderQty"]),
                    str(version["orderType"]),
                    price=None if stop else level,
                    stop_price=level if stop else None,
                    time_in_force=version.get("timeInForce"),
                )
                return
            except tradovate.Rejected as exc:
                if exc.failure_reason != "AnotherCommandPending" or attempt == MODIFY_RETRIES:
                    raise
                time.sleep(MODIFY_RETRY_WAIT_S)

    def _contract_id(
        self, client: tradovate.TradovateClient, call: _Caller, name: str
    ) -> int | None:
        """Contract ids never change, so each is looked up once per process (one request saved
        from the budget on every later order)."""
        key = (client.base_url, name)
        if key not in _CONTRACT_IDS:
            found = call(client.contract_find, name, ticket=False)
            if not found:
                return None
            _CONTRACT_IDS[key] = int(found["id"])
            # Shown by GET /api/contracts: the mapping in use, confirmed by the broker.
            settings = self.keeper.settings
            self.keeper.redis.hset(settings.stream(streams.CONFIRMED_CONTRACTS), name, found["id"])
        return _CONTRACT_IDS[key]

    def _rearm(
        self, client: tradovate.TradovateClient, call: _Caller, ticket: Ticket, contract_id: int
    ) -> None:
        """Replace the protective orders so they cover the position's new size at the new levels."""
        account_id = ticket.broker_account_id
        for order in call(client.order_deps, account_id, ticket=False):
            if order.get("contractId") == contract_id and order.get("ordStatus") in (
                "Working",
                "Suspended",
            ):
                call(client.cancel_order, int(order["id"]))
        net = next(
            (
                p.get("netPos", 0)
                for p in call(client.position_list, ticket=False)
                if p.get("accountId") == account_id and p.get("contractId") == contract_id
            ),
            0,
        )
        if not net:
            return
        if ticket.targets:
            self._protect_legs(client, call, ticket, "Sell" if net > 0 else "Buy", abs(net))
            return
        brackets = _brackets(ticket, closing_action="Sell" if net > 0 else "Buy")
        if brackets is None:  # only called for a ticket with levels
            return
        first, second = brackets
        if second is None:  # one level only: a plain order, not an OCO pair
            call(
                client.place_order,
                account_id,
                ticket.account_spec,
                first["action"],
                ticket.contract,
                abs(net),
                order_type=first["orderType"],
                price=first.get("price"),
                stop_price=first.get("stopPrice"),
                time_in_force="GTC",
            )
            return
        call(
            client.place_oco,
            account_id,
            ticket.account_spec,
            first["action"],
            ticket.contract,
            abs(net),
            second,
            order_type=first["orderType"],
            price=first.get("price"),
            stop_price=first.get("stopPrice"),
            time_in_force="GTC",
        )

    @staticmethod
    def _protect_legs(
        client: tradovate.TradovateClient, call: _Caller, ticket: Ticket, action: str, net: int
    ) -> None:
        """Per target leg a GTC limit for the leg's qty, OCO-paired with a stop for the same qty
        when there is a stop level; the legs cover the whole position."""
        for price, qty in _fit_legs(ticket.targets, net):
            if ticket.sl_price is None:
                call(
                    client.place_order,
                    ticket.broker_account_id,
                    ticket.account_spec,
                    action,
                    ticket.contract,
                    qty,
                    order_type="Limit",
                    price=price,
                    time_in_force="GTC",
                )
                continue
            stop = {
                "action": action,
                "orderType": "Stop",
                "stopPrice": Decimal(ticket.sl_price),
                "timeInForce": "GTC",
            }
            call(
                client.place_oco,
                ticket.broker_account_id,
                ticket.account_spec,
                action,
                ticket.contract,
                qty,
                stop,
                order_type="Limit",
                price=price,
                time_in_force="GTC",
            )

    def _flatten(self, client: tradovate.TradovateClient, call: _Caller, ticket: Ticket) -> Answer:
        last = None
        for position in call(client.position_list, ticket=False):
            if position.get("accountId") == ticket.broker_account_id and position.get("netPos"):
                last = call(
                    client.liquidate_position, ticket.broker_account_id, int(position["contractId"])
                )
        return Answer(
            "accepted",
            broker_order_id=None if last is None else str(last),
            error=None if last is not None else "already flat",
        )

    # --- after a crash -----------------------------------------------------------------------

    def lookup(self, ticket: Ticket, session: Session) -> Answer | None:
        """Did an interrupted send reach Tradovate? An order is found by its clOrdId; a liquidation
        carries none, so it counts as done when the position it closes is already flat."""
        account = session.get_one(Account, self.account_id)
        client = self.keeper.client_for(session, account)
        call = _Caller(self.limiter, limiter_user(account), "exit", self.alert)
        try:
            if ticket.kind in ("close", "flatten"):
                return self._liquidated(client, call, ticket)
            if ticket.kind in ("move_stop", "move_target"):
                return None  # a move is idempotent: sending it again lands on the same level
            if ticket.kind == "entry" and ticket.targets:
                return self._strategy_found(client, call, ticket)
            order = call(
                client.find_order_by_cl_ord_id,
                ticket.broker_account_id,
                ticket.cl_ord_id,
                ticket=False,
            )
        except tradovate.BrokerUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return None if order is None else _accepted(order.get("id"))

    def _strategy_found(
        self, client: tradovate.TradovateClient, call: _Caller, ticket: Ticket
    ) -> Answer | None:
        strategy = call(
            client.find_order_strategy, ticket.broker_account_id, ticket.cl_ord_id, ticket=False
        )
        if strategy is None:
            return None
        return _accepted(self._strategy_entry(client, call, int(strategy["id"])))

    def _liquidated(
        self, client: tradovate.TradovateClient, call: _Caller, ticket: Ticket
    ) -> Answer | None:
        contract_id = (
            None if ticket.kind == "flatten" else self._contract_id(client, call, ticket.contract)
        )
        open_positions = [
            p
            for p in call(client.position_list, ticket=False)
            if p.get("accountId") == ticket.broker_account_id
            and p.get("netPos")
            and (contract_id is None or p.get("contractId") == contract_id)
        ]
        if open_positions:
            return None  # not done: liquidate (again)
        return Answer("accepted", error="found flat after an interrupted send; not sent again")


class _Caller:
    """One broker request: a slot from the shared limiter, then the call; penalties handled."""

    def __init__(
        self,
        limiter: BrokerLimiter,
        user: str,
        priority: Priority,
        alert: Callable[[str, str], None],
    ):
        self.limiter, self.user, self.priority, self.alert = limiter, user, priority, alert

    def __call__(
        self, fn: Callable[..., Any], *args: Any, ticket: bool = True, **kwargs: Any
    ) -> Any:
        p_ticket = None
        for _ in range(MAX_PENALTY_RETRIES + 1):
            self._slot()
            try:
                return fn(
                    *args, **kwargs, **({"p_ticket": p_ticket} if ticket and p_ticket else {})
                )
            except tradovate.PenaltyTicket as exc:
                if exc.captcha:
                    self._pause(
                        CAPTCHA_PAUSE_S,
                        "Tradovate asked for a captcha; requests for this user stop for an hour",
                    )
                self.limiter.apply_penalty(
                    self.user, Penalty(max(1, math.ceil(exc.wait_s)), "p-ticket", False, exc.ticket)
                )
                p_ticket = exc.ticket if ticket else None
                log.warning(
                    "tradovate penalty ticket",
                    extra={"kv": {"user": self.user, "wait_s": exc.wait_s}},
                )
            except tradovate.RateLimited as exc:
                self._pause(
                    LOCKOUT_PAUSE_S,
                    f"Tradovate locked this user out (HTTP {exc.status}); requests stop "
                    "for an hour",
                )
        pause = self.limiter.paused(self.user)
        raise BrokerPaused(
            "Tradovate kept answering with penalty tickets", (pause and pause.remaining_s) or 1.0
        )

    def _slot(self) -> None:
        pause = self.limiter.paused(self.user)
        if pause is not None and (pause.remaining_s is None or pause.remaining_s > WAIT_FOR_SLOT_S):
            raise BrokerPaused(pause.reason, pause.remaining_s or LOCKOUT_PAUSE_S)
        try:
            self.limiter.acquire_request_slot(self.user, self.priority, timeout_s=WAIT_FOR_SLOT_S)
        except SlotTimeout:
            raise BrokerPaused(
                "the request budget for this Tradovate user is used up for now", WAIT_FOR_SLOT_S
            ) from None

    def _pause(self, seconds: float, reason: str) -> None:
        self.limiter.record_penalty(self.user)
        self.limiter.pause(self.user, seconds, reason)
        self.alert(self.user, reason)
        raise BrokerPaused(reason, seconds)


def _accepted(order_id: Any) -> Answer:
    return Answer("accepted", broker_order_id=None if order_id is None else str(order_id))


def _brackets(
    ticket: Ticket, closing_action: str | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """TP as a GTC limit and SL as a GTC stop, on the side that closes the position; None when
    the ticket has neither."""
    action = closing_action or ("Sell" if ticket.side == "buy" else "Buy")
    orders = []
    if ticket.tp_price is not None:
        orders.append(
            {
                "action": action,
                "orderType": "Limit",
                "price": Decimal(ticket.tp_price),
                "timeInForce": "GTC",
            }
        )
    if ticket.sl_price is not None:
        orders.append(
            {
                "action": action,
                "orderType": "Stop",
                "stopPrice": Decimal(ticket.sl_price),
                "timeInForce": "GTC",
            }
        )
    if not orders:
        return None
    return orders[0], (orders[1] if len(orders) > 1 else None)


def _fit_legs(legs: tuple[tuple[Decimal, Decimal], ...], total: int) -> list[tuple[Decimal, int]]:
    """The legs' qty made to cover `total` exactly: each leg as far as what is left allows, the
    last one taking the difference; legs left with nothing are dropped."""
    fitted, left = [], total
    for n, (price, qty) in enumerate(legs):
        take = left if n == len(legs) - 1 else min(int(qty), left)
        if take > 0:
            fitted.append((price, take))
        left -= take
    return fitted


def _latest_versions(versions: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """order id → its newest OrderVersion (type, qty, prices and time in force live there)."""
    latest: dict[Any, dict[str, Any]] = {}
    for version in sorted(versions, key=lambda v: v["id"]):
        latest[version["orderId"]] = version
    return latest
