"""A subaccount's figures as the broker holds them (docs/contract.md §4c): positions with open PnL
at the feed's last price, realized PnL and trades of the current trade date, the balance made
since the platform has traded it. The account view shows them; the executor's risk desk judges
them.

Paper subaccounts are read from the paper broker's tables; Tradovate ones from the snapshot the
executor keeps in Redis from its account socket (services/executor/broker_view.py).

On Tradovate the broker also reports the PnL it realized on the trade date (its `CashBalance`,
commissions and fees included, which ours leaves out): where it is for the current trade date, the
daily limits judge the lower of the broker's and ours.

A "trade" is a round trip started: a fill that takes the contract's net position away from flat
(or across it, a reversal). Adds, partial exits and the closing fill do not count again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.account_risk import AccountFigures
from libs.common.config import Settings
from libs.common.futures.exchange_calendar import (
    NEW_YORK,
    SESSION_CLOSE_ET,
    business_day_on_or_before,
    trade_date,
)
from libs.common.futures.instruments import contract_spec
from libs.common.storage.models import PaperFill, PaperPosition, Subaccount

ZERO = Decimal(0)
BROKER_VIEW = streams.BROKER_VIEW


def trade_date_start(day: date) -> datetime:
    """The first instant of a CME trade date: the close (17:00 New York) of the business day
    before it, so a Monday starts on Friday evening."""
    evening = business_day_on_or_before(day - timedelta(days=1))
    return datetime.combine(evening, SESSION_CLOSE_ET, NEW_YORK).astimezone(UTC)


def trades_started(start_net: Decimal, signed_fills: Iterable[Decimal]) -> int:
    """How many fills took the net away from flat, or across it (see the module's note)."""
    count, net = 0, start_net
    for signed in signed_fills:
        after = net + signed
        if after and (net == 0 or (net > 0) != (after > 0)):
            count += 1
        net = after
    return count


def open_pnl(
    net: Decimal, avg: Decimal | None, last: Decimal | None, symbol: str
) -> Decimal | None:
    if not net or avg is None or last is None:
        return None
    return (last - avg) * net * contract_spec(symbol).point_value


def last_prices(
    client: redis.Redis, settings: Settings, symbols: Iterable[str]
) -> dict[str, Decimal]:
    """The feed's last price of each symbol (jt:last_price); a symbol without one is left out."""
    names = sorted(set(symbols))
    if not names:
        return {}
    values = client.hmget(settings.stream(streams.LAST_PRICE), names)
    return {
        name: Decimal(value if isinstance(value, str) else value.decode())
        for name, value in zip(names, values, strict=True)
        if value is not None
    }


@dataclass(frozen=True)
class Held:
    """One contract the broker holds on the subaccount."""

    contract: str
    symbol: str
    net_qty: Decimal
    avg_price: Decimal | None


@dataclass(frozen=True)
class BrokerFigures:
    """What the broker holds and made today; None where it is not known yet."""

    positions: tuple[Held, ...]
    realized_today: Decimal | None
    realized_to_date: Decimal | None
    trades_today: int | None
    broker_realized_today: Decimal | None = None  # the broker's own figure, when it has one

    def open_pnl(self, prices: dict[str, Decimal]) -> Decimal | None:
        """Open PnL at `prices`; None while a held contract has no price."""
        total: Decimal | None = ZERO
        for held in self.positions:
            pnl = open_pnl(held.net_qty, held.avg_price, prices.get(held.symbol), held.symbol)
            total = None if total is None or pnl is None else total + pnl
        return total

    def account_figures(self, prices: dict[str, Decimal], high: Decimal) -> AccountFigures | None:
        """The risk desk's figures at `prices`, or None while any of them is unknown."""
        opened = self.open_pnl(prices)
        if (
            opened is None
            or self.realized_today is None
            or self.realized_to_date is None
            or self.trades_today is None
        ):
            return None
        biggest = max((abs(h.net_qty) for h in self.positions), default=ZERO)
        balance = self.realized_to_date + opened
        # The daily limits judge the broker's realized PnL when it is lower than ours.
        brokers = self.broker_realized_today
        by_broker = brokers is not None and brokers < self.realized_today
        return AccountFigures(
            brokers if by_broker and brokers is not None else self.realized_today,
            opened,
            balance,
            max(high, balance),
            self.trades_today,
            biggest,
            by_broker,
        )


def paper_figures(session: Session, subaccount_id: int, now: datetime) -> BrokerFigures:
    held = list(
        session.scalars(
            select(PaperPosition)
            .where(PaperPosition.subaccount_id == subaccount_id, PaperPosition.net_qty != 0)
            .order_by(PaperPosition.contract)
        )
    )
    fills = list(
        session.scalars(
            select(PaperFill)
            .where(
                PaperFill.subaccount_id == subaccount_id,
                PaperFill.filled_at >= trade_date_start(trade_date(now)),
            )
            .order_by(PaperFill.filled_at, PaperFill.id)
        )
    )
    to_date = session.scalar(
        select(func.coalesce(func.sum(PaperFill.realized_pnl), 0)).where(
            PaperFill.subaccount_id == subaccount_id
        )
    )
    nets = {p.contract: p.net_qty for p in held}
    trades = 0
    for contract in {f.contract for f in fills}:
        signed = [
            f.quantity if f.side == "buy" else -f.quantity for f in fills if f.contract == contract
        ]
        trades += trades_started(nets.get(contract, ZERO) - sum(signed, ZERO), signed)
    return BrokerFigures(
        tuple(Held(p.contract, p.symbol, p.net_qty, p.avg_price) for p in held),
        sum((f.realized_pnl for f in fills), ZERO),
        Decimal(to_date or 0),
        trades,
    )


def snapshot(client: redis.Redis, settings: Settings, subaccount_id: int) -> dict[str, Any] | None:
    """The executor's snapshot of a Tradovate subaccount; None before its socket has synced."""
    raw = client.get(settings.stream(f"{BROKER_VIEW}{subaccount_id}"))
    return None if raw is None else json.loads(raw)


def broker_realized(view: dict[str, Any]) -> Decimal | None:
    """The PnL the broker says it realized on the view's trade date; None when its cash balance
    is for another trade date (Tradovate's resets at each close) or says nothing."""
    cash = view.get("broker_cash")
    if not isinstance(cash, dict) or cash.get("as_of") != view.get("trade_date"):
        return None
    realized = cash.get("realized_pnl")
    return None if realized is None else Decimal(str(realized))


def tradovate_figures(view: dict[str, Any]) -> BrokerFigures:
    """From a snapshot. Only today's fills are known there, so the balance is today's (realized
    today plus open PnL): the trailing drawdown trails intraday."""
    realized = view.get("realized_pnl_today")
    today = None if realized is None else Decimal(str(realized))
    return BrokerFigures(
        tuple(
            Held(
                p["contract"],
                p["symbol"],
                Decimal(str(p["net_qty"])),
                None if p["avg_price"] is None else Decimal(str(p["avg_price"])),
            )
            for p in view.get("positions", [])
        ),
        today,
        today,
        view.get("trades_today"),
        broker_realized(view),
    )


def broker_figures(
    session: Session, client: redis.Redis, settings: Settings, sub: Subaccount, now: datetime
) -> BrokerFigures | None:
    """The subaccount's figures from wherever its broker keeps them; None when not known yet."""
    if sub.account.broker == "paper":
        return paper_figures(session, sub.id, now)
    view = snapshot(client, settings, sub.id)
    return None if view is None else tradovate_figures(view)


def symbols_of(figures: Sequence[BrokerFigures]) -> set[str]:
    return {h.symbol for f in figures for h in f.positions}
