"""Which `jt:events` entry a user hears of as which notification event, and the words it is
told in. Pure: no Redis, no SQL, no clock (the feed's previous status is passed in).

Notification events and the `jt:events` types that feed them (docs/contract.md §4e):
fill ← order.filled, order.bracket_filled; rejection ← order.rejected, signal.rejected;
risk_lock ← account.locked; risk_breach ← account.risk_status; broker_lockout and
broker_penalty ← account.alert (a captcha or penalty ticket is a penalty, the rest lockouts);
feed_delayed and feed_down ← price.status (on the change only, to every user who asked);
feed_signin_failed ← price.status when `signin_failed` appears or changes (the TradingView session
stopped renewing itself: a captcha or a refused password or code);
reconcile_difference ← account.mismatch with a difference past the grace period;
daily_summary ← none: the notifier makes it after the CME session closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from libs.common import events

Event = Literal[
    "fill",
    "rejection",
    "risk_lock",
    "risk_breach",
    "broker_lockout",
    "broker_penalty",
    "feed_delayed",
    "feed_down",
    "feed_signin_failed",
    "reconcile_difference",
    "daily_summary",
]
EVENTS: tuple[str, ...] = get_args(Event)
TEST = "test"  # the test button's message; every destination takes it

SOURCES: dict[str, str] = {
    events.ORDER_FILLED: "fill",
    events.ORDER_BRACKET_FILLED: "fill",
    events.ORDER_REJECTED: "rejection",
    events.SIGNAL_REJECTED: "rejection",
    events.ACCOUNT_LOCKED: "risk_lock",
    events.ACCOUNT_RISK_STATUS: "risk_breach",
    events.ACCOUNT_MISMATCH: "reconcile_difference",
}
FEED_EVENTS = ("feed_delayed", "feed_down", "feed_signin_failed")


@dataclass(frozen=True)
class Notice:
    """One thing to tell: for one user (None: everyone who asked for it), its event and data."""

    user_id: int | None
    event: str
    data: dict[str, Any]


def notice_for(event_type: str, data: dict[str, Any]) -> Notice | None:
    """The notice a user-owned `jt:events` entry makes, or None for one nobody is told of."""
    user_id = data.get("user_id")
    if not isinstance(user_id, int):
        return None
    if event_type == events.ACCOUNT_ALERT:
        message = str(data.get("message", "")).lower()
        penalty = "captcha" in message or "ticket" in message or "penalty" in message
        return Notice(user_id, "broker_penalty" if penalty else "broker_lockout", data)
    notice_event = SOURCES.get(event_type)
    if notice_event is None:
        return None
    if event_type == events.ACCOUNT_MISMATCH and not data.get("mismatches"):
        return None  # only differences still there after the grace period
    return Notice(user_id, notice_event, {"source": event_type, **data})


def feed_notices(previous: dict[str, Any] | None, status: dict[str, Any]) -> list[Notice]:
    """Feed notices (to everyone who asked) when the price feed became down or delayed, or its
    TradingView session stopped renewing itself."""

    def down(s: dict[str, Any] | None) -> bool:
        return s is not None and not (s.get("ok") and s.get("connected", True))

    def delayed(s: dict[str, Any] | None) -> set[str]:
        return set(s.get("delayed_symbols") or []) if s else set()

    notices = []
    if down(status) and not down(previous):
        notices.append(Notice(None, "feed_down", status))
    newly = delayed(status) - delayed(previous)
    if newly:
        notices.append(Notice(None, "feed_delayed", {**status, "newly_delayed": sorted(newly)}))
    failed = status.get("signin_failed")
    if failed and failed != (previous or {}).get("signin_failed"):
        notices.append(Notice(None, "feed_signin_failed", status))
    return notices


def _money(value: Any) -> str:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def _fill(d: dict[str, Any]) -> str:
    qty = d.get("quantity") or abs(float(d.get("net_qty") or 0)) or ""
    contract = d.get("contract") or d.get("symbol") or ""
    side = d.get("side") or ""
    price = d.get("fill_price")
    reason = f" ({d['reason']})" if d.get("reason") else ""
    return f"Filled: {side} {qty} {contract} at {price}{reason}".replace("  ", " ")


def _summary(d: dict[str, Any]) -> str:
    lines = [
        f"Daily summary for {d.get('trade_date')}: {_money(d.get('pnl'))}, "
        f"{d.get('trades', 0)} trades"
    ]
    for row in d.get("recorders", []):
        lines.append(
            f"• {row['name']}: {_money(row['pnl'])}, {row['trades']} trades, "
            f"worst drawdown {_money(row['worst_drawdown'])}"
        )
    return "\n".join(lines)


def message_text(event: str, d: dict[str, Any]) -> str:
    """The one-paragraph text a chat or an e-mail carries for the notice."""
    if event == "fill":
        return _fill(d)
    if event == "rejection":
        what = d.get("symbol") or d.get("signal_id") or ""
        return f"Rejected: {what} — {d.get('error') or d.get('reason') or 'no reason given'}"
    if event == "risk_lock":
        return (
            f"Risk lock on {d.get('name')}: {d.get('reason')} (until {d.get('locked_until')}"
            f"{', flattened' if d.get('flattened') else ''})"
        )
    if event == "risk_breach":
        return (
            f"Broker risk status of {d.get('name')}: {d.get('previous')} → {d.get('risk_status')}"
        )
    if event in ("broker_lockout", "broker_penalty"):
        return f"Tradovate {event.split('_')[1]} ({d.get('broker_user')}): {d.get('message')}"
    if event == "feed_down":
        return f"Price feed down ({d.get('source')}): {d.get('error') or 'not connected'}"
    if event == "feed_delayed":
        symbols = ", ".join(d.get("newly_delayed") or d.get("delayed_symbols") or [])
        return f"Price feed delayed: {symbols} quoted late (no TP/SL on delayed ticks)"
    if event == "feed_signin_failed":
        # The reason already carries the steps (sign in in a browser, save the sign-in again or
        # paste cookies): the one thing a person must do.
        return f"TradingView sign-in of the price feed stopped: {d.get('signin_failed')}"
    if event == "reconcile_difference":
        rows = "; ".join(
            f"{m.get('symbol')}: platform {m.get('expected')}, broker {m.get('actual')}"
            for m in d.get("mismatches", [])
        )
        return f"Broker positions differ from the platform's: {rows}"
    if event == "daily_summary":
        return _summary(d)
    if event == TEST:
        return "Test notification from Just Trades: this destination works."
    return event


def title(event: str) -> str:
    return "Just Trades: " + event.replace("_", " ")
