"""A recorder's signal log, with the ticks between its signals, replayed through the pure rules:
the positions the engine must have written for it. The crash tests and `justtrades chaos` hold
the engine's rows against this."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from libs.common.futures.instruments import contract_spec
from services.position_engine import rules
from services.position_engine.ticks import apply_tick

# Every field of a position the rules decide (times aside).
COMPARED_FIELDS = (
    "symbol",
    "side",
    "quantity",
    "avg_entry_price",
    "status",
    "exit_price",
    "exit_reason",
    "realized_pnl",
    "tp_price",
    "sl_price",
    "stop_reason",
    "max_favorable",
    "max_adverse",
    "worst_unrealized_pnl",
    "best_unrealized_pnl",
)
COMPARED_TO = Decimal("1e-9")


@dataclass
class Replay:
    """Every position in the order it opened, and per signal its status and number of fills."""

    positions: list[rules.PositionState] = field(default_factory=list)
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)


def stream_order(entry_id: str, is_tick: bool = False) -> tuple[int, bool, int]:
    """Where an entry of `jt:signals` or `jt:ticks` falls in the order the engine applies them:
    by the millisecond of its Redis id, signals before ticks within one millisecond."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), is_tick, int(seq or 0)


@dataclass(frozen=True)
class TickInput:
    symbol: str
    price: Decimal
    ts: int  # epoch ms
    delayed: bool = False


def replay_log(
    log: Iterable[rules.SignalInput | TickInput], settings: rules.RecorderSettings
) -> Replay:
    """Apply a recorder's signals, and the ticks between them, in order to a recorder that starts
    flat: one open position per symbol, ticks taken one at a time (the reference the engine's
    runs of ticks are held to)."""
    replay = Replay()
    open_at: dict[str, int] = {}  # symbol → index of its open position in replay.positions
    last_price: dict[str, Decimal] = {}
    for item in log:
        spec = contract_spec(item.symbol)
        if isinstance(item, TickInput):
            last_price[item.symbol] = item.price
            index = open_at.get(item.symbol)
            if index is None:
                continue
            marked = apply_tick(
                replay.positions[index],
                item.price,
                item.ts,
                spec,
                delayed=item.delayed,
                allow_delayed_exits=settings.allow_delayed_exits,
            )
            if marked:
                replay.positions[index] = marked.position
                if marked.exit is not None:
                    del open_at[item.symbol]
            continue
        current = replay.positions[open_at[item.symbol]] if item.symbol in open_at else None
        outcome = rules.apply_signal(current, item, settings, spec, last_price.get(item.symbol))
        for change in outcome.changes:
            if change.event == "opened":
                open_at[item.symbol] = len(replay.positions)
                replay.positions.append(change.position)
            else:
                replay.positions[open_at[item.symbol]] = change.position
        if outcome.changes and outcome.open_position is None:
            del open_at[item.symbol]
        fills = sum(len(c.fills) for c in outcome.changes)
        replay.outcomes[item.signal_id] = (outcome.status, fills)
    return replay


def compared_fields(position: object) -> dict[str, object]:
    """The rule-decided fields of a position (a PositionState or a Position row), comparable."""
    values: dict[str, object] = {}
    for name in COMPARED_FIELDS:
        value = getattr(position, name)
        # The row keeps 12 decimals of an average that may not terminate (3 contracts).
        values[name] = (
            value.quantize(COMPARED_TO).normalize() if isinstance(value, Decimal) else value
        )
    return values
