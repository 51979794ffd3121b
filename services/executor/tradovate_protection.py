"""The protective orders of a Tradovate position (docs/contract.md §3b, §4): an entry with several
target legs as one order strategy, the legs re-armed as OCO pairs after an add or a reduce, and
stop or target moves as modifies of the working orders. Traders may share a subaccount (§4b): each
protective order says whose it is in its `text`, and a ticket touches only its trader's. Every
request goes through `Caller`; who owns which order is in `tradovate_ownership.py`.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from libs.common.tradovate import client as tradovate
from services.executor.brokers import Answer, BrokerPaused, Ticket
from services.executor.tradovate_calls import Caller
from services.executor.tradovate_ownership import (
    LIVE,
    StrategyOwners,
    owned_by,
    owner_tag,
    protective_orders,
)

MODIFY_RETRIES = 3  # AnotherCommandPending: a previous command on the order is still in flight
MODIFY_RETRY_WAIT_S = 0.5


def accepted(order_id: Any) -> Answer:
    return Answer("accepted", broker_order_id=None if order_id is None else str(order_id))


def start_strategy(
    client: tradovate.TradovateClient,
    call: Caller,
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
    for price, leg_qty in fit_legs(ticket.targets, qty):
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
    return accepted(strategy_entry(client, call, int(strategy["id"])))


def strategy_entry(client: tradovate.TradovateClient, call: Caller, strategy_id: int) -> int:
    """The strategy's entry order, whose fill settles the intent; the strategy's own id when
    its links cannot be read (the strategy is out: nothing here may fail the answer)."""
    try:
        links = call(client.order_strategy_link_deps, strategy_id, ticket=False)
    except (tradovate.TradovateError, BrokerPaused):
        return strategy_id
    orders = sorted(int(link["orderId"]) for link in links if link.get("orderId"))
    entry = next((int(k["orderId"]) for k in links if k.get("label") == "Entry"), None)
    return entry or (orders[0] if orders else strategy_id)


def move_levels(
    client: tradovate.TradovateClient,
    call: Caller,
    ticket: Ticket,
    contract_id: int,
    owners: StrategyOwners,
) -> Answer:
    """The ticket's trader's working stops (move_stop) or targets (move_target) closing the
    position on the contract go to the new level: one modify each, with its own qty, time in
    force and text. Other traders' orders on the same contract stay where they are (§4b)."""
    stop = ticket.kind == "move_stop"
    level = ticket.sl_price if stop else ticket.tp_price
    what = "stop" if stop else "target"
    if level is None:
        return Answer("rejected", error=f"{ticket.kind} carries no new {what} level")
    closing = "Buy" if ticket.side == "buy" else "Sell"
    wanted = "Stop" if stop else "Limit"
    moving = [
        p
        for p in protective_orders(client, call, ticket.broker_account_id, contract_id, owners)
        if p.order.get("action") == closing
        and p.version.get("orderType") == wanted
        and owned_by(p, ticket.trader_id)
    ]
    if not moving:
        return Answer("accepted", error=f"no working {what} order to move")
    moved, refused = [], []
    for order in moving:
        current = order.version.get("stopPrice" if stop else "price")
        if current is not None and Decimal(str(current)) == level:
            moved.append(order.id)  # already there (a resend after a crash)
            continue
        try:
            modify(client, call, order.id, order.version, level, stop)
            moved.append(order.id)
        except tradovate.Rejected as exc:  # e.g. TooLate: it filled meanwhile
            refused.append(f"{order.id}: {exc.failure_reason}: {exc.failure_text}")
    if not moved:
        return Answer("rejected", error="Tradovate refused the move: " + "; ".join(refused))
    return Answer(
        "accepted",
        broker_order_id=str(moved[0]),
        error=("some orders were not moved: " + "; ".join(refused)) if refused else None,
    )


def modify(
    client: tradovate.TradovateClient,
    call: Caller,
    order_id: int,
    version: dict[str, Any],
    level: Decimal,
    stop: bool,
) -> None:
    """The full state Tradovate wants (§5.6): same qty, type, time in force and text (whose the
    order is), new price."""
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
                text=version.get("text"),
            )
            return
        except tradovate.Rejected as exc:
            if exc.failure_reason != "AnotherCommandPending" or attempt == MODIFY_RETRIES:
                raise
            time.sleep(MODIFY_RETRY_WAIT_S)


