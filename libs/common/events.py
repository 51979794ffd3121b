"""Every event type on `jt:events` (fields `type` and `data`), with the payload its producers
put in `data`; the pages (services/ui/static/js) listen for these names, other programs read them.

Names built from a status or kind go through `signal_event`, `position_event`, `order_event` and
`trader_event`, which raise `ValueError` rather than produce a name nobody listens for.
"""

from __future__ import annotations

from typing import Final, TypedDict

# --- signals (position engine): one per processed signal, named by its status ---------------
SIGNAL_APPLIED: Final = "signal.applied"
SIGNAL_IGNORED: Final = "signal.ignored"
SIGNAL_REJECTED: Final = "signal.rejected"

# --- positions (position engine) --------------------------------------------------------------
POSITION_OPENED: Final = "position.opened"
POSITION_CHANGED: Final = "position.changed"
POSITION_CLOSED: Final = "position.closed"
POSITION_MARKED: Final = "position.marked"  # throttled last price / unrealized P&L of an open one

# --- orders (executor): an intent's answer from the broker or account sync ---------------------
ORDER_ACCEPTED: Final = "order.accepted"
ORDER_FILLED: Final = "order.filled"
ORDER_REJECTED: Final = "order.rejected"
ORDER_PAUSED: Final = "order.paused"  # the broker user is paused: the intent waits, unsent
ORDER_SKIPPED: Final = "order.skipped"  # a stop or target move superseded by a later one, unsent
ORDER_BRACKET_FILLED: Final = "order.bracket_filled"  # a take-profit or stop-loss order filled

# --- accounts (executor) and traders (position engine) ---------------------------------------
ACCOUNT_ALERT: Final = "account.alert"  # the broker paused or locked a user: a person must look
ACCOUNT_RISK_STATUS: Final = "account.risk_status"
ACCOUNT_MISMATCH: Final = "account.mismatch"  # positions at the broker differ from the platform's
ACCOUNT_LOCKED: Final = "account.locked"  # the risk desk locked (and maybe flattened) a subaccount
ACCOUNT_COPY_DRIFT: Final = "account.copy_drift"  # a copy follower left (or came back in) step
ACCOUNT_TRADER_PAUSED: Final = "account.trader_paused"
ACCOUNT_TRADER_SKIPPED: Final = "account.trader_skipped"
ACCOUNT_TRADER_FLATTENED: Final = "account.trader_flattened"  # at its trading window's end

# --- recorders (position engine): the answer to a UI command on `jt:engine_commands` -----------
RECORDER_DELETED: Final = "recorder.deleted"  # with its signals and positions
RECORDER_HISTORY_RESET: Final = "recorder.history_reset"  # signals and closed positions deleted

# --- price feed --------------------------------------------------------------------------------
PRICE_STATUS: Final = "price.status"  # sent to every logged-in user (no user_id)

# --- benchmarks (tools/bench): markers and timing probes, never produced in normal running -----
BENCH_MARK: Final = "bench.mark"  # an empty entry whose id is where a benchmark starts reading
BENCH_PING: Final = "bench.ping"

SIGNALS: Final = (SIGNAL_APPLIED, SIGNAL_IGNORED, SIGNAL_REJECTED)
POSITIONS: Final = (POSITION_OPENED, POSITION_CHANGED, POSITION_CLOSED, POSITION_MARKED)
ORDERS: Final = (
    ORDER_ACCEPTED,
    ORDER_FILLED,
    ORDER_REJECTED,
    ORDER_PAUSED,
    ORDER_SKIPPED,
    ORDER_BRACKET_FILLED,
)
ACCOUNTS: Final = (
    ACCOUNT_ALERT,
    ACCOUNT_RISK_STATUS,
    ACCOUNT_MISMATCH,
    ACCOUNT_LOCKED,
    ACCOUNT_COPY_DRIFT,
    ACCOUNT_TRADER_PAUSED,
    ACCOUNT_TRADER_SKIPPED,
    ACCOUNT_TRADER_FLATTENED,
)
RECORDERS: Final = (RECORDER_DELETED, RECORDER_HISTORY_RESET)
PRICES: Final = (PRICE_STATUS,)
BENCH: Final = (BENCH_MARK, BENCH_PING)
ALL: Final = frozenset(SIGNALS + POSITIONS + ORDERS + ACCOUNTS + RECORDERS + PRICES + BENCH)

