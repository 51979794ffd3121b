"""Plain-dict views of models, shared by the JSON API and the events on `jt:events`.

Prices go out as JSON numbers at their exact decimal value; USD amounts rounded to the cent,
half up (futures.md §6 asks for one documented rounding mode).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from libs.common.storage.models import OrderIntent, Position, Recorder, Signal

CENT = Decimal("0.01")


def usd(value: Decimal | None) -> float | None:
    return None if value is None else float(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def num(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    value = Decimal(value).normalize()
    return int(value) if value == value.to_integral_value() else float(value)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def targets_of(p: Position) -> list[dict[str, Any]]:
    """Each target leg's level, the open contracts allotted to it and the contracts it filled
    (docs/contract.md §3b); a position without an exit plan has its one target, if any."""
    state = p.plan_state
    if state and state.get("targets") is not None:
        return [
            {
                "level": num(Decimal(t["level"])),
                "allotted": num(Decimal(t["allotted"])),
                "filled": num(Decimal(t["filled"])),
            }
            for t in state["targets"]
        ]
    if p.tp_price is None:
        return []
    hit = p.status == "closed" and p.exit_reason == "tp"
    return [
        {
            "level": num(p.tp_price),
            "allotted": num(p.quantity) if p.status == "open" else 0,
            "filled": num(p.quantity) if hit else 0,
        }
    ]


def position_dict(p: Position) -> dict[str, Any]:
    return {
        "id": p.id,
        "recorder_id": p.recorder_id,
        "symbol": p.symbol,
        "side": p.side,
        "quantity": num(p.quantity),
        "avg_entry_price": num(p.avg_entry_price),
        "tp_price": num(p.tp_price),
        "sl_price": num(p.sl_price),
        "targets": targets_of(p),
        "stop_price": num(p.sl_price),
        "stop_reason": p.stop_reason or ("sl" if p.sl_price is not None else None),
        "status": p.status,
        "realized_pnl": usd(p.realized_pnl),
        "exit_price": num(p.exit_price),
        "exit_reason": p.exit_reason,
        "max_favorable": num(p.max_favorable),
        "max_adverse": num(p.max_adverse),
        "worst_unrealized_pnl": usd(p.worst_unrealized_pnl),
        "best_unrealized_pnl": usd(p.best_unrealized_pnl),
        "opened_at": iso(p.opened_at),
        "closed_at": iso(p.closed_at),
    }


def signal_dict(s: Signal) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "signal_id": str(s.id),
        "recorder_id": s.recorder_id,
        "status": s.status,
        "reason": s.reason,
        "position_id": s.position_id,
        "action": s.action,
        "ticker": s.ticker,
        "symbol": s.symbol,
        "price": num(s.price),
        "qty": num(s.qty),
        "position_size": num(s.position_size),
        "market_position": s.market_position,
        "received_at": iso(s.received_at),
        "processed_at": iso(s.processed_at),
        "raw": s.raw,
    }


def recorder_dict(r: Recorder, public_url: str) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "default_qty": num(r.default_qty),
        "tp_ticks": r.tp_ticks,
        "sl_ticks": r.sl_ticks,
        "on_opposite": r.on_opposite,
        "allow_dca": r.allow_dca,
        "enabled": r.enabled,
        "allow_delayed_exits": r.allow_delayed_exits,
        "exits": r.exits,
        "webhook_token": r.webhook_token,
        "webhook_url": f"{public_url}/webhook/{r.webhook_token}",
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def intent_dict(intent: OrderIntent) -> dict[str, Any]:
    """An order intent as the API and the `order.*` events show it."""
    return {
        "id": str(intent.id),
        "user_id": intent.user_id,
        "trader_id": intent.trader_id,
        "subaccount_id": intent.subaccount_id,
        "source": intent.source,
        "signal_id": str(intent.signal_id) if intent.signal_id else None,
        "parent_id": str(intent.parent_id) if intent.parent_id else None,
        "kind": intent.kind,
        "symbol": intent.symbol,
        "contract": intent.contract,
        "side": intent.side,
        "quantity": num(intent.quantity),
        "order_type": intent.order_type,
        "tp_price": num(intent.tp_price),
        "sl_price": num(intent.sl_price),
        "status": intent.status,
        "broker_order_id": intent.broker_order_id,
        "fill_price": num(intent.fill_price),
        "error": intent.error,
        "attempts": intent.attempts,
        "cl_ord_id": intent.cl_ord_id,
        "created_at": iso(intent.created_at),
        "sent_at": iso(intent.sent_at),
        "accepted_at": iso(intent.accepted_at),
        "finished_at": iso(intent.finished_at),
    }
