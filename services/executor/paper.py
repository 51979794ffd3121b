"""The paper broker: fills market orders at the last price, and keeps each trader's working orders
(targets, stops, resting limits) as `paper_orders`, filled by ticks.

Its book (`paper_positions`), orders and fills (`paper_fills`) live in PostgreSQL and change in
the same transaction that records the intent's answer, so a crash can never fill an intent twice.
The rules themselves are in paper_orders.py; this module loads the rows and writes what changed.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.storage.models import OrderIntent, PaperFill, PaperOrder, PaperPosition
from services.executor.brokers import Answer, Broker, Ticket
from services.executor.paper_orders import (
    PROTECTIVE,
    ZERO,
    OrderFill,
    Protection,
    apply_fill,
    arm,
    cancel,
    closing_side,
    fill_at,
    resting_entry,
    working,
)

MOVES = ("move_stop", "move_target")


class PaperBroker(Broker):
    name = "paper"

    def __init__(self, client: redis.Redis, prefix: str):
        self.redis = client
        self.prefix = prefix

    def last_price(self, symbol: str) -> Decimal | None:
        value = self.redis.hget(self.prefix + streams.LAST_PRICE, symbol)
        if value is None:
            return None
        return Decimal(value.decode() if isinstance(value, bytes) else value)

    def send(self, ticket: Ticket, session: Session) -> Answer:
        now = datetime.now(UTC)
        if ticket.kind == "flatten":
            return self._flatten(ticket, session, now)
        if ticket.kind in MOVES:
            return _move(ticket, session, now)
        odd = _odd_legs(ticket)
        if odd is not None:
            return Answer("rejected", error=odd)
        price = self.last_price(ticket.symbol)
        if price is None:
            return Answer(
                "rejected",
                error=f"no price for {ticket.symbol} yet; the paper broker fills at the last price",
            )
        book = _book(session, ticket.subaccount_id, ticket.contract, ticket.symbol)
        orders = _orders(session, book)
        done = f"paper-{ticket.cl_ord_id}"
        if ticket.kind == "close":
            # A liquidation: every working order on the contract goes, whoever placed it.
            cancel(orders, now)
            if book.net_qty == 0:
                return Answer("filled", broker_order_id=done, error="already flat")
            side = "sell" if book.net_qty > 0 else "buy"
            _trade(session, book, ticket, side, abs(book.net_qty), price, now)
            return Answer("filled", broker_order_id=done, fill_price=price)
        protection = _protection_of_ticket(ticket)
        if ticket.order_type == "limit":
            limit = ticket.limit_price
            assert limit is not None, "a limit order carries its price"
            if not (price <= limit if ticket.side == "buy" else price >= limit):
                # Not marketable: it rests, and its protection is armed when a tick fills it.
                session.add(resting_entry(book, protection, limit, now))
                return Answer("accepted", broker_order_id=done)
        _trade(session, book, ticket, ticket.side, ticket.quantity, price, now)
        session.add_all(arm(book, orders, protection, now))
        return Answer("filled", broker_order_id=done, fill_price=price)

    def _flatten(self, ticket: Ticket, session: Session, now: datetime) -> Answer:
        books = session.scalars(
            select(PaperPosition)
            .where(PaperPosition.subaccount_id == ticket.subaccount_id)
            .order_by(PaperPosition.contract)
            .with_for_update()
        ).all()
        unpriced = []
        for book in books:
            price = self.last_price(book.symbol) if book.net_qty != 0 else ZERO
            if price is None:
                unpriced.append(book.contract)  # its protection stays while it is open
                continue
            cancel(_orders(session, book), now)
            if book.net_qty != 0:
                side = "sell" if book.net_qty > 0 else "buy"
                _trade(session, book, ticket, side, abs(book.net_qty), price, now)
        if unpriced:
            return Answer(
                "rejected",
                error=f"no last price to flatten {', '.join(unpriced)}; the rest was flattened",
            )
        return Answer("filled", broker_order_id=f"paper-{ticket.cl_ord_id}")

    def lookup(self, ticket: Ticket, session: Session) -> Answer | None:
        # The book changes only in the transaction that records the answer: an interrupted send
        # left no trace, so sending again is safe.
        return None


def _book(session: Session, subaccount_id: int, contract: str, symbol: str) -> PaperPosition:
    book = session.get(PaperPosition, (subaccount_id, contract), with_for_update=True)
    if book is None:
        book = PaperPosition(
            subaccount_id=subaccount_id,
            contract=contract,
            symbol=symbol,
            net_qty=ZERO,
            realized_pnl=ZERO,
        )
        session.add(book)
    return book


def _orders(session: Session, book: PaperPosition) -> list[PaperOrder]:
    """The book's working orders, oldest first (the caller holds the book's lock)."""
    return list(
        session.scalars(
            select(PaperOrder)
            .where(
                PaperOrder.subaccount_id == book.subaccount_id,
                PaperOrder.contract == book.contract,
                PaperOrder.status == "working",
            )
            .order_by(PaperOrder.id)
            .with_for_update()
        )
    )


def _intent_uuid(ticket: Ticket) -> uuid.UUID | None:
    try:
        return uuid.UUID(ticket.intent_id)
    except ValueError:
        return None


def _trade(
    session: Session,
    book: PaperPosition,
    ticket: Ticket,
    side: str,
    qty: Decimal,
    price: Decimal,
    now: datetime,
) -> None:
    """A fill at the market, written to the book and to `paper_fills`."""
    realized = apply_fill(book, side, qty, price)
    session.add(
        PaperFill(
            subaccount_id=book.subaccount_id,
            contract=book.contract,
            symbol=book.symbol,
            trader_id=ticket.trader_id,
            intent_id=_intent_uuid(ticket),
            side=side,
            quantity=qty,
            price=price,
            realized_pnl=realized,
            filled_at=now,
        )
    )


def _protection_of_ticket(ticket: Ticket) -> Protection:
    return Protection(
        kind=ticket.kind,
        side=ticket.side,
        quantity=ticket.quantity,
        trader_id=ticket.trader_id,
        intent_id=_intent_uuid(ticket),
        tp_price=ticket.tp_price,
        sl_price=ticket.sl_price,
        legs=ticket.targets,
        position_quantity=ticket.position_quantity,
    )


def _odd_legs(ticket: Ticket) -> str | None:
    """Why a ticket's target legs cannot rest, checked before anything is traded (a close
    ignores legs: nothing must stop it)."""
    if ticket.kind == "close":
        return None
    for price, qty in ticket.targets:
        if price <= 0 or qty <= 0 or qty != qty.to_integral_value():
            return (
                "every target leg needs a price above 0 and a whole number of contracts "
                f"above 0; got {_text(qty)} at {_text(price)}"
            )
    return None


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _move(ticket: Ticket, session: Session, now: datetime) -> Answer:
    """Move the ticket's trader's working stops (move_stop) or its one target (move_target) on
    the contract: no trade, and other traders' orders stay where they are."""
    stop = ticket.kind == "move_stop"
    level = ticket.sl_price if stop else ticket.tp_price
    what = "stop" if stop else "target"
    if level is None or level <= 0:
        return Answer("rejected", error=f"a {what} move carries the new level above 0")
    book = session.get(PaperPosition, (ticket.subaccount_id, ticket.contract), with_for_update=True)
    done = f"paper-{ticket.cl_ord_id}"
    if book is None or book.net_qty == 0:
        return Answer("filled", broker_order_id=done, error=f"already flat; no {what} to move")
    orders = _orders(session, book)
    mine = [o for o in working(orders, trader_id=ticket.trader_id) if o.role in PROTECTIVE]
    protecting = mine[0].side if mine else closing_side(book)
    if ticket.side != protecting:
        side = "long" if protecting == "sell" else "short"
        return Answer(
            "rejected",
            error=f"the paper position is {side}; a {ticket.side} {what} cannot protect it",
        )
    role = "stop" if stop else "target"
    moving = [o for o in mine if o.role == role]
    if not stop and len(moving) > 1:
        return Answer(
            "rejected",
            error=f"{len(moving)} target legs rest; only a single target can be moved",
        )
    for order in moving:
        order.price = level
    if not moving:
        if not mine:
            return Answer("filled", broker_order_id=done, error=f"no working order to add a {what}")
        session.add_all(_joined(mine, role, level, now))
    return Answer("filled", broker_order_id=done)


