"""Order strategies of the simulated Tradovate (tradovate.md §5.8): the built-in bracket strategy
(type 2) — an entry, then after its fill one OCO pair per bracket at the fill ± the bracket's
signed offsets — and its `OrderStrategy` / `OrderStrategyLink` entities.

Sim choices: the brackets' qty must add up to the entry's orderQty; a bracket without
`stopLoss` (or without `profitTarget`) gets its one order alone; bracket orders are GTC and carry
the entry as `parentId`; interrupting cancels the strategy's live orders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from simulators.tradovate.broker_entities import JSON, LIVE, Order, OrderRefused, OrderSpec

if TYPE_CHECKING:
    from simulators.tradovate.broker_entities import Account
    from simulators.tradovate.broker_state import Book

BRACKET_STRATEGY = 2  # the only documented orderStrategyTypeId
ACTIVE, FINISHED, INTERRUPTED = "ActiveStrategy", "ExecutionFinished", "ExecutionInterrupted"


class StrategyRefused(Exception):
    """An `OrderStrategyStatusResponse` with `errorText` and no strategy."""


@dataclass(frozen=True)
class Bracket:
    qty: int
    profit_target: Decimal | None  # signed offset from the entry's fill price
    stop_loss: Decimal | None
    trailing: bool


@dataclass
class Strategy:
    id: int
    account_id: int
    contract_id: int
    action: str
    params: str  # as sent: a JSON-encoded string
    uuid: str | None
    custom_tag50: str | None
    timestamp: str
    entry: OrderSpec
    brackets: tuple[Bracket, ...]
    status: str = ACTIVE

    def json(self) -> JSON:
        row = {
            "id": self.id,
            "accountId": self.account_id,
            "timestamp": self.timestamp,
            "contractId": self.contract_id,
            "orderStrategyTypeId": BRACKET_STRATEGY,
            "action": self.action,
            "params": self.params,
            "uuid": self.uuid,
            "status": self.status,
            "customTag50": self.custom_tag50,
        }
        return {k: v for k, v in row.items() if v is not None}


def _offset(bracket: JSON, field: str) -> Decimal | None:
    value = bracket.get(field)
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        return Decimal(str(value))
    except InvalidOperation:
        raise StrategyRefused(f"{field} must be a number") from None


def parse_params(action: Any, params: Any) -> tuple[OrderSpec, tuple[Bracket, ...]]:
    """The entry and brackets of a `params` string; `StrategyRefused` for what Tradovate would."""
    if action not in ("Buy", "Sell"):
        raise StrategyRefused("action must be Buy or Sell")
    if not isinstance(params, str):
        raise StrategyRefused("params must be a JSON-encoded string")
    try:
        decoded = json.loads(params, parse_float=Decimal)
    except ValueError:
        raise StrategyRefused("params is not valid JSON") from None
    entry, brackets = decoded.get("entryVersion"), decoded.get("brackets")
    if not isinstance(entry, dict) or not isinstance(brackets, list) or not brackets:
        raise StrategyRefused("params needs entryVersion and at least one bracket")
    spec = OrderSpec(
        action=action,
        qty=entry.get("orderQty", 0),  # refused with the entry's checks when missing
        order_type=entry.get("orderType", ""),
        price=_offset(entry, "price"),
        stop_price=_offset(entry, "stopPrice"),
        time_in_force=entry.get("timeInForce"),
    )
    parsed = []
    for b in brackets:
        qty = b.get("qty") if isinstance(b, dict) else None
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise StrategyRefused("every bracket needs a positive integer qty")
        target, stop = _offset(b, "profitTarget"), _offset(b, "stopLoss")
        if target is None and stop is None:
            raise StrategyRefused("a bracket needs profitTarget or stopLoss")
        parsed.append(Bracket(qty, target, stop, bool(b.get("trailingStop"))))
    if any(b.trailing for b in parsed):
        raise StrategyRefused("trailing stops are not simulated")
    if sum(b.qty for b in parsed) != spec.qty:
        raise StrategyRefused("the brackets' qty must add up to the entry's orderQty")
    return spec, tuple(parsed)


def start(
    book: Book, account: Account, symbol: Any, action: Any, body: JSON, automated: bool
) -> Strategy:
    if body.get("orderStrategyTypeId") != BRACKET_STRATEGY:
        raise StrategyRefused("Unknown orderStrategyTypeId")
    entry, brackets = parse_params(action, body.get("params"))
    contract = book._checked(account, symbol, entry)
    uuid, tag = body.get("uuid"), body.get("customTag50")
    strategy = Strategy(
        book.next_id(),
        account.id,
        contract.id,
        action,
        body["params"],
        uuid if isinstance(uuid, str) else None,
        tag if isinstance(tag, str) else None,
        book._stamp(),
        entry,
        brackets,
    )
    book.strategies[strategy.id] = strategy
    book.notify("orderStrategy", "Created", strategy.json(), account.id)
    order = book._new_order(account, contract.id, entry, automated)
    order.strategy_id = strategy.id
    link(book, strategy, order, "Entry")
    book._match(contract.id)
    return strategy


def link(book: Book, strategy: Strategy, order: Order, label: str) -> None:
    row: JSON = {"id": book.next_id(), "orderStrategyId": strategy.id, "orderId": order.id}
    row["label"] = label
    book.links[row["id"]] = row
    book.notify("orderStrategyLink", "Created", row, strategy.account_id)


def entry_filled(book: Book, strategy: Strategy, entry: Order, price: Decimal) -> None:
    """One OCO pair per bracket, at the fill price plus the bracket's signed offsets."""
    account = book.accounts[strategy.account_id]
    closing = "Sell" if strategy.action == "Buy" else "Buy"
    for bracket in strategy.brackets:
        specs = []
        if bracket.profit_target is not None:
            specs.append(
                ("Target", OrderSpec(closing, bracket.qty, "Limit", price + bracket.profit_target))
            )
        if bracket.stop_loss is not None:
            stop = price + bracket.stop_loss
            specs.append(("Stop", OrderSpec(closing, bracket.qty, "Stop", stop_price=stop)))
        pair = []
        for label, spec in specs:
            order = book._new_order(
                account, entry.contract_id, _gtc(spec), True, parent_id=entry.id
            )
            order.strategy_id = strategy.id
            link(book, strategy, order, label)
            pair.append(order)
        if len(pair) == 2:
            pair[0].oco_id, pair[1].oco_id = pair[1].id, pair[0].id


def _gtc(spec: OrderSpec) -> OrderSpec:
    return OrderSpec(spec.action, spec.qty, spec.order_type, spec.price, spec.stop_price, "GTC")


def progress(book: Book, strategy: Strategy) -> None:
    """ExecutionFinished once the entry is done and no bracket order is live."""
    if strategy.status != ACTIVE:
        return
    mine = [o for o in book.orders.values() if o.strategy_id == strategy.id]
    if any(o.status in LIVE for o in mine):
        return
    strategy.status = FINISHED
    book.notify("orderStrategy", "Updated", strategy.json(), strategy.account_id)


def interrupt(book: Book, user: str, strategy_id: Any) -> Strategy:
    strategy = book.strategies.get(strategy_id) if isinstance(strategy_id, int) else None
    if strategy is None or book.accounts[strategy.account_id].user != user:
        raise OrderRefused("UnknownReason", "Access is denied")
    if strategy.status != ACTIVE:
        return strategy
    strategy.status = INTERRUPTED
    for order in [o for o in book.orders.values() if o.strategy_id == strategy.id]:
        if order.status in LIVE:
            book._cancel(order)
    book.notify("orderStrategy", "Updated", strategy.json(), strategy.account_id)
    return strategy