def rearm(
    client: tradovate.TradovateClient,
    call: Caller,
    ticket: Ticket,
    contract_id: int,
    owners: StrategyOwners,
) -> None:
    """After an add or a reduce: the trader's protective orders replaced by ones covering its
    `position_quantity` at the ticket's levels (none when it is 0: the trader is out). Without a
    `position_quantity` (an old intent) every working order on the contract goes and the new
    ones cover the broker's net, as before traders shared subaccounts."""
    account_id = ticket.broker_account_id
    if ticket.position_quantity is None:
        for order in call(client.order_deps, account_id, ticket=False):
            if order.get("contractId") == contract_id and order.get("ordStatus") in LIVE:
                call(client.cancel_order, int(order["id"]))
        net = next(
            (
                p.get("netPos", 0)
                for p in call(client.position_list, ticket=False)
                if p.get("accountId") == account_id and p.get("contractId") == contract_id
            ),
            0,
        )
        closing = "Sell" if net > 0 else "Buy"
        protect(client, call, ticket, closing, abs(net))
        return
    for order in protective_orders(client, call, account_id, contract_id, owners):
        if owned_by(order, ticket.trader_id):
            call(client.cancel_order, order.id)
    # The trader is long after a buy that adds or a sell that reduces.
    long = ticket.side == ("buy" if ticket.kind == "add" else "sell")
    protect(client, call, ticket, "Sell" if long else "Buy", int(ticket.position_quantity))


def protect(
    client: tradovate.TradovateClient, call: Caller, ticket: Ticket, closing: str, qty: int
) -> None:
    """GTC protective orders for `qty` contracts at the ticket's levels, tagged with its trader:
    one OCO pair per target leg, else the target and the stop as one pair (or one order alone)."""
    if not qty:
        return
    if ticket.targets:
        protect_legs(client, call, ticket, closing, qty)
        return
    brackets = bracket_orders(ticket, closing_action=closing)
    if brackets is None:
        return
    first, second = brackets
    if second is None:  # one level only: a plain order, not an OCO pair
        call(
            client.place_order,
            ticket.broker_account_id,
            ticket.account_spec,
            first["action"],
            ticket.contract,
            qty,
            order_type=first["orderType"],
            price=first.get("price"),
            stop_price=first.get("stopPrice"),
            time_in_force="GTC",
            text=first["text"],
        )
        return
    call(
        client.place_oco,
        ticket.broker_account_id,
        ticket.account_spec,
        first["action"],
        ticket.contract,
        qty,
        second,
        order_type=first["orderType"],
        price=first.get("price"),
        stop_price=first.get("stopPrice"),
        time_in_force="GTC",
        text=first["text"],
    )


def protect_legs(
    client: tradovate.TradovateClient, call: Caller, ticket: Ticket, action: str, net: int
) -> None:
    """Per target leg a GTC limit for the leg's qty, OCO-paired with a stop for the same qty
    when there is a stop level; the legs cover `net`, the trader's contracts."""
    tag = owner_tag(ticket.trader_id)
    for price, qty in fit_legs(ticket.targets, net):
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
                text=tag,
            )
            continue
        stop = {
            "action": action,
            "orderType": "Stop",
            "stopPrice": Decimal(ticket.sl_price),
            "timeInForce": "GTC",
            "text": tag,
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
            text=tag,
        )


def bracket_orders(
    ticket: Ticket, closing_action: str | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """TP as a GTC limit and SL as a GTC stop, on the side that closes the position, tagged with
    the ticket's trader; None when the ticket has neither."""
    action = closing_action or ("Sell" if ticket.side == "buy" else "Buy")
    tag = owner_tag(ticket.trader_id)
    orders = []
    if ticket.tp_price is not None:
        orders.append(
            {
                "action": action,
                "orderType": "Limit",
                "price": Decimal(ticket.tp_price),
                "timeInForce": "GTC",
                "text": tag,
            }
        )
    if ticket.sl_price is not None:
        orders.append(
            {
                "action": action,
                "orderType": "Stop",
                "stopPrice": Decimal(ticket.sl_price),
                "timeInForce": "GTC",
                "text": tag,
            }
        )
    if not orders:
        return None
    return orders[0], (orders[1] if len(orders) > 1 else None)


def fit_legs(legs: tuple[tuple[Decimal, Decimal], ...], total: int) -> list[tuple[Decimal, int]]:
    """The legs' qty made to cover `total` exactly: each leg as far as what is left allows, the
    last one taking the difference; legs left with nothing are dropped."""
    fitted, left = [], total
    for n, (price, qty) in enumerate(legs):
        take = left if n == len(legs) - 1 else min(int(qty), left)
        if take > 0:
            fitted.append((price, take))
        left -= take
    return fitted