def _joined(mine: list[PaperOrder], role: str, level: Decimal, now: datetime) -> list[PaperOrder]:
    """A new level where the trader had none (a stop where only targets rested): one order in
    each of its OCO groups, for that group's quantity."""
    return [
        PaperOrder(
            subaccount_id=o.subaccount_id,
            contract=o.contract,
            symbol=o.symbol,
            trader_id=o.trader_id,
            intent_id=o.intent_id,
            role=role,
            side=o.side,
            quantity=o.quantity,
            order_type="stop" if role == "stop" else "limit",
            price=level,
            oco_group=o.oco_group,
            status="working",
            created_at=now,
        )
        for o in mine
    ]


def working_symbols(session: Session) -> set[str]:
    """Roots with a working paper order: the only ones a tick can fill anything on."""
    return set(
        session.scalars(select(PaperOrder.symbol).where(PaperOrder.status == "working").distinct())
    )


def fill_working(
    session: Session, symbol: str, price: Decimal, now: datetime
) -> list[tuple[PaperPosition, OrderFill]]:
    """Fill the working orders of `symbol` that `price` reaches, book by book, each fill written
    to `paper_fills`; the orders a resting entry's fill armed are added to the session."""
    books = session.scalars(
        select(PaperPosition)
        .where(PaperPosition.symbol == symbol)
        .order_by(PaperPosition.subaccount_id, PaperPosition.contract)
        .with_for_update()
    ).all()
    rows = session.scalars(
        select(PaperOrder)
        .where(PaperOrder.symbol == symbol, PaperOrder.status == "working")
        .order_by(PaperOrder.id)
        .with_for_update()
    ).all()
    by_book: dict[tuple[int, str], list[PaperOrder]] = defaultdict(list)
    for row in rows:
        by_book[(row.subaccount_id, row.contract)].append(row)
    done: list[tuple[PaperPosition, OrderFill]] = []
    for book in books:
        orders = by_book.get((book.subaccount_id, book.contract))
        if orders:
            fills = fill_at(book, orders, price, lambda o: _protection_of_entry(session, o), now)
            done += [(book, fill) for fill in fills]
    session.add_all(o for _, fill in done for o in fill.placed)
    session.flush()  # the ids of orders placed and filled within this price, for their fills
    for book, fill in done:
        session.add(
            PaperFill(
                subaccount_id=book.subaccount_id,
                contract=book.contract,
                symbol=book.symbol,
                trader_id=fill.order.trader_id,
                intent_id=fill.order.intent_id,
                order_id=fill.order.id,
                side=fill.order.side,
                quantity=fill.quantity,
                price=fill.price,
                realized_pnl=fill.realized_pnl,
                filled_at=now,
            )
        )
    return done


