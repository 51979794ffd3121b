"""The paper broker: fills market orders at the last price and holds each position's bracket.

Its book lives in PostgreSQL (`paper_positions`), changed in the same transaction that records the
intent's answer, so a crash can never fill an intent twice. `fill_brackets` takes a tick and fills
any take-profit, target leg or stop-loss it reaches, exactly at the level, as a real resting order
would.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import redis
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.futures.instruments import contract_spec
from libs.common.storage.models import PaperPosition
from services.executor.brokers import Answer, Broker, Ticket

ZERO = Decimal(0)
MOVES = ("move_stop", "move_target")


class BracketFill(NamedTuple):
    """One resting order a tick filled: the stop (`sl`), the target or one target leg (`tp`).
    `net_qty` and `realized_pnl` are the book's right after this fill, for its event."""

    book: PaperPosition
    reason: str
    level: Decimal
    quantity: Decimal
    net_qty: Decimal
    realized_pnl: Decimal


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
        if ticket.kind in MOVES:
            return _move(ticket, session)
        odd = _odd_legs(ticket)
        if odd is not None:
            return Answer("rejected", error=odd)
        price = self.last_price(ticket.symbol)
        if price is None:
            return Answer(
                "rejected",
                error=f"no price for {ticket.symbol} yet; the paper broker fills at the last price",
            )
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
        book = _book(ticket, session)
        if ticket.kind == "close":
            if book.net_qty == 0:
                return Answer(
                    "filled", broker_order_id=f"paper-{ticket.cl_ord_id}", error="already flat"
                )
            _fill(book, "sell" if book.net_qty > 0 else "buy", abs(book.net_qty), price)
            _clear_brackets(book)
        else:
            _fill(book, ticket.side, ticket.quantity, price)
            _rest_brackets(book, ticket)
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
            _clear_brackets(book)
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


def _book(ticket: Ticket, session: Session) -> PaperPosition:
    book = session.get(PaperPosition, (ticket.subaccount_id, ticket.contract), with_for_update=True)
    if book is None:
        book = PaperPosition(
            subaccount_id=ticket.subaccount_id,
            contract=ticket.contract,
            symbol=ticket.symbol,
            net_qty=ZERO,
            realized_pnl=ZERO,
        )
        session.add(book)
    return book


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


def _move(ticket: Ticket, session: Session) -> Answer:
    """Move the resting stop (move_stop) or the one resting target (move_target): no trade."""
    stop = ticket.kind == "move_stop"
    level = ticket.sl_price if stop else ticket.tp_price
    what = "stop" if stop else "target"
    if level is None or level <= 0:
        return Answer("rejected", error=f"a {what} move carries the new level above 0")
    book = session.get(PaperPosition, (ticket.subaccount_id, ticket.contract), with_for_update=True)
    done = f"paper-{ticket.cl_ord_id}"
    if book is None or book.net_qty == 0:
        return Answer("filled", broker_order_id=done, error=f"already flat; no {what} to move")
    closing = "sell" if book.net_qty > 0 else "buy"
    if ticket.side != closing:
        side = "long" if book.net_qty > 0 else "short"
        return Answer(
            "rejected",
            error=f"the paper position is {side}; a {ticket.side} {what} cannot protect it",
        )
    if stop:
        book.sl_price = level
    elif book.targets and len(book.targets) > 1:
        return Answer(
            "rejected",
            error=f"{len(book.targets)} target legs rest; only a single target can be moved",
        )
    elif book.targets:
        book.targets = [{"price": _text(level), "qty": book.targets[0]["qty"]}]
    else:
        book.tp_price = level
    return Answer("filled", broker_order_id=done)


def _rest_brackets(book: PaperPosition, ticket: Ticket) -> None:
    """After an entry, add or reduce: the ticket's bracket now protects the whole position."""
    if book.net_qty == 0:
        _clear_brackets(book)
    elif len(ticket.targets) >= 2:
        book.tp_price, book.sl_price = None, ticket.sl_price
        book.targets = _legs_covering(ticket.targets, abs(book.net_qty))
    else:
        book.tp_price, book.sl_price, book.targets = ticket.tp_price, ticket.sl_price, None


def _legs_covering(
    legs: tuple[tuple[Decimal, Decimal], ...], size: Decimal
) -> list[dict[str, str]]:
    """The legs, nearest first, cut to cover exactly `size`: other traders on the subaccount can
    make the book differ from the trader's position, so the outermost leg takes the difference
    (and legs beyond `size` are dropped)."""
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
    return [{"price": _text(price), "qty": _text(qty)} for price, qty in kept]


def _clear_brackets(book: PaperPosition) -> None:
    book.tp_price = book.sl_price = None
    book.targets = None


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


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
    at the same moments as tick by tick, at a fraction of the queries. Target legs are levels like
    any other: ticks change which legs rest, never their prices, so this holds for them too."""
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
                or_(
                    PaperPosition.tp_price.is_not(None),
                    PaperPosition.sl_price.is_not(None),
                    # a cleared `targets` may be JSON null rather than SQL NULL
                    func.jsonb_typeof(PaperPosition.targets) == "array",
                ),
            )
            .distinct()
        )
    )


def fill_brackets(session: Session, symbol: str, price: Decimal) -> list[BracketFill]:
    """Fill the resting brackets of `symbol` that `price` reaches, one BracketFill per order."""
    books = session.scalars(
        select(PaperPosition)
        .where(PaperPosition.symbol == symbol, PaperPosition.net_qty != 0)
        .with_for_update()
    ).all()
    return [fill for book in books for fill in fill_book(book, price)]


def fill_book(book: PaperPosition, price: Decimal) -> list[BracketFill]:
    """Fill what `price` reaches of one book's resting orders, each at its own level. The stop
    comes first: a stop and a target cannot both be reached by one price, and a stop reached
    closes everything left."""
    if book.net_qty == 0:
        return []
    long = book.net_qty > 0
    if book.sl_price is not None and (price <= book.sl_price if long else price >= book.sl_price):
        return [_exit(book, "sl", book.sl_price, abs(book.net_qty))]
    if not book.targets:
        tp = book.tp_price
        if tp is not None and (price >= tp if long else price <= tp):
            return [_exit(book, "tp", tp, abs(book.net_qty))]
        return []
    fills, resting = [], []
    for leg in book.targets:
        level = Decimal(leg["price"])
        if (price >= level if long else price <= level) and book.net_qty != 0:
            fills.append(_exit(book, "tp", level, min(Decimal(leg["qty"]), abs(book.net_qty))))
        else:
            resting.append(leg)
    if book.net_qty == 0 or not resting:
        _clear_brackets(book)
    elif fills:
        book.targets = resting  # a new list, so the JSONB column is written
    return fills


def _exit(book: PaperPosition, reason: str, level: Decimal, qty: Decimal) -> BracketFill:
    _fill(book, "sell" if book.net_qty > 0 else "buy", qty, level)
    if book.net_qty == 0:
        _clear_brackets(book)
    return BracketFill(book, reason, level, qty, book.net_qty, book.realized_pnl)
