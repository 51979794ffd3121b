"""Rules for a recorder's traders: the order intents a signal, the daily loss guard or a trading
window's end writes, in the engine's transaction (an outbox), and the notes users see about them.

The engine calls `intents_for_signal` after a signal changed a position and `daily_loss_guard`
after any close; both add rows to the session and return what the executor must be told about
once the transaction has committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common.copy_trading import copies_of
from libs.common.futures.exchange_calendar import add_business_days, trade_date
from libs.common.orders import QueuedIntent, new_intent, targets_json
from libs.common.storage import db
from libs.common.storage.models import (
    OrderIntent,
    Position,
    Subaccount,
    Trader,
    TraderSkip,
)
from services.position_engine.intents import (
    PlannedIntent,
    TraderRule,
    closing,
    in_window,
    level_moves,
    plan_intents,
)
from services.position_engine.position_state import PositionChange, PositionState
from services.position_engine.rules import SignalOutcome


@dataclass(frozen=True)
class TraderNote:
    """Something users should see about a trader (an entry skipped, a trader paused)."""

    trader_id: int
    user_id: int
    kind: str  # skipped | paused
    message: str


def _clock(text: str | None) -> time | None:
    return time.fromisoformat(text) if text else None


def rule_of(trader: Trader) -> TraderRule:
    return TraderRule(
        trader.id,
        trader.subaccount_id,
        trader.multiplier,
        trader.max_contracts,
        _clock(trader.window_start),
        _clock(trader.window_end),
        trader.window_tz,
    )


def _entries_blocked(trader: Trader, subaccount: Subaccount, now: datetime) -> str | None:
    if (until := subaccount.lock_until(trade_date(now))) is not None:
        return (
            f"the account {subaccount.name} is locked by its risk desk until "
            f"{until.isoformat()}: {subaccount.lock_reason}"
        )
    if subaccount.risk_status != "normal":
        status = subaccount.risk_status.replace("_", "-")
        return f"the account {subaccount.name} is {status} at the broker"
    if trader.disabled_until and trade_date(now) < trader.disabled_until:
        return trader.disabled_reason or "the trader is paused until the next trade date"
    if not in_window(rule_of(trader), now):
        return "outside the trader's trading window"
    return None


def _row(
    trader: Trader,
    plan: PlannedIntent,
    *,
    source: str,
    symbol: str,
    ticker: str | None,
    signal_id: uuid.UUID | None,
) -> OrderIntent:
    return new_intent(
        user_id=trader.user_id,
        subaccount_id=trader.subaccount_id,
        trader_id=trader.id,
        source=source,
        signal_id=signal_id,
        kind=plan.kind,
        symbol=symbol,
        ticker=ticker,
        side=plan.side,
        quantity=plan.quantity,
        tp_price=plan.tp_price,
        sl_price=plan.sl_price,
        targets=None if plan.entry_price is None else targets_json(plan.entry_price, plan.targets),
        position_quantity=plan.position_quantity if plan.kind not in ("close",) else None,
        priority=plan.priority,
    )


def _with_copies(session: Session, row: OrderIntent) -> list[QueuedIntent]:
    """Add the intent and its followers' copies; the copies' sequence comes after the leader's."""
    session.add(row)
    session.flush()
    rows = [row, *copies_of(session, row)]
    return [QueuedIntent(r.id, r.subaccount_id, r.priority) for r in rows]


# A recorder's traders that are on, each with its subaccount, oldest first.
Traders = list[tuple[Trader, Subaccount]]
# Whether a recorder holds an open position of a symbol (the engine's book, which is ahead of the
# rows within a batch); None from it, or no Holds at all: read the rows (a recorder of another
# engine partition, whose book this engine does not have).
Holds = Callable[[int, str], bool | None]


def decide_orders_alone(session: Session, partitions: int) -> None:
    """With several engine partitions, take the transaction lock under which engines decide and
    write traders' orders: a trader's way out on a shared subaccount depends on what the other
    traders there hold (§4b), and those may belong to another partition's engine. Held until the
    commit; reentrant, so every path that is about to decide can ask for it."""
    if partitions > 1:
        session.execute(select(func.pg_advisory_xact_lock(db.ENGINE_ORDERS_LOCK)))


def shares_contract(session: Session, trader: Trader, symbol: str, holds: Holds | None) -> bool:
    """True when another trader that is on holds `symbol` on the trader's subaccount (§4b)."""
    others = session.scalars(
        select(Trader.recorder_id).where(
            Trader.subaccount_id == trader.subaccount_id,
            Trader.id != trader.id,
            Trader.enabled.is_(True),
        )
    ).all()
    if not others:
        return False
    unknown = []
    for recorder_id in others:
        held = None if holds is None else holds(recorder_id, symbol)
        if held:
            return True
        if held is None:
            unknown.append(recorder_id)
    return bool(unknown) and (
        session.scalar(
            select(Position.id)
            .where(
                Position.recorder_id.in_(unknown),
                Position.symbol == symbol,
                Position.status == "open",
            )
            .limit(1)
        )
        is not None
    )


