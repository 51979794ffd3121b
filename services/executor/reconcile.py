"""Reconciliation, pure (docs/contract.md §4): the broker's account as its socket reports it
(§6.4), the net
position the platform expects per subaccount and root, the differences, and which to alert on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.instruments import TickerError, parse_ticker
from libs.common.serialize import num

JSON = dict[str, Any]
ZERO = Decimal(0)
Key = tuple[int, str]  # (subaccount id, root)
# Snapshot array → entity type (§6.4); commands come before the reports that point at them.
SNAPSHOT = {
    "contracts": "contract",
    "accountRiskStatuses": "accountRiskStatus",
    "commands": "command",
    "orderVersions": "orderVersion",
    "orders": "order",
    "commandReports": "commandReport",
    "executionReports": "executionReport",
    "fills": "fill",
    "positions": "position",
}
Touched = tuple[str, int]  # ("order" | "position" | "risk", id)


def ref(e: JSON, name: str) -> int | None:
    """The id an entity refers to by `name` (orderId, accountId…); None when absent."""
    value = e.get(name)
    return value if isinstance(value, int) else None


@dataclass
class BrokerMirror:
    """What the account socket said since the last snapshot, by entity id."""

    orders: dict[int, JSON] = field(default_factory=dict)
    order_types: dict[int, str] = field(default_factory=dict)  # order id → latest orderType
    fills: dict[int, dict[int, JSON]] = field(default_factory=dict)  # order id → fill id → fill
    commands: dict[int, JSON] = field(default_factory=dict)
    cl_ord_ids: dict[int, str] = field(default_factory=dict)  # order id → clOrdId of its New
    rejections: dict[int, str] = field(default_factory=dict)  # order id → the broker's reason
    positions: dict[tuple[int, int], Decimal] = field(default_factory=dict)  # (account, contract)
    risks: dict[int, JSON] = field(default_factory=dict)  # broker account id → risk status
    contracts: dict[int, str] = field(default_factory=dict)  # contract id → name

    def load(self, snapshot: JSON) -> list[Touched]:
        """A `user/syncrequest` answer, into an empty mirror."""
        return [
            t
            for array, kind in SNAPSHOT.items()
            for e in snapshot.get(array) or []
            if isinstance(e, dict) and (t := self.apply(kind, "Created", e))
        ]

    def apply(self, kind: str, event_type: str, e: JSON) -> Touched | None:
        """Record one entity; says what it touched: ("order"|"position"|"risk", id) or None."""
        ident = e.get("id")
        if not isinstance(ident, int):
            return None
        order_id = ref(e, "orderId")
        if kind == "contract" and isinstance(e.get("name"), str):
            self.contracts[ident] = e["name"]
        elif kind == "order":
            self.orders[ident] = e
            return "order", ident
        elif (
            kind == "orderVersion" and order_id is not None and isinstance(e.get("orderType"), str)
        ):
            self.order_types[order_id] = e["orderType"]
        elif kind == "command":
            self.commands[ident] = e
            if e.get("commandType") == "New" and e.get("clOrdId") and order_id is not None:
                self.cl_ord_ids[order_id] = str(e["clOrdId"])
                return "order", order_id  # the clOrdId may be what ties the order to an intent
        elif kind in ("commandReport", "executionReport"):
            command_id = ref(e, "commandId")
            command = {} if command_id is None else self.commands.get(command_id, {})
            order_id = order_id or ref(command, "orderId")
            refused = e.get("commandStatus") in ("RiskRejected", "ExecutionRejected")
            if order_id and (
                (refused and command.get("commandType") == "New") or e.get("execType") == "Rejected"
            ):
                why = ": ".join(str(e[k]) for k in ("rejectReason", "text") if e.get(k))
                self.rejections[order_id] = why or str(e.get("commandStatus") or "Rejected")
                return "order", order_id
        elif kind == "fill" and order_id:
            self.fills.setdefault(order_id, {})[ident] = e
            return "order", order_id
        elif kind == "position":
            account_id, contract_id = ref(e, "accountId"), ref(e, "contractId")
            if account_id is not None and contract_id is not None:
                self.positions[account_id, contract_id] = (
                    ZERO if event_type == "Deleted" else Decimal(e.get("netPos") or 0)
                )
            return "position", ident
        elif kind == "accountRiskStatus":
            self.risks[e.get("accountId", ident)] = e
            return "risk", e.get("accountId", ident)
        return None

    def outcome(self, order_id: int) -> tuple[str, Decimal | None, str | None] | None:
        """("filled", average price, None) or ("rejected", None, why) once the order is done."""
        status = self.orders.get(order_id, {}).get("ordStatus")
        if status == "Filled":
            fills = [f for f in self.fills.get(order_id, {}).values() if f.get("active", True)]
            qty = sum(Decimal(f["qty"]) for f in fills)
            price = (
                sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills) / qty if qty else None
            )
            return "filled", price, None
        if status == "Rejected" or order_id in self.rejections:
            return "rejected", None, self.rejections.get(order_id) or "no reason given"
        return None

    def is_bracket(self, order_id: int) -> bool:
        """An OSO child or one of a protective OCO pair: never an intent's own order."""
        order = self.orders.get(order_id, {})
        return order_id not in self.cl_ord_ids and bool(order.get("parentId") or order.get("ocoId"))


