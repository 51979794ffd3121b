"""Sending tickets to Tradovate (docs/contract.md §4): bracket entries, adds and reduces (whose
trader's protective orders follow them, §4b), liquidations, and what became of an interrupted
send. The protective orders (order strategies, re-armed legs, stop and target moves) are in
`tradovate_protection.py`; every request goes through the broker user's shared limiter
(`tradovate_calls.Caller`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.storage.models import Account, OrderIntent
from libs.common.tradovate import client as tradovate
from libs.common.tradovate.accounts import AccountUnusable, TokenKeeper, limiter_user
from services.executor.brokers import Answer, Broker, BrokerPaused, BrokerUnavailable, Ticket
from services.executor.limiter import BrokerLimiter
from services.executor.tradovate_calls import Caller
from services.executor.tradovate_ownership import LIVE, StrategyOwners, owner_tag
from services.executor.tradovate_protection import (
    accepted,
    bracket_orders,
    move_levels,
    rearm,
    start_strategy,
    strategy_entry,
)

log = logging.getLogger("executor")

EXIT_KINDS = ("close", "flatten", "reduce", "move_stop", "move_target")
_CONTRACT_IDS: dict[tuple[str, str], int] = {}  # (base url, contract name) → Tradovate contract id


def strategy_owners(session: Session) -> StrategyOwners:
    """Whose the targets and stops of an order strategy are: the trader of the intent that started
    it (its uuid is the intent's clOrdId). Read from our own intents rather than remembered, so it
    holds across restarts and for strategies started before the executor last came up."""

    def owners(uuids: list[str]) -> dict[str, str]:
        if not uuids:
            return {}
        rows = session.execute(
            select(OrderIntent.cl_ord_id, OrderIntent.trader_id).where(
                OrderIntent.cl_ord_id.in_(uuids)
            )
        )
        return {cl_ord_id: owner_tag(trader_id) for cl_ord_id, trader_id in rows}

    return owners


def _protection_changes(ticket: Ticket) -> bool:
    """An add or reduce re-arms protection when it has levels, and cancels the trader's when it
    leaves the trader with nothing (a shared contract's way out, §4b)."""
    levels = ticket.tp_price is not None or ticket.sl_price is not None or bool(ticket.targets)
    return levels or ticket.position_quantity == 0


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
        call = Caller(
            self.limiter,
            limiter_user(account),
            "exit" if ticket.kind in EXIT_KINDS else "entry",
            self.alert,
        )
        try:
            return self._send(client, call, ticket, strategy_owners(session))
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

    def _send(
        self,
        client: tradovate.TradovateClient,
        call: Caller,
        ticket: Ticket,
        owners: StrategyOwners,
    ) -> Answer:
        if ticket.kind == "flatten":
            return self._flatten(client, call, ticket)
        contract_id = self._contract_id(client, call, ticket.contract)
        if contract_id is None:
            return Answer(
                "rejected", error=f"Tradovate does not know the contract {ticket.contract}"
            )
        if ticket.kind == "close":
            return accepted(call(client.liquidate_position, ticket.broker_account_id, contract_id))
        if ticket.kind in ("move_stop", "move_target"):
            return move_levels(client, call, ticket, contract_id, owners)
        action = "Buy" if ticket.side == "buy" else "Sell"
        qty = int(ticket.quantity)
        order_type = "Limit" if ticket.order_type == "limit" else "Market"
        if ticket.kind == "entry" and ticket.targets:
            return start_strategy(client, call, ticket, action, order_type)
        brackets = bracket_orders(ticket)
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
            return accepted(result.order_id)
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
        return self._protected(client, call, ticket, contract_id, owners, order_id)

    def _protected(
        self,
        client: tradovate.TradovateClient,
        call: Caller,
        ticket: Ticket,
        contract_id: int,
        owners: StrategyOwners,
        order_id: Any,
    ) -> Answer:
        """An add or reduce that is out: its trader's protective orders follow it (§4b)."""
        if ticket.kind not in ("add", "reduce") or not _protection_changes(ticket):
            return accepted(order_id)
        try:
            rearm(client, call, ticket, contract_id, owners)
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
        return accepted(order_id)

    def _contract_id(
        self, client: tradovate.TradovateClient, call: Caller, name: str
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

    def _flatten(self, client: tradovate.TradovateClient, call: Caller, ticket: Ticket) -> Answer:
        """Every contract held liquidated (which cancels its working orders), then every working
        order left on the account cancelled too: resting entries on contracts not held (§4c)."""
        last = None
        liquidated = set()
        for position in call(client.position_list, ticket=False):
            if position.get("accountId") == ticket.broker_account_id and position.get("netPos"):
                contract_id = int(position["contractId"])
                last = call(client.liquidate_position, ticket.broker_account_id, contract_id)
                liquidated.add(contract_id)
        for order in call(client.order_deps, ticket.broker_account_id, ticket=False):
            if order.get("ordStatus") in LIVE and order.get("contractId") not in liquidated:
                call(client.cancel_order, int(order["id"]))
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
        call = Caller(self.limiter, limiter_user(account), "exit", self.alert)
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
            if order is None:
                return None
            contract_id = self._contract_id(client, call, ticket.contract)
        except tradovate.BrokerUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from exc
        if contract_id is None:
            return accepted(order.get("id"))
        # The protection step may not have run before the interruption: it is done again (it
        # replaces the trader's orders, so running it twice leaves the same orders).
        owners = strategy_owners(session)
        return self._protected(client, call, ticket, contract_id, owners, order.get("id"))

    def _strategy_found(
        self, client: tradovate.TradovateClient, call: Caller, ticket: Ticket
    ) -> Answer | None:
        strategy = call(
            client.find_order_strategy, ticket.broker_account_id, ticket.cl_ord_id, ticket=False
        )
        if strategy is None:
            return None
        return accepted(strategy_entry(client, call, int(strategy["id"])))

    def _liquidated(
        self, client: tradovate.TradovateClient, call: Caller, ticket: Ticket
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