# --- names built from a status or kind ---------------------------------------------------------
BY_SIGNAL_STATUS: Final = {
    "applied": SIGNAL_APPLIED,
    "ignored": SIGNAL_IGNORED,
    "rejected": SIGNAL_REJECTED,
}
BY_POSITION_CHANGE: Final = {
    "opened": POSITION_OPENED,
    "changed": POSITION_CHANGED,
    "closed": POSITION_CLOSED,
}
BY_ORDER_STATUS: Final = {
    "accepted": ORDER_ACCEPTED,
    "filled": ORDER_FILLED,
    "rejected": ORDER_REJECTED,
    "skipped": ORDER_SKIPPED,
}
BY_TRADER_NOTE: Final = {
    "paused": ACCOUNT_TRADER_PAUSED,
    "skipped": ACCOUNT_TRADER_SKIPPED,
    "flattened": ACCOUNT_TRADER_FLATTENED,
}


def _pick(table: dict[str, str], key: str, what: str) -> str:
    try:
        return table[key]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ValueError(f"no event for {what} {key!r} (known: {known})") from None


def signal_event(status: str) -> str:
    """`signal.<status>` for a processed signal's status (applied | ignored | rejected)."""
    return _pick(BY_SIGNAL_STATUS, status, "signal status")


def position_event(change: str) -> str:
    """`position.<change>` for a rules change (opened | changed | closed)."""
    return _pick(BY_POSITION_CHANGE, change, "position change")


def order_event(status: str) -> str:
    """`order.<status>` for an intent's final or accepted status (accepted | filled | rejected)."""
    return _pick(BY_ORDER_STATUS, status, "order status")


def trader_event(kind: str) -> str:
    """`account.trader_<kind>` for a note about a trader (paused | skipped | flattened)."""
    return _pick(BY_TRADER_NOTE, kind, "trader note")


# --- payloads: what `data` holds, per event ----------------------------------------------------
# Prices and quantities are JSON numbers (serialize.num), USD amounts rounded to the cent
# (serialize.usd), times ISO 8601 UTC strings ending in "Z" (serialize.iso).

Number = float | int


class SignalData(TypedDict, total=False):
    """signal.*: every key but `price`, which a malformed entry's rejection leaves out."""

    signal_id: str
    recorder_id: int
    user_id: int
    status: str  # applied | ignored | rejected, as in the name
    reason: str | None
    position_id: int | None
    price: Number | None


class PositionData(TypedDict):
    """position.opened / changed / closed: serialize.position_dict plus the owner."""

    id: int
    recorder_id: int
    user_id: int
    symbol: str
    side: str  # long | short
    quantity: Number | None
    avg_entry_price: Number | None
    tp_price: Number | None
    sl_price: Number | None
    status: str  # open | closed
    realized_pnl: float | None
    exit_price: Number | None
    exit_reason: str | None  # tp | sl | breakeven | trail | signal | reverse | flatten | manual
    targets: list[dict[str, Number | None]]  # each leg: level, allotted, filled (§3b)
    stop_price: Number | None
    stop_reason: str | None  # sl | breakeven | trail
    max_favorable: Number | None
    max_adverse: Number | None
    worst_unrealized_pnl: float | None
    best_unrealized_pnl: float | None
    opened_at: str | None
    closed_at: str | None


class PositionMarkedData(PositionData):
    """position.marked: the position plus the price it was marked at and what it would make."""

    last_price: Number | None
    unrealized_pnl: float | None


class OrderData(TypedDict):
    """order.accepted / filled / rejected / paused: serialize.intent_dict of the intent."""

    id: str
    user_id: int
    trader_id: int | None
    subaccount_id: int
    source: str
    signal_id: str | None
    parent_id: str | None
    kind: str
    symbol: str
    contract: str | None
    side: str
    quantity: Number | None
    order_type: str
    tp_price: Number | None
    sl_price: Number | None
    status: str
    broker_order_id: str | None
    fill_price: Number | None
    error: str | None
    attempts: int
    cl_ord_id: str
    created_at: str | None
    sent_at: str | None
    accepted_at: str | None
    finished_at: str | None


class BracketFilledData(TypedDict, total=False):
    """order.bracket_filled. Paper (upkeep) and Tradovate (account sync) both send user_id (the
    account's owner), subaccount_id, contract, reason (tp | sl, None when Tradovate's order type
    tells neither), fill_price and net_qty; paper adds realized_pnl and quantity (the contracts
    this fill closed: one target leg's, or all that was left for a stop), Tradovate adds
    account_id, broker_order_id, intent_id (the parent intent, when known) and side."""

    user_id: int
    subaccount_id: int | None
    contract: str | None
    reason: str | None
    fill_price: Number | None
    quantity: Number | None
    net_qty: Number | None
    realized_pnl: Number | None
    account_id: int
    broker_order_id: str
    intent_id: str | None
    side: str