class TraderLike(Protocol):
    """What reconciliation reads of a trader (a `Trader` row fits)."""

    id: int
    recorder_id: int
    subaccount_id: int
    multiplier: Decimal
    enabled: bool
    disabled_until: date | None
    window_start: str | None  # HH:MM in window_tz
    window_end: str | None
    window_tz: str
    flat_since: datetime | None  # flattened then: holds none of what was open before

    @property
    def max_contracts(self) -> int | None: ...  # read-only here: a saved trader always has one


class RecorderPositionLike(Protocol):
    """What it reads of a recorder position (a `Position` row fits)."""

    id: int
    recorder_id: int
    symbol: str
    side: str  # long | short
    quantity: Decimal
    status: str  # open | closed
    opened_at: datetime


@dataclass(frozen=True, order=True)
class Mismatch:
    subaccount_id: int
    root: str
    expected: Decimal
    actual: Decimal


def root_of(symbol: str) -> str:
    """`MNQZ6`, `MNQ1!`, `MNQ` → `MNQ`; a name that is no ticker is kept as it is."""
    try:
        return parse_ticker(symbol).root
    except TickerError:
        return symbol


def trader_size(quantity: Decimal, multiplier: Decimal, max_contracts: int | None) -> Decimal:
    """The trader's contracts for a recorder size, as the engine sizes its orders: scaled, rounded
    half up to whole contracts, then capped (position_engine/intents.py, kept in step by hand)."""
    size = (quantity * multiplier).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return size if max_contracts is None else min(size, Decimal(max_contracts))


def outside_window(trader: TraderLike, at: datetime) -> bool:
    """Past the trader's trading window: the engine flattened it at the window's end and sends
    no entries until it opens again (position_engine/intents.py `in_window`, kept in step)."""
    if not trader.window_start or not trader.window_end:
        return False
    start, end = time.fromisoformat(trader.window_start), time.fromisoformat(trader.window_end)
    local = at.astimezone(ZoneInfo(trader.window_tz)).time()
    inside = start <= local < end if start <= end else (local >= start or local < end)
    return not inside