def _protection_of_entry(session: Session, order: PaperOrder) -> Protection | None:
    """The protection a resting entry asked for, from its intent (the ticket's levels)."""
    intent = session.get(OrderIntent, order.intent_id) if order.intent_id else None
    if intent is None:
        return None
    legs = tuple(
        (Decimal(leg["price"]), Decimal(leg["qty"]))
        for leg in (intent.targets or {}).get("legs", [])
    )
    return Protection(
        kind=intent.kind if intent.kind in ("entry", "add", "reduce") else "entry",
        side=order.side,
        quantity=order.quantity,
        trader_id=order.trader_id,
        intent_id=order.intent_id,
        tp_price=intent.tp_price,
        sl_price=intent.sl_price,
        legs=legs,
        position_quantity=intent.position_quantity,
    )


def settle_entry(session: Session, fill: OrderFill) -> OrderIntent | None:
    """The intent of a resting entry a tick filled, now `filled` at the order's price (it was
    answered `accepted` when it began to rest)."""
    order = fill.order
    if order.role != "entry" or order.intent_id is None:
        return None
    intent = session.get(OrderIntent, order.intent_id, with_for_update=True)
    if intent is None or intent.status != "accepted":
        return None
    intent.status, intent.fill_price = "filled", fill.price
    intent.finished_at = order.finished_at
    if intent.accepted_at is None:
        intent.accepted_at = order.finished_at
    return intent