class AlertData(TypedDict):
    """account.alert: one per platform user with an account on the paused or locked broker login
    (`broker_user` is its rate-limiter key, e.g. `tradovate:demo:123`)."""

    user_id: int
    broker_user: str
    message: str


class RiskStatusData(TypedDict):
    """account.risk_status: a subaccount's risk status at the broker changed; user_id owns it."""

    user_id: int
    account_id: int
    subaccount_id: int
    name: str
    risk_status: str
    previous: str


class LockedData(TypedDict):
    """account.locked: the risk desk (§4c) found a limit breached; entries stop until
    `locked_until` (a trade date) and, when `flattened`, the subaccount was flattened."""

    user_id: int
    subaccount_id: int
    name: str
    rule: str  # daily_loss_limit | daily_profit_target | trailing_drawdown | max_trades_per_day
    # | max_contracts | copy_leader (a follower locked with its leader, §4d)
    reason: str
    locked_until: str
    flattened: bool


class CopyDriftData(TypedDict):
    """account.copy_drift: the copy keeper (§4d) found a follower out of step with its leader
    past the grace (`out_of_step` says how), or back in step (`out_of_step` null); `realigning`
    when it wrote the orders that bring it back."""

    user_id: int
    group_id: int
    group_name: str
    leader_subaccount_id: int
    subaccount_id: int
    name: str
    out_of_step: str | None
    realigning: bool


class MismatchRow(TypedDict):
    subaccount_id: int
    symbol: str
    expected: Number | None
    actual: Number | None
    since: str


class MismatchData(TypedDict):
    """account.mismatch: executor.reconcile.mismatch_report plus the account's owner (user_id)."""

    user_id: int
    account_id: int
    checked_at: str
    mismatches: list[MismatchRow]  # alerted: past the grace period
    pending: list[MismatchRow]  # still within the grace period


class TraderNoteData(TypedDict):
    """account.trader_paused / trader_skipped / trader_flattened."""

    trader_id: int
    user_id: int
    message: str


class RecorderCommandData(TypedDict):
    """recorder.deleted / history_reset: what the engine did for the command `command_id`;
    `found` is false when the recorder (of that user) no longer existed."""

    command_id: str
    recorder_id: int
    user_id: int
    found: bool
    deleted_signals: int
    deleted_positions: int


class PriceStatusData(TypedDict):
    """price.status: the feed's whole status (as at its GET /status), sent when it changed."""

    ok: bool
    source: str
    active_source: str
    connected: bool
    fallback_active: bool
    authenticated: bool
    reconnects: int
    symbols: list[str]
    failed_symbols: list[str]
    delayed_symbols: list[str]
    cached_prices: int
    last_tick_age_s: dict[str, float]
    ticks_published: int
    error: str | None
    tradingview_session: dict[str, object] | None
    signin_failed: str | None  # why the session stopped renewing itself; null while it renews


class BenchMarkData(TypedDict):
    """bench.mark: empty."""


class BenchPingData(TypedDict):
    user_id: int
    seq: int
    sent_at: float  # epoch seconds


PAYLOADS: Final[dict[str, type]] = {
    **dict.fromkeys(SIGNALS, SignalData),
    POSITION_OPENED: PositionData,
    POSITION_CHANGED: PositionData,
    POSITION_CLOSED: PositionData,
    POSITION_MARKED: PositionMarkedData,
    **dict.fromkeys(
        (ORDER_ACCEPTED, ORDER_FILLED, ORDER_REJECTED, ORDER_PAUSED, ORDER_SKIPPED), OrderData
    ),
    ORDER_BRACKET_FILLED: BracketFilledData,
    ACCOUNT_ALERT: AlertData,
    ACCOUNT_RISK_STATUS: RiskStatusData,
    ACCOUNT_MISMATCH: MismatchData,
    ACCOUNT_LOCKED: LockedData,
    ACCOUNT_COPY_DRIFT: CopyDriftData,
    **dict.fromkeys(
        (ACCOUNT_TRADER_PAUSED, ACCOUNT_TRADER_SKIPPED, ACCOUNT_TRADER_FLATTENED), TraderNoteData
    ),
    RECORDER_DELETED: RecorderCommandData,
    RECORDER_HISTORY_RESET: RecorderCommandData,
    PRICE_STATUS: PriceStatusData,
    BENCH_MARK: BenchMarkData,
    BENCH_PING: BenchPingData,
}