def intents_for_signal(
    session: Session,
    traders: Traders,
    outcome: SignalOutcome,
    *,
    symbol: str,
    ticker: str,
    signal_id: uuid.UUID,
    now: datetime,
    holds: Holds | None = None,
) -> tuple[list[QueuedIntent], list[TraderNote]]:
    queued: list[QueuedIntent] = []
    notes: list[TraderNote] = []
    if outcome.status != "applied" or not outcome.changes:
        return queued, notes
    for trader, subaccount in traders:
        blocked = _entries_blocked(trader, subaccount, now)
        changes = held_changes(outcome.changes, flat_cutoff(trader, subaccount))
        changes = _not_skipped(session, trader, changes)
        if len(changes) < len(outcome.changes):
            notes.append(
                TraderNote(
                    trader.id,
                    trader.user_id,
                    "skipped",
                    "the trader does not hold this position at the broker (its entry was "
                    "skipped, or it was flattened since: trading window's end, kill switch, the "
                    "account's risk desk), so nothing is sent for it",
                )
            )
        shared = any(c.event == "closed" for c in changes) and shares_contract(
            session, trader, symbol, holds
        )
        plans, skipped = [], []
        for change in changes:  # one by one: an opening change without an entry is remembered
            planned, why = plan_intents(
                (change,), rule_of(trader), entries_allowed=blocked is None, shared=shared
            )
            plans += planned
            skipped += why
            if change.event == "opened" and change.position.id is not None and not planned:
                session.add(TraderSkip(trader_id=trader.id, position_id=change.position.id))
        for plan in plans:
            row = _row(
                trader, plan, source="signal", symbol=symbol, ticker=ticker, signal_id=signal_id
            )
            queued += _with_copies(session, row)
        for reason in skipped:
            notes.append(TraderNote(trader.id, trader.user_id, "skipped", blocked or reason))
    return queued, notes


def flat_cutoff(trader: Trader, subaccount: Subaccount) -> datetime | None:
    """Since when the trader holds nothing at the broker of its recorder's older positions: the
    later of its own last flatten and its subaccount's (the risk desk's)."""
    times = [t for t in (trader.flat_since, subaccount.flattened_at) if t is not None]
    return max(times) if times else None


def held_changes(
    changes: tuple[PositionChange, ...], cutoff: datetime | None
) -> tuple[PositionChange, ...]:
    """The changes of positions the trader holds at the broker: new ones, and those opened after
    it was last flattened (an exit of a position flattened away would trade against nothing, or,
    on a shared subaccount, against the other traders' contracts)."""
    if cutoff is None:
        return changes
    cutoff_ms = cutoff.timestamp() * 1000
    return tuple(c for c in changes if c.event == "opened" or c.position.opened_ms >= cutoff_ms)


def _not_skipped(
    session: Session, trader: Trader, changes: tuple[PositionChange, ...]
) -> tuple[PositionChange, ...]:
    """The changes of positions whose entry the trader did not skip."""
    ids = [c.position.id for c in changes if c.event != "opened" and c.position.id is not None]
    if not ids:
        return changes
    skipped = set(
        session.scalars(
            select(TraderSkip.position_id).where(
                TraderSkip.trader_id == trader.id, TraderSkip.position_id.in_(ids)
            )
        )
    )
    return tuple(c for c in changes if c.position.id not in skipped)


def stop_move_intents(
    session: Session, traders: Traders, position: PositionState, position_id: int
) -> list[QueuedIntent]:
    """A tick moved the recorder's stop (break-even, trailing): each trader's broker stop follows,
    whatever the trader's guards say, since a tighter stop only protects. A trader that does not
    hold the position (skipped its entry, or flattened since) has no stop there to move."""
    queued: list[QueuedIntent] = []
    moved = PositionChange("changed", replace(position, id=position_id))
    for trader, subaccount in traders:
        if not _not_skipped(
            session, trader, held_changes((moved,), flat_cutoff(trader, subaccount))
        ):
            continue
        ticker = _entry_ticker(session, trader.id, position.symbol)
        for plan in level_moves(position, ("stop",)):
            row = _row(
                trader, plan, source="plan", symbol=position.symbol, ticker=ticker, signal_id=None
            )
            queued += _with_copies(session, row)
    return queued


def _entry_ticker(session: Session, trader_id: int, symbol: str) -> str | None:
    """The ticker the trader's position was entered with (MNQ1!, or a dated MNQH7 near a roll),
    so the stop that moves is the one on the contract it holds."""
    return session.scalar(
        select(OrderIntent.ticker)
        .where(
            OrderIntent.trader_id == trader_id,
            OrderIntent.symbol == symbol,
            OrderIntent.kind.in_(("entry", "add")),
        )
        .order_by(OrderIntent.sequence.desc())
        .limit(1)
    )


