"""The account view of a Tradovate subaccount (docs/contract.md §4c): positions, working orders,
the fills of the current trade date and the broker's cash balance, as the account socket reported
them, kept in Redis (`<prefix>broker_view:<subaccount id>`) for the UI, which reads it instead of
asking the broker."""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from libs.common import streams
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.instruments import contract_spec
from libs.common.serialize import num, usd
from services.executor import reconcile

if TYPE_CHECKING:
    from services.executor.account_stream import AccountStream

JSON = dict[str, Any]
ZERO = Decimal(0)
KEY = streams.BROKER_VIEW  # + subaccount id; read by libs/common/account_figures.py
MIN_INTERVAL_S = 0.5  # at most two snapshots a second per account, however busy the socket
REFRESH_S = 20.0  # republished this often while nothing changes, so the key stays alive
TTL_S = 90  # the key outlives a few refreshes only: a stopped executor's view disappears
LIVE = ("Working", "Suspended")  # Suspended: an OSO bracket waiting for its entry to fill


@dataclass
class BrokerBook:
    """What the view needs that the mirror keeps only in part: each position entity (`netPrice`,
    `prevPos`, `prevPrice`), each order's newest version (type, quantity, prices, `text`) and
    each account's newest cash balance (tradovate.md §5.2 `CashBalance`)."""

    positions: dict[tuple[int, int], JSON] = field(default_factory=dict)  # (account, contract)
    versions: dict[int, JSON] = field(default_factory=dict)  # order id → newest version
    cash: dict[int, JSON] = field(default_factory=dict)  # account id → newest CashBalance

    def load(self, snapshot: JSON) -> None:
        for array, kind in (
            ("orderVersions", "orderVersion"),
            ("positions", "position"),
            ("cashBalances", "cashBalance"),
        ):
            for e in snapshot.get(array) or []:
                if isinstance(e, dict):
                    self.apply(kind, "Created", e)

    def apply(self, kind: str, event_type: str, e: JSON) -> None:
        if kind == "orderVersion":
            order_id, ident = reconcile.ref(e, "orderId"), e.get("id")
            newest = self.versions.get(order_id or 0, {}).get("id", -1)
            if order_id is not None and isinstance(ident, int) and ident >= newest:
                self.versions[order_id] = e
        elif kind == "position":
            account_id, contract_id = reconcile.ref(e, "accountId"), reconcile.ref(e, "contractId")
            if account_id is not None and contract_id is not None:
                if event_type == "Deleted":
                    self.positions.pop((account_id, contract_id), None)
                else:
                    self.positions[account_id, contract_id] = e
        elif kind == "cashBalance":
            self._cash(event_type, e)

    def _cash(self, event_type: str, e: JSON) -> None:
        """Keep the account's balance of the latest trade date; of one date, the one seen last."""
        account_id = reconcile.ref(e, "accountId")
        if account_id is None or e.get("archived") is True:
            return
        if event_type == "Deleted":
            if self.cash.get(account_id, {}).get("id") == e.get("id"):
                self.cash.pop(account_id)
            return
        new, held = _cash_date(e), _cash_date(self.cash.get(account_id, {}))
        if new is None or held is None or new >= held:  # an older trade date's row is history
            self.cash[account_id] = e


@dataclass
class ViewSchedule:
    """When the next snapshot is due: soon after a change (no sooner than `MIN_INTERVAL_S` after
    the last one), else a refresh every `REFRESH_S`. Times are `time.monotonic()`."""

    book: BrokerBook = field(default_factory=BrokerBook)
    due: float = math.inf
    last: float = -math.inf

    def changed(self, now: float) -> None:
        self.due = min(self.due, max(now, self.last + MIN_INTERVAL_S))

    def written(self, now: float) -> None:
        self.last, self.due = now, now + REFRESH_S


# -- the pure part: a subaccount's view from the mirror and the book ----------------------------


def _decimal(value: object) -> Decimal | None:
    return None if value is None or isinstance(value, bool) else Decimal(str(value))


def _when(e: JSON) -> datetime | None:
    stamp = e.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fill_trade_date(e: JSON) -> date | None:
    """By the fill's time and the CME calendar; Tradovate's `tradeDate` when it has no time."""
    at = _when(e)
    if at is not None and at.tzinfo is not None:
        return trade_date(at)
    return _tradovate_date(e.get("tradeDate"))


