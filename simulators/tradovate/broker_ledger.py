"""The money side of the simulated Tradovate (tradovate.md §5.2): fills paired first in, first out
into `FillPair` round trips, and one `CashBalance` per account carrying the realized PnL.

Per trade date, as Tradovate does (tradovate.md §5.2): `realizedPnL` is the trade date's and
starts again from 0 on the next one, `weekRealizedPnL` starts again on a week's first trade date
(the Sunday 18:00 ET open), `amountSOD` is the amount the trade date began with and `tradeDate`
says which trade date the row is for. Not known, so not imitated: whether Tradovate starts a new
`CashBalance` row (a new id) each trade date or updates the one row, and whether it sends a
`props` event when the trade date turns. The simulator keeps one row per account and rolls it
silently the next time it is read or changed (a list, the sync snapshot, a fill).

Sim choices (the real rules are not published in this detail): no commissions or fees unless a
test books one (`BrokerSimulator.charge`, taken off the amount and the realized PnL: whether
Tradovate counts its fees in `realizedPnL` or only in `amount` is not known); every
account starts with `STARTING_CASH` USD; the cash balance snapshot reports no margin
(`initialMargin` and `maintenanceMargin` are 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from simulators.tradovate.broker_entities import JSON

STARTING_CASH = Decimal(50_000)


@dataclass
class Lot:
    """What is still open of one fill."""

    fill_id: int
    action: str  # Buy | Sell
    qty: int
    price: Decimal


@dataclass
class CashBalance:
    """One account's USD: the amount, and the PnL realized on its trade date and in its week."""

    id: int
    account_id: int
    timestamp: str
    trade_date: date
    amount: Decimal = STARTING_CASH
    amount_sod: Decimal = STARTING_CASH  # the amount at the start of the trade date
    realized: Decimal = Decimal(0)  # on `trade_date`
    week_realized: Decimal = Decimal(0)

    def roll(self, today: date) -> bool:
        """Move to trade date `today` if it is a later one: the day's realized PnL starts from 0,
        and the week's too when `today` begins another week. True when the row changed."""
        if today <= self.trade_date:
            return False
        if today.isocalendar()[:2] != self.trade_date.isocalendar()[:2]:
            self.week_realized = Decimal(0)
        self.trade_date, self.realized, self.amount_sod = today, Decimal(0), self.amount
        return True

    def book(self, realized: Decimal, stamp: str) -> None:
        """A closing fill realized `realized` USD (on the current trade date)."""
        self.amount += realized
        self.realized += realized
        self.week_realized += realized
        self.timestamp = stamp

    def json(self) -> JSON:
        return {
            "id": self.id,
            "accountId": self.account_id,
            "timestamp": self.timestamp,
            "tradeDate": {
                "year": self.trade_date.year,
                "month": self.trade_date.month,
                "day": self.trade_date.day,
            },
            "currencyId": 1,  # USD
            "amount": self.amount,
            "realizedPnL": self.realized,
            "weekRealizedPnL": self.week_realized,
            "amountSOD": self.amount_sod,
            "archived": False,
        }


@dataclass(frozen=True)
class Pairing:
    """One closing match: the FillPair's fields and the USD it realized."""

    buy_fill_id: int
    sell_fill_id: int
    qty: int
    buy_price: Decimal
    sell_price: Decimal
    realized: Decimal


def pair_fill(lots: list[Lot], fill: Lot, value_per_point: Decimal) -> list[Pairing]:
    """Match `fill` against the open lots of the other side, oldest first; what it does not close
    stays open as a new lot. `lots` is changed in place."""
    pairings = []
    left = fill.qty
    while left and lots and lots[0].action != fill.action:
        lot = lots[0]
        qty = min(lot.qty, left)
        buy, sell = (lot, fill) if lot.action == "Buy" else (fill, lot)
        realized = (sell.price - buy.price) * qty * value_per_point
        pairings.append(Pairing(buy.fill_id, sell.fill_id, qty, buy.price, sell.price, realized))
        lot.qty -= qty
        left -= qty
        if lot.qty == 0:
            lots.pop(0)
    if left:
        lots.append(Lot(fill.fill_id, fill.action, left, fill.price))
    return pairings


def fill_pair_json(pair_id: int, position_id: int, pairing: Pairing) -> JSON:
    return {
        "id": pair_id,
        "positionId": position_id,
        "buyFillId": pairing.buy_fill_id,
        "sellFillId": pairing.sell_fill_id,
        "qty": pairing.qty,
        "buyPrice": pairing.buy_price,
        "sellPrice": pairing.sell_price,
        "active": True,
    }


def cash_snapshot(balance: CashBalance, open_pnl: Decimal) -> JSON:
    """`cashBalance/getCashBalanceSnapshot` (§5.2); PnL fields only when there is something."""
    row: JSON = {
        "totalCashValue": balance.amount,
        "initialMargin": Decimal(0),
        "maintenanceMargin": Decimal(0),
        "netLiq": balance.amount + open_pnl,
    }
    if open_pnl:
        row["openPnL"] = open_pnl
    if balance.realized:
        row["realizedPnL"] = balance.realized
    if balance.week_realized:
        row["weekRealizedPnL"] = balance.week_realized
    if open_pnl or balance.realized:
        row["totalPnL"] = open_pnl + balance.realized
    return row
