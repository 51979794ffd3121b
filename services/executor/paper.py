"""The paper broker: fills market orders at the last price and holds each position's bracket.

Its book lives in PostgreSQL (`paper_positions`), changed in the same transaction that records the
intent's answer, so a crash can never fill an intent twice. `fill_brackets` takes a tick and fills
any take-profit or stop-loss it reaches, exactly at the level, as a real resting order would.
"""

from __future__ import annotations

from decimal import Decimal

import redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.futures.instruments import contract_spec
from libs.common.storage.models import PaperPosition
from services.executor.brokers import Answer, Broker, Ticket

ZERO = Decimal(0)


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
        if ticket.kind == "flatten":
            return self._flatten(ticket, session)
        price = self.last_price(ticket.symbol)
        if price is None:
            return Answer(
                "rejected",
                error=f"no price for {ticket.symbol} yet; the paper broker fills at the last price",
            )
        book = session.get(
            PaperPosition, (ticket.subaccount_id, ticket.contract), with_for_update=True
        )
        if book is None:
            book = PaperPosition(
                subaccount_id=ticket.subaccount_id,
                contract=ticket.contract,
                symbol=ticket.symbol,
                net_qty=ZERO,
                realized_pnl=ZERO,
            )
            session.add(book)
        if ticket.order_type == "limit":
            limit = ticket.limit_price
            assert limit is not None, "a limit order carries its price"
            marketable = price <= limit if ticket.side == "buy" else price >= limit
            if not marketable:
                return Answer(
                    "rejected",
                    error="the paper broker fills limit orders only when the last price "
                    "already reaches the limit; resting limit orders are not simulated",
                )
        if ticket.kind == "close":
            if book.net_qty == 0:
                return Answer(
                    "filled", broker_order_id=f"paper-{ticket.cl_ord_id}", error="already flat"
                )
            qty, side = abs(book.net_qty), ("sell" if book.net_qty > 0 else "buy")
            _fill(book, side, qty, price)
            book.tp_price = book.sl_price = None
        else:
            _fill(book, ticket.side, ticket.quantity, price)
            book.tp_price, book.sl_price = (
                (ticket.tp_price, ticket.sl_price) if book.net_qty else (None, None)
            )
        return Answer("filled", broker_order_id=f"paper-{ticket.cl_ord_id}", fill_price=price)

    def _flatten(self, ticket: Ticket, session: Session) -> Answer:
        books = session.scalars(
            select(PaperPosition)
            .where(PaperPosition.subaccount_id == ticket.subaccount_id, PaperPosition.net_qty != 0)
            .with_for_update()
        ).all()
        unpriced = []
        for book in books:
            price = self.last_price(book.symbol)
            if price is None:
                unpriced.append(book.contract)
                continue
            _fill(book, "sell" if book.net_qty > 0 else "buy", abs(book.net_qty), price)
            book.tp_price = book.sl_price = None
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


def _fill(book: PaperPosition, side: str, qty: Decimal, price: Decimal) -> None:
    """Apply a fill to the net position: average price on adds, realized PnL on reductions."""
    signed = qty if side == "buy" else -qty
    spec = contract_spec(book.symbol)
    net = book.net_qty
    if net == 0 or (net > 0) == (signed > 0):
        total = abs(net) + qty
        book.avg_price = ((book.avg_price or ZERO) * abs(net) + price * qty) / total
        book.net_qty = net + signed
        return
    closing = min(abs(net), qty)
    direction = 1 if net > 0 else -1
    assert book.avg_price is not None, "an open book has an average price"
    book.realized_pnl += (price - book.avg_price) * closing * direction * spec.point_value
    book.net_qty = net + signed
    if book.net_qty == 0:
        book.avg_price = None
    elif (book.net_qty > 0) != (net > 0):  # crossed zero: the rest opens at this price
        book.avg_price = price


def extremes_in_order(ticks: list[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """The ticks that make a new high or low for their symbol, in order. Whatever level a tick of
    the batch reaches, the first tick to reach it is one of these, so brackets filled by them fill
    at the same moments as tick by tick, at a fraction of the queries."""
    high: dict[str, Decimal] = {}
    low: dict[str, Decimal] = {}
    kept = []
    for symbol, price in ticks:
        if symbol not in high or price > high[symbol] or price < low[symbol]:
            kept.append((symbol, price))
            high[symbol] = max(high.get(symbol, price), price)
            low[symbol] = min(low.get(symbol, price), price)
    return kept


def bracketed_symbols(session: Session) -> set[str]:
    """Roots with a resting paper bracket: the only ones a tick can fill anything on."""
    return set(
        session.scalars(
            select(PaperPosition.symbol)
            .where(
                PaperPosition.net_qty != 0,
                or_(PaperPosition.tp_price.is_not(None), PaperPosition.sl_price.is_not(None)),
            )
            .distinct()
        )
    )


def fill_brackets(
    session: Session, symbol: str, price: Decimal
) -> list[tuple[PaperPosition, str, Decimal]]:
    """Fill resting brackets of `symbol` that `price` reaches; returns (book, tp|sl, level)."""
    filled = []
    books = session.scalars(
        select(PaperPosition)
        .where(PaperPosition.symbol == symbol, PaperPosition.net_qty != 0)
        .with_for_update()
    ).all()
    for book in books:
        long = book.net_qty > 0
        hit = None
        if book.tp_price is not None and (
            price >= book.tp_price if long else price <= book.tp_price
        ):
            hit = ("tp", book.tp_price)
        elif book.sl_price is not None and (
            price <= book.sl_price if long else price >= book.sl_price
        ):
            hit = ("sl", book.sl_price)
        if hit is None:
            continue
        _fill(book, "sell" if long else "buy", abs(book.net_qty), hit[1])
        book.tp_price = book.sl_price = None
        filled.append((book, hit[0], hit[1]))
    return filled
