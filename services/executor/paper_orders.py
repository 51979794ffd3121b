"""The paper broker's working orders as plain values: the book arithmetic, the protective orders an
intent arms for its trader, and what a tick fills. No SQL, Redis or clock here: the adapters in
paper.py load the rows, call these, and write what changed.

A working order is a `PaperOrder` (role `entry` a resting limit entry, `target` a limit, `stop` a
stop); orders of one OCO group cancel each other when one fills. Each trader's protective orders
carry its `trader_id`, so traders sharing a subaccount (§4b) only ever touch their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from libs.common.futures.instruments import contract_spec
from libs.common.storage.models import PaperOrder, PaperPosition

ZERO = Decimal(0)
PROTECTIVE = ("target", "stop")
REASONS = {"target": "tp", "stop": "sl", "entry": "entry"}


@dataclass(frozen=True)
class Protection:
    """What an order asks its trader's protective orders to be once it is filled (contract §4):
    an `entry` arms orders covering its own quantity; an `add` or a `reduce` replaces the
    trader's orders with ones covering `position_quantity` (None: the book's net)."""

    kind: str  # entry | add | reduce
    side: str  # the order's side
    quantity: Decimal
    trader_id: int | None
    intent_id: uuid.UUID | None
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    legs: tuple[tuple[Decimal, Decimal], ...] = ()  # (price, qty) when several targets
    position_quantity: Decimal | None = None


class OrderFill(NamedTuple):
    """One working order a tick filled. `net_qty` and `book_pnl` are the book's right after it;
    `realized_pnl` is what this fill alone realized; `placed` the orders it armed (a resting
    entry's protection)."""

    order: PaperOrder
    reason: str  # tp | sl | entry
    price: Decimal
    quantity: Decimal
    net_qty: Decimal
    realized_pnl: Decimal
    book_pnl: Decimal
    placed: tuple[PaperOrder, ...]


def apply_fill(book: PaperPosition, side: str, qty: Decimal, price: Decimal) -> Decimal:
    """Apply a fill to the net position (average price on adds, PnL on reductions); returns the
    PnL this fill realized."""
    signed = qty if side == "buy" else -qty
    net = book.net_qty
    if net == 0 or (net > 0) == (signed > 0):
        total = abs(net) + qty
        book.avg_price = ((book.avg_price or ZERO) * abs(net) + price * qty) / total
        book.net_qty = net + signed
        return ZERO
    closing = min(abs(net), qty)
    direction = 1 if net > 0 else -1
    assert book.avg_price is not None, "an open book has an average price"
    realized = (
        (price - book.avg_price) * closing * direction * contract_spec(book.symbol).point_value
    )
    book.realized_pnl = (book.realized_pnl or ZERO) + realized
    book.net_qty = net + signed
    if book.net_qty == 0:
        book.avg_price = None
    elif (book.net_qty > 0) != (net > 0):  # crossed zero: the rest opens at this price
        book.avg_price = price
    return realized


def opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def closing_side(book: PaperPosition) -> str | None:
    if book.net_qty == 0:
        return None
    return "sell" if book.net_qty > 0 else "buy"


def working(orders: Iterable[PaperOrder], **match: Any) -> list[PaperOrder]:
    """The working orders among `orders` whose attributes equal `match` (e.g. trader_id=3)."""
    return [
        o
        for o in orders
        if o.status == "working" and all(getattr(o, k) == v for k, v in match.items())
    ]


def finish(order: PaperOrder, status: str, now: datetime) -> None:
    order.status, order.finished_at = status, now


def cancel(orders: Iterable[PaperOrder], now: datetime) -> None:
    for order in orders:
        if order.status == "working":
            finish(order, "cancelled", now)


def arm(
    book: PaperPosition, orders: list[PaperOrder], p: Protection, now: datetime
) -> list[PaperOrder]:
    """The trader's protective orders after `p`'s order filled; appended to `orders` and returned
    (the caller adds them to its session)."""
    if p.kind == "entry":
        size, side = p.quantity, opposite(p.side)
    else:
        mine = [o for o in working(orders, trader_id=p.trader_id) if o.role in PROTECTIVE]
        cancel(mine, now)
        if p.position_quantity is None:  # an old intent or a manual order: cover the net
            size, side = abs(book.net_qty), closing_side(book) or p.side
        else:
            size = p.position_quantity
            side = opposite(p.side) if p.kind == "add" else p.side
    if size <= 0:
        return []
    placed = protective_orders(book, p, side, size, now)
    orders.extend(placed)
    return placed


def protective_orders(
    book: PaperPosition, p: Protection, side: str, size: Decimal, now: datetime
) -> list[PaperOrder]:
    """One OCO group per target leg (the leg's limit and a stop for the same quantity), or one
    group of the target and the stop for all of `size`."""
    groups: list[tuple[Decimal | None, Decimal]]
    if len(p.legs) >= 2:
        groups = [(price, qty) for price, qty in legs_covering(p.legs, size)]
    elif p.tp_price is not None or p.sl_price is not None:
        groups = [(p.tp_price, size)]
    else:
        return []
    tag = p.intent_id.hex if p.intent_id else f"book-{book.subaccount_id}-{now.timestamp()}"
    placed = []
    for i, (target, qty) in enumerate(groups):
        group = f"{tag}:{i}"
        if target is not None:
            placed.append(_order(book, p, group, "target", side, qty, "limit", target, now))
        if p.sl_price is not None:
            placed.append(_order(book, p, group, "stop", side, qty, "stop", p.sl_price, now))
    return placed


def _order(
    book: PaperPosition,
    p: Protection,
    group: str | None,
    role: str,
    side: str,
    qty: Decimal,
    order_type: str,
    price: Decimal,
    now: datetime,
) -> PaperOrder:
    return PaperOrder(
        subaccount_id=book.subaccount_id,
        contract=book.contract,
        symbol=book.symbol,
        trader_id=p.trader_id,
        intent_id=p.intent_id,
        role=role,
        side=side,
        quantity=qty,
        order_type=order_type,
        price=price,
        oco_group=group,
        status="working",
        created_at=now,
    )


def resting_entry(book: PaperPosition, p: Protection, limit: Decimal, now: datetime) -> PaperOrder:
    """A limit order the market has not reached: it works until a tick does."""
    return _order(book, p, None, "entry", p.side, p.quantity, "limit", limit, now)


def legs_covering(
    legs: tuple[tuple[Decimal, Decimal], ...], size: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """The legs, nearest first, cut to cover exactly `size`: the outermost leg takes any
    difference, and legs beyond `size` are dropped."""
    kept: list[list[Decimal]] = []
    left = size
    for price, qty in legs:
        take = min(qty, left)
        if take > 0:
            kept.append([price, take])
            left -= take
    if left > 0:
        if kept:
            kept[-1][1] += left
        else:
            kept.append([legs[-1][0], left])
    return [(price, qty) for price, qty in kept]


def reaches(order: PaperOrder, price: Decimal) -> bool:
    """A limit fills when the price is at or better than it, a stop once the price trades through
    its trigger."""
    buy = order.side == "buy"
    if order.order_type == "stop":
        return price >= order.price if buy else price <= order.price
    return price <= order.price if buy else price >= order.price


def _fill_order_key(order: PaperOrder, price: Decimal, index: int) -> tuple[int, Decimal, int]:
    # Stops first; then the farthest from this tick, i.e. the nearest to where the market came
    # from (the first leg before the second); then the oldest (the caller lists them by id).
    return (0 if order.order_type == "stop" else 1, -abs(price - order.price), index)


ProtectionOf = Callable[[PaperOrder], "Protection | None"]


def fill_at(
    book: PaperPosition,
    orders: list[PaperOrder],
    price: Decimal,
    protection_of: ProtectionOf,
    now: datetime,
) -> list[OrderFill]:
    """Fill every working order of one book that `price` reaches, each at its own level (a limit
    at its limit, a stop at its trigger), one at a time in a fixed order, cancelling OCO siblings.
    A resting entry that fills arms its protection, which this same price may fill at once."""
    fills: list[OrderFill] = []
    while True:
        reached = [
            _fill_order_key(o, price, i)
            for i, o in enumerate(orders)
            if o.status == "working" and reaches(o, price)
        ]
        if not reached:
            return fills
        order = orders[min(reached)[2]]
        fills.append(_fill_one(book, orders, order, protection_of, now))


def _fill_one(
    book: PaperPosition,
    orders: list[PaperOrder],
    order: PaperOrder,
    protection_of: ProtectionOf,
    now: datetime,
) -> OrderFill:
    qty = order.quantity
    if order.role in PROTECTIVE and order.side == closing_side(book):
        # Each trader's protective orders cover its own contracts, which sum to the net; should
        # they ever cover more (the book was changed by hand), a fill must not flip the book:
        # it takes what is left, and the rest of the order is cancelled.
        qty = min(qty, abs(book.net_qty))
        order.quantity = qty
    realized = apply_fill(book, order.side, qty, order.price)
    finish(order, "filled", now)
    order.fill_price = order.price
    if order.oco_group is not None:
        cancel(
            (o for o in working(orders, oco_group=order.oco_group) if o is not order),
            now,
        )
    placed: list[PaperOrder] = []
    if order.role == "entry":
        p = protection_of(order)
        if p is not None:
            placed = arm(book, orders, p, now)
    return OrderFill(
        order,
        REASONS[order.role],
        order.price,
        qty,
        book.net_qty,
        realized,
        book.realized_pnl,
        tuple(placed),
    )


class Extremes:
    """Which ticks can fill anything: a working order's level is first reached by a tick making a
    new high or low for its symbol. New orders (a resting entry's protection, placed when it
    fills) start the count again from that tick."""

    def __init__(self) -> None:
        self.high: dict[str, Decimal] = {}
        self.low: dict[str, Decimal] = {}

    def is_new(self, symbol: str, price: Decimal) -> bool:
        if symbol in self.high and self.low[symbol] <= price <= self.high[symbol]:
            return False
        self.high[symbol] = max(self.high.get(symbol, price), price)
        self.low[symbol] = min(self.low.get(symbol, price), price)
        return True

    def restart(self, symbol: str, price: Decimal) -> None:
        self.high[symbol] = self.low[symbol] = price


def extremes_in_order(ticks: list[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """The ticks that make a new high or low for their symbol, in order. Whatever fixed level a
    tick of the batch reaches, the first tick to reach it is one of these, so orders filled by
    them fill at the same moments as tick by tick, at a fraction of the queries."""
    seen = Extremes()
    return [(symbol, price) for symbol, price in ticks if seen.is_new(symbol, price)]