def _tradovate_date(d: object) -> date | None:
    """A Tradovate `tradeDate` object (`{"year", "month", "day"}`); None when it is not one."""
    if not isinstance(d, dict):
        return None
    try:
        return date(int(d["year"]), int(d["month"]), int(d["day"]))
    except (KeyError, TypeError, ValueError):
        return None


def _money(value: object) -> Decimal | None:
    """A number Tradovate sent, or None for anything else (absent, null, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _cash_date(e: JSON) -> date | None:
    return _tradovate_date(e.get("tradeDate"))


def cash_view(e: JSON | None) -> JSON | None:
    """The broker's word on the account's cash (`broker_cash`): the amount, the PnL realized on
    the trade date `as_of` as Tradovate counts it (commissions and fees included), None where it
    said nothing."""
    if e is None:
        return None
    as_of = _cash_date(e)
    return {
        "amount": usd(_money(e.get("amount"))),
        "realized_pnl": usd(_money(e.get("realizedPnL"))),
        "as_of": None if as_of is None else as_of.isoformat(),
    }


def _signed(fill: JSON) -> Decimal:
    qty = Decimal(str(fill.get("qty") or 0))
    return qty if fill.get("action") == "Buy" else -qty


@dataclass(frozen=True)
class DayResult:
    realized: dict[int, Decimal]  # fill id → points × contracts it realized (signed)
    trades: int  # fills that opened a position from flat (or across flat): round trips started


def pair_fifo(start_net: Decimal, start_price: Decimal | None, fills: Iterable[JSON]) -> DayResult:
    """Today's fills of one contract paired first in, first out, from the position the day began
    with (`start_net` at `start_price`, Tradovate's `prevPrice`; unknown: it realizes nothing)."""
    lots: deque[list[Decimal | None]] = deque()  # [signed qty, price]
    if start_net:
        lots.append([start_net, start_price])
    realized: dict[int, Decimal] = {}
    trades = 0
    net = start_net
    for fill in fills:
        signed, price = _signed(fill), Decimal(str(fill["price"]))
        points, left = ZERO, signed
        while left and lots and (lots[0][0] or ZERO) * left < 0:  # closes against the oldest lot
            lot_qty, lot_price = lots[0]
            assert lot_qty is not None
            closed = min(abs(left), abs(lot_qty))
            if lot_price is not None:
                direction = 1 if lot_qty > 0 else -1
                points += (price - lot_price) * closed * direction
            lot_qty += closed if lot_qty < 0 else -closed
            left += closed if left < 0 else -closed
            if lot_qty:
                lots[0][0] = lot_qty
            else:
                lots.popleft()
        if left:
            lots.append([left, price])
        after = net + signed
        if after and (net == 0 or (net > 0) != (after > 0)):
            trades += 1
        net = after
        realized[int(fill["id"])] = points
    return DayResult(realized, trades)


def subaccount_view(
    mirror: reconcile.BrokerMirror,
    book: BrokerBook,
    subaccount_id: int,
    broker_account_id: int,
    today: date,
    now: datetime,
) -> JSON:
    """The JSON the UI shows for one subaccount: positions, working orders, today's fills."""
    names = mirror.contracts
    mine = {oid: o for oid, o in mirror.orders.items() if o.get("accountId") == broker_account_id}
    fills = sorted(
        (
            f
            for oid in mine
            for f in mirror.fills.get(oid, {}).values()
            if f.get("active", True) and _fill_trade_date(f) == today
        ),
        key=lambda f: (str(f.get("timestamp") or ""), f.get("id") or 0),
    )
    by_contract: dict[int, list[JSON]] = {}
    for f in fills:
        contract_id = reconcile.ref(f, "contractId") or reconcile.ref(
            mine[f["orderId"]], "contractId"
        )
        if contract_id is not None:
            by_contract.setdefault(contract_id, []).append(f)
    held = {c: net for (a, c), net in mirror.positions.items() if a == broker_account_id}
    realized_usd: dict[int, Decimal] = {}
    trades = 0
    for contract_id in sorted(set(held) | set(by_contract)):
        day = by_contract.get(contract_id, [])
        entity = book.positions.get((broker_account_id, contract_id), {})
        start = held.get(contract_id, ZERO) - sum((_signed(f) for f in day), ZERO)
        start_price = _decimal(entity.get("prevPrice")) or _decimal(entity.get("netPrice"))
        result = pair_fifo(start, start_price, day)
        point_value = contract_spec(reconcile.root_of(names.get(contract_id, ""))).point_value
        realized_usd.update({i: p * point_value for i, p in result.realized.items()})
        trades += result.trades
    positions = [
        {
            "contract": names.get(c, f"#{c}"),
            "symbol": reconcile.root_of(names.get(c, f"#{c}")),
            "net_qty": num(net),
            "avg_price": num(
                _decimal(book.positions.get((broker_account_id, c), {}).get("netPrice"))
            ),
        }
        for c, net in sorted(held.items())
        if net
    ]
    return {
        "subaccount_id": subaccount_id,
        "broker_account_id": broker_account_id,
        "trade_date": today.isoformat(),
        "positions": positions,
        "working_orders": [
            _order_view(mirror, book, oid, o)
            for oid, o in sorted(mine.items())
            if o.get("ordStatus") in LIVE
        ],
        "fills": [
            {
                "id": f.get("id"),
                "order_id": f.get("orderId"),
                "contract": names.get(reconcile.ref(f, "contractId") or 0),
                "side": str(f.get("action", "")).lower(),
                "quantity": num(_decimal(f.get("qty"))),
                "price": num(_decimal(f.get("price"))),
                "realized_pnl": usd(realized_usd.get(int(f["id"]), ZERO)),
                "filled_at": f.get("timestamp"),
            }
            for f in fills
        ],
        "realized_pnl_today": usd(sum(realized_usd.values(), ZERO)),
        "trades_today": trades,
        "broker_cash": cash_view(book.cash.get(broker_account_id)),
        "updated_at": now.isoformat().replace("+00:00", "Z"),
    }


def _order_view(mirror: reconcile.BrokerMirror, book: BrokerBook, oid: int, order: JSON) -> JSON:
    version = book.versions.get(oid, {})
    order_type = str(version.get("orderType") or mirror.order_types.get(oid) or "")
    bracket = mirror.is_bracket(oid)
    role = (
        "entry"
        if not bracket
        else "target"
        if order_type == "Limit"
        else "stop"
        if "Stop" in order_type
        else "bracket"
    )
    contract_id = reconcile.ref(order, "contractId") or 0
    price = version.get("stopPrice") if order_type == "Stop" else version.get("price")
    return {
        "id": oid,
        "contract": mirror.contracts.get(contract_id, f"#{contract_id}"),
        "side": str(order.get("action", "")).lower(),
        "order_type": order_type.lower(),
        "role": role,
        "status": str(order.get("ordStatus", "")).lower(),
        "quantity": num(_decimal(version.get("orderQty"))),
        "price": num(_decimal(price)),
        "stop_price": num(_decimal(version.get("stopPrice"))),
        "text": version.get("text"),
        "parent_id": order.get("parentId"),
        "cl_ord_id": mirror.cl_ord_ids.get(oid),
    }


# -- the edge: write each subaccount's view of a stream ----------------------------------------


def publish(stream: AccountStream) -> None:
    """Each subaccount's view into Redis, from the stream's mirror as it is now."""
    now = datetime.now(UTC)
    today = trade_date(now)
    with stream.lock:
        views = [
            subaccount_view(stream.mirror, stream.view.book, sub_id, broker_id, today, now)
            for broker_id, sub_id in sorted(stream.subs.items())
        ]
    settings, redis = stream.sync.settings, stream.sync.redis
    with redis.pipeline(transaction=False) as pipe:
        for view in views:
            pipe.set(settings.stream(f"{KEY}{view['subaccount_id']}"), json.dumps(view), ex=TTL_S)
        pipe.execute()
    stream.view.written(time.monotonic())
    unnamed = any(
        net and c not in stream.mirror.contracts for (_, c), net in held_positions(stream)
    )
    if unnamed:  # the reconciliation check looks the name up: show it (and its $) soon after
        stream.view.changed(time.monotonic() + 1.0)


def held_positions(stream: AccountStream) -> list[tuple[tuple[int, int], Decimal]]:
    with stream.lock:
        return list(stream.mirror.positions.items())
