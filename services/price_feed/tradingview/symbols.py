"""Canonical roots ↔ TradingView symbol names (docs/outside/futures.md §3).

The feed subscribes to the front continuous contract of a root, `EXCHANGE:ROOT1!`; answers may
come back under a delayed venue (`CME_MINI_DL:MNQ1!`), which maps to the same root.
"""

from __future__ import annotations

from libs.common.futures.instruments import canonical_symbol

EXCHANGES: dict[str, str] = {
    **dict.fromkeys(("ES", "MES", "NQ", "MNQ", "RTY", "M2K"), "CME_MINI"),
    **dict.fromkeys(("YM", "MYM"), "CBOT_MINI"),
    **dict.fromkeys(("CL", "MCL", "NG"), "NYMEX"),
    **dict.fromkeys(("GC", "MGC", "SI", "SIL", "HG"), "COMEX"),
    **dict.fromkeys(("ZB", "ZN", "ZF", "ZT"), "CBOT"),
    **dict.fromkeys(("6E", "6J", "6B", "M6E"), "CME"),
}


def tradingview_name(root: str) -> str:
    """`MNQ` → `CME_MINI:MNQ1!`; a root we do not know is asked for as it is (`AAPL`)."""
    exchange = EXCHANGES.get(root)
    return f"{exchange}:{root}1!" if exchange else root


def root_of(name: str) -> str:
    """`CME_MINI_DL:MNQ1!` → `MNQ`."""
    return canonical_symbol(name)


def is_delayed_venue(name: str) -> bool:
    exchange = name.split(":", 1)[0] if ":" in name else ""
    return exchange.endswith(("_DL", "_DLY"))
