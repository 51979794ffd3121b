"""The simulated Tradovate's entities and their JSON (tradovate.md §5.2): accounts, orders,
versions, command and execution reports, positions, and the two refusal shapes of order commands
(§4, §5.3)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

JSON = dict[str, Any]
LIVE = ("Working", "Suspended")  # Suspended: an OSO bracket waiting for its entry to fill
LIQUIDATE_ONLY_ACTIONS = {"LiquidateOnlyModeImmediately", "AgreedOnLiqOnlyModeByAutoLiq"}
ORDER_TYPES = {"Market", "Limit", "Stop", "StopLimit"}


class OrderRefused(Exception):
    """A failureReason/failureText answer (§5.3)."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(f"{reason}: {text}")
        self.reason, self.text = reason, text


class OrderInvalid(Exception):
    """A `violations` answer (§4): the request itself is malformed."""

    def __init__(self, constraint: str, value: object, description: str) -> None:
        super().__init__(description)
        self.violations = [
            {"constraint": constraint, "value": str(value), "description": description}
        ]


@dataclass(frozen=True)
class OrderSpec:
    """What one order version asks for: placeorder fields, or a bracket given the entry's qty."""

    action: str
    qty: int
    order_type: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    cl_ord_id: str | None = None
    text: str | None = None  # free text ≤ 64 characters, kept on the version (§5.2, §5.3)


@dataclass
class Account:
    id: int
    name: str
    user: str
    user_id: int
    timestamp: str
    admin_action: str = "Normal"
    admin_timestamp: str | None = None
    liquidate_only: str | None = None  # a timestamp while liquidate-only is on (§5.2)

    @property
    def liquidation_only(self) -> bool:
        return self.liquidate_only is not None or self.admin_action in LIQUIDATE_ONLY_ACTIONS

    def json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "userId": self.user_id,
            "accountType": "Customer",
            "active": True,
            "clearingHouseId": 2,
            "riskCategoryId": 2,
            "autoLiqProfileId": self.id,
            "marginAccountType": "Speculator",
            "legalStatus": "Individual",
            "timestamp": self.timestamp,
            "readonly": False,
        }

    def risk_json(self) -> JSON:
        row: JSON = {"id": self.id, "adminAction": self.admin_action, "userTriggeredLiqOnly": False}
        if self.admin_timestamp:
            row["adminTimestamp"] = self.admin_timestamp
        if self.liquidate_only:
            row["liquidateOnly"] = self.liquidate_only
        return row


@dataclass
class Order:
    id: int
    account_id: int
    contract_id: int
    spec: OrderSpec  # the latest version
    status: str
    timestamp: str
    parent_id: int | None = None
    oco_id: int | None = None
    rested: bool = False  # has sat through a price check: later fills are at its own price
    triggered: bool = False  # a stop whose stop price was reached
    strategy_id: int | None = None  # an order strategy's entry or bracket (§5.8)
    command_id: int = 0  # its latest command, which the execution reports point at (§4)

    def json(self) -> JSON:
        row: JSON = {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "timestamp": self.timestamp,
            "action": self.spec.action,
            "ordStatus": self.status,
            "admin": False,
        }
        if self.parent_id:
            row["parentId"] = self.parent_id
        if self.oco_id:
            row["ocoId"] = row["linkedId"] = self.oco_id
        return row


def version_json(version_id: int, order_id: int, spec: OrderSpec) -> JSON:
    row = {
        "id": version_id,
        "orderId": order_id,
        "orderQty": spec.qty,
        "orderType": spec.order_type,
        "price": spec.price,
        "stopPrice": spec.stop_price,
        "timeInForce": spec.time_in_force,
        "text": spec.text,
    }
    return {k: v for k, v in row.items() if v is not None}


@dataclass
class Position:
    id: int
    account_id: int
    contract_id: int
    timestamp: str
    trade_date: JSON
    net_pos: int = 0
    net_price: Decimal | None = None
    bought: int = 0
    bought_value: Decimal = Decimal(0)
    sold: int = 0
    sold_value: Decimal = Decimal(0)

    def apply(self, action: str, qty: int, price: Decimal, stamp: str) -> None:
        signed = qty if action == "Buy" else -qty
        old, new = self.net_pos, self.net_pos + signed
        if action == "Buy":
            self.bought, self.bought_value = self.bought + qty, self.bought_value + qty * price
        else:
            self.sold, self.sold_value = self.sold + qty, self.sold_value + qty * price
        if old == 0 or (old > 0) == (signed > 0):  # opening or adding: a new average
            self.net_price = ((self.net_price or 0) * abs(old) + price * qty) / abs(new)
        elif new == 0:
            self.net_price = None
        elif (new > 0) != (old > 0):  # reversed through flat: the rest opened at this fill
            self.net_price = price
        self.net_pos, self.timestamp = new, stamp

    def json(self) -> JSON:
        row = {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "timestamp": self.timestamp,
            "tradeDate": self.trade_date,
            "netPos": self.net_pos,
            "netPrice": self.net_price,
            "bought": self.bought,
            "boughtValue": self.bought_value,
            "sold": self.sold,
            "soldValue": self.sold_value,
            "prevPos": 0,
        }
        return {k: v for k, v in row.items() if v is not None}


def command_report_json(report_id: int, command_id: int, stamp: str, order: Order) -> JSON:
    """The one report of a command the sim accepts: it went straight to execution (§5.9).
    Sim choice: Tradovate may send RiskPassed first; one report per command is sent here."""
    return {
        "id": report_id,
        "commandId": command_id,
        "timestamp": stamp,
        "commandStatus": "AtExecution",
        "ordStatus": order.status,
    }


def execution_report_json(
    report_id: int,
    order: Order,
    exec_type: str,
    stamp: str,
    trade_date: JSON,
    fill: tuple[int, Decimal] | None = None,
) -> JSON:
    """An ExecutionReport (§5.2): `New`, `Replaced`, `Canceled`, or `Trade` with its fill
    (qty, price). The sim fills an order whole, so a Trade's cumQty is its lastQty."""
    row: JSON = {
        "id": report_id,
        "commandId": order.command_id,
        "name": str(order.id),  # Sim choice: the docs do not say what `name` holds
        "accountId": order.account_id,
        "contractId": order.contract_id,
        "timestamp": stamp,
        "tradeDate": trade_date,
        "orderId": order.id,
        "execType": exec_type,
        "ordStatus": order.status,
        "action": order.spec.action,
    }
    if fill is not None:
        qty, price = fill
        row.update(cumQty=qty, avgPx=price, lastQty=qty, lastPx=price)
    return row
