"""A recorder's signal log replayed through the pure rules: the positions the engine must have
written for it. The crash tests and `justtrades chaos` hold the engine's rows against this."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from libs.common.instruments import contract_spec
from services.position_engine import rules

# The fields of a position that signals alone decide (ticks only move the marks: MFE, MAE, ...).
SIGNAL_FIELDS = ("symbol", "side", "quantity", "avg_entry_price", "status", "exit_price",
                 "exit_reason", "realized_pnl")  # fmt: skip
COMPARED_TO = Decimal("1e-9")


@dataclass
class Replay:
    """Every position in the order it opened, and per signal its status and number of fills."""

    positions: list[rules.PositionState] = field(default_factory=list)
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)


def stream_order(entry_id: str) -> tuple[int, int]:
    """A Redis stream id ("ms-seq") as a sortable pair; the order the engine applied entries in."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def replay_signals(
    signals: Iterable[rules.SignalInput], settings: rules.RecorderSettings
) -> Replay:
    """Apply `signals` in order to a recorder that starts flat, one open position per symbol."""
    replay = Replay()
    open_by_symbol: dict[str, rules.PositionState | None] = {}
    index_of_open: dict[str, int] = {}
    for signal in signals:
        current = open_by_symbol.get(signal.symbol)
        outcome = rules.apply_signal(current, signal, settings, contract_spec(signal.symbol))
        for change in outcome.changes:
            if change.event == "opened":
                index_of_open[signal.symbol] = len(replay.positions)
                replay.positions.append(change.position)
            else:
                replay.positions[index_of_open[signal.symbol]] = change.position
        if outcome.changes:
            open_by_symbol[signal.symbol] = outcome.open_position
        replay.outcomes[signal.signal_id] = (
            outcome.status,
            sum(len(c.fills) for c in outcome.changes),
        )
    return replay


def signal_fields(position: object) -> dict[str, object]:
    """The signal-decided fields of a position (a PositionState or a Position row), comparable."""
    values: dict[str, object] = {}
    for name in SIGNAL_FIELDS:
        value = getattr(position, name)
        # The row keeps 12 decimals of an average that may not terminate (3 contracts).
        values[name] = (
            value.quantize(COMPARED_TO).normalize() if isinstance(value, Decimal) else value
        )
    return values
