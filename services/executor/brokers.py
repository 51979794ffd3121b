"""What the executor asks of a broker, whichever it is (paper or Tradovate)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Ticket:
    """One intent made concrete: the dated contract and the subaccount's broker identity."""

    intent_id: str
    cl_ord_id: str
    subaccount_id: int
    account_spec: str  # Tradovate's account name
    broker_account_id: int
    kind: str  # entry | add | reduce | close | flatten | move_stop | move_target
    symbol: str  # root
    contract: str  # dated, e.g. MNQZ6
    side: str  # buy | sell
    quantity: Decimal
    order_type: str = "market"
    limit_price: Decimal | None = None
    tp_price: Decimal | None = None
    sl_price: Decimal | None = None
    # Several target legs (contract §3b): (price, qty) in order, in the trader's contracts, and
    # the recorder's average entry they were computed from; () when `tp_price` is the one target.
    targets: tuple[tuple[Decimal, Decimal], ...] = ()
    entry_price: Decimal | None = None
    # Whose protective orders these are (traders may share a subaccount, §4b; None: a manual
    # order) and the size they must cover once the order is done (None: the broker's net).
    trader_id: int | None = None
    position_quantity: Decimal | None = None


@dataclass(frozen=True)
class Answer:
    status: str  # accepted | filled | rejected
    broker_order_id: str | None = None
    fill_price: Decimal | None = None
    error: str | None = None


class BrokerUnavailable(Exception):
    """The request may or may not have reached the broker; ask (`lookup`) before sending again."""


class BrokerPaused(Exception):
    """The broker user is paused (penalty or lockout); the intent waits, nothing was sent."""

    def __init__(self, reason: str, seconds: float):
        super().__init__(reason)
        self.reason = reason
        self.seconds = seconds


class Broker(ABC):
    name: str = "broker"

    @abstractmethod
    def send(self, ticket: Ticket, session: Session) -> Answer:
        """Send the ticket's orders. `session` is the transaction that records the answer, which
        lets a broker living in PostgreSQL (paper) change its book in the same commit."""

    @abstractmethod
    def lookup(self, ticket: Ticket, session: Session) -> Answer | None:
        """What became of a ticket whose send was interrupted; None when the broker never saw it."""