def expected_positions(
    traders: Iterable[TraderLike],
    recorder_positions: Iterable[RecorderPositionLike],
    *,
    at: datetime | None = None,
    flattened_at: Mapping[int, datetime] | None = None,
    skipped: Iterable[tuple[int, int]] = (),
) -> dict[Key, Decimal]:
    """Signed net contracts the platform expects per (subaccount, root), every trader summed.

    At `at`, a trader expects nothing when it is disabled, paused by its daily loss guard (the
    guard flattened it) or outside its trading window (flattened at the window's end). Copy-group
    followers are not counted: their expectation (the leader's times their multiplier) is not
    modelled here yet. Nor is a position opened before the trader (`flat_since`) or its
    subaccount (`flattened_at`, by subaccount id: the risk desk) was last flattened, nor one
    whose entry the trader skipped (`skipped`: (trader id, position id) pairs).
    """
    not_held = set(skipped)
    open_by_recorder: dict[int, list[RecorderPositionLike]] = {}
    for position in recorder_positions:
        if position.status == "open":
            open_by_recorder.setdefault(position.recorder_id, []).append(position)
    today = trade_date(at) if at is not None else None
    expected: dict[Key, Decimal] = {}
    for trader in traders:
        paused = (
            trader.disabled_until is not None
            and today is not None
            and today < trader.disabled_until
        )
        if not trader.enabled or paused or (at is not None and outside_window(trader, at)):
            continue
        cutoffs = [trader.flat_since, (flattened_at or {}).get(trader.subaccount_id)]
        cutoff = max((c for c in cutoffs if c is not None), default=None)
        for position in open_by_recorder.get(trader.recorder_id, []):
            if (cutoff is not None and position.opened_at < cutoff) or (
                trader.id,
                position.id,
            ) in not_held:
                continue
            size = trader_size(position.quantity, trader.multiplier, trader.max_contracts)
            key = (trader.subaccount_id, root_of(position.symbol))
            expected[key] = expected.get(key, ZERO) + (size if position.side == "long" else -size)
    return expected


def compare(
    expected: Mapping[Key, Decimal], broker: Mapping[tuple[int, str], Decimal]
) -> list[Mismatch]:
    """Every (subaccount, root) where the broker's net differs from the expected one.

    `broker` may be keyed by contract name (`MNQZ6`) or root: names are folded into roots, so two
    months of one root held at once count together, as one recorder position stands for both.
    """
    actual: dict[Key, Decimal] = {}
    for (subaccount_id, name), net in broker.items():
        key = (subaccount_id, root_of(name))
        actual[key] = actual.get(key, ZERO) + Decimal(net)
    keys = set(expected) | set(actual)
    found = [Mismatch(s, r, expected.get((s, r), ZERO), actual.get((s, r), ZERO)) for s, r in keys]
    return sorted(m for m in found if m.expected != m.actual)


@dataclass(frozen=True)
class AlertState:
    """The outcome of one check: what is alerted (with since when), what is still within grace."""

    alerted: tuple[tuple[Mismatch, float], ...]
    pending: tuple[tuple[Mismatch, float], ...]
    changed: bool  # the alerted list differs from the previous check's: tell the UI


@dataclass
class MismatchAlerts:
    """Fills lag orders, so a difference is alerted only once it has lasted `grace_s`; it clears
    as soon as a check no longer finds it. Times are whatever clock the caller uses."""

    grace_s: float = 10.0
    _since: dict[Key, float] = field(default_factory=dict)
    _alerted: dict[Key, Mismatch] = field(default_factory=dict)

    def observe(self, mismatches: Iterable[Mismatch], now: float) -> AlertState:
        current = {(m.subaccount_id, m.root): m for m in mismatches}
        self._since = {k: self._since.get(k, now) for k in current}
        alerted = {k: m for k, m in current.items() if now - self._since[k] >= self.grace_s}
        changed = alerted != self._alerted
        self._alerted = alerted
        pending = [(m, self._since[k]) for k, m in current.items() if k not in alerted]
        return AlertState(
            tuple((m, self._since[k]) for k, m in sorted(alerted.items())),
            tuple(sorted(pending)),
            changed,
        )

    def next_due(self, now: float) -> float | None:
        """When a pending difference would cross its grace period, if any is pending."""
        waiting = [t + self.grace_s for k, t in self._since.items() if k not in self._alerted]
        return max(now, min(waiting)) if waiting else None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def mismatch_report(
    account_id: int, state: AlertState, now: float, wall_minus_clock: float
) -> JSON:
    """What the UI reads (Redis) and is told (`account.mismatch`): the alerted differences and
    those still within grace; times turned from the caller's clock into UTC with the offset."""

    def rows(pairs: tuple[tuple[Mismatch, float], ...]) -> list[JSON]:
        return [
            {
                "subaccount_id": m.subaccount_id,
                "symbol": m.root,
                "expected": num(m.expected),
                "actual": num(m.actual),
                "since": _iso(since + wall_minus_clock),
            }
            for m, since in pairs
        ]

    return {
        "account_id": account_id,
        "checked_at": _iso(now + wall_minus_clock),
        "mismatches": rows(state.alerted),
        "pending": rows(state.pending),
    }