def realized_today(session: Session, recorder_id: int, now: datetime) -> Decimal:
    """The recorder's realized PnL on the current trade date (keyed by trade date:
    docs/outside/futures.md §4.2)."""
    today = trade_date(now)
    rows = session.execute(
        select(Position.closed_at, Position.realized_pnl).where(
            Position.recorder_id == recorder_id,
            Position.status == "closed",
            Position.closed_at >= now - timedelta(days=5),
        )
    ).all()
    return sum(
        (pnl for closed_at, pnl in rows if closed_at and trade_date(closed_at) == today), Decimal(0)
    )


def loss_watched(traders: Traders, now: datetime) -> Traders:
    """The traders whose daily loss limit still watches the current trade date: a limit set, and
    not already paused past today."""
    today = trade_date(now)
    return [
        (trader, subaccount)
        for trader, subaccount in traders
        if trader.daily_loss_limit is not None
        and not (trader.disabled_until and trader.disabled_until > today)
    ]


def daily_loss_guard(
    session: Session,
    recorder_id: int,
    traders: Traders,
    now: datetime,
    *,
    symbol: str,
    holds: Holds | None = None,
) -> tuple[list[QueuedIntent], list[TraderNote]]:
    """Flatten and pause, until the next trade date, each trader past its daily loss limit.

    Reads the recorder's closed positions of today: the caller writes the batch's rows first,
    and only when `loss_watched` leaves a trader to check (most exits have none)."""
    queued: list[QueuedIntent] = []
    notes: list[TraderNote] = []
    today = trade_date(now)
    realized = None
    for trader, _subaccount in loss_watched(traders, now):
        assert trader.daily_loss_limit is not None  # loss_watched keeps only these
        realized = realized_today(session, recorder_id, now) if realized is None else realized
        loss = realized * trader.multiplier
        if loss > -trader.daily_loss_limit:
            continue
        trader.disabled_until = add_business_days(today, 1)
        trader.disabled_reason = (
            f"the daily loss limit of ${trader.daily_loss_limit:.2f} was reached "
            f"(realized ${loss:.2f}); on again on {trader.disabled_until.isoformat()}"
        )
        # The exit that got here took the trader flat; the liquidation is the safety net, and
        # on a shared subaccount it would take the other traders' contracts too (§4b).
        if not shares_contract(session, trader, symbol, holds):
            flatten = PlannedIntent("close", "sell", Decimal(0), "exit")
            row = _row(trader, flatten, source="guard", symbol=symbol, ticker=None, signal_id=None)
            queued += _with_copies(session, row)
        notes.append(TraderNote(trader.id, trader.user_id, "paused", trader.disabled_reason))
    return queued, notes


FLATTEN_AFTER_WINDOW = timedelta(minutes=2)  # how late after the window's end a flatten still goes


def window_end_flattens(
    session: Session,
    now: datetime,
    claim: Callable[[int, date], bool],
    partition: tuple[int, int] = (0, 1),
) -> tuple[list[QueuedIntent], list[TraderNote]]:
    """At the end of a trader's trading window, close what its recorder holds open.

    `claim(trader_id, trade_date)` is true once per trader and trade date (a Redis SET NX), so
    several engines or a restart never flatten twice. `partition` (K, N): only the traders of
    recorders in engine partition K of N.
    """
    queued: list[QueuedIntent] = []
    notes: list[TraderNote] = []
    k, n = partition
    query = select(Trader).where(Trader.enabled.is_(True), Trader.window_end.is_not(None))
    if n > 1:
        query = query.where(Trader.recorder_id % n == k)
    traders = session.scalars(query)
    orders_locked = False  # decide_orders_alone's lock holds until the commit: take it once
    for trader in traders:
        rule = rule_of(trader)
        if rule.window_end is None:  # the query leaves these out
            continue
        local = now.astimezone(ZoneInfo(rule.window_tz))
        end = datetime.combine(local.date(), rule.window_end, tzinfo=local.tzinfo)
        if not (end <= local < end + FLATTEN_AFTER_WINDOW) or not claim(trader.id, trade_date(now)):
            continue
        held = session.execute(
            select(Position.symbol, Position.side, Position.quantity).where(
                Position.recorder_id == trader.recorder_id, Position.status == "open"
            )
        ).all()
        open_symbols = [symbol for symbol, _, _ in held]
        if held and not orders_locked:
            decide_orders_alone(session, n)
            orders_locked = True
        trader.flat_since = now  # what its recorder holds now is flattened at the broker
        for symbol, side, quantity in held:
            shared = shares_contract(session, trader, symbol, None)
            close = closing(side, quantity, rule, shared=shared)
            queued += _with_copies(
                session,
                _row(trader, close, source="guard", symbol=symbol, ticker=None, signal_id=None),
            )
        if open_symbols:
            notes.append(
                TraderNote(
                    trader.id,
                    trader.user_id,
                    "flattened",
                    f"the trading window ended at {rule.window_end:%H:%M} {rule.window_tz}; "
                    f"flattened {', '.join(open_symbols)}",
                )
            )
    return queued, notes
