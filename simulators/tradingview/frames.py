"""The simulator's own `~m~` codec and symbol-string reading (docs/outside/tradingview.md B.2, B.6).

Kept apart from the price feed's codec on purpose: a framing bug in the client must not be
mirrored here."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any


def frame(payload: str) -> str:
    """One packet; the length counts UTF-16 code units, as the browser's `String.length` does."""
    return f"~m~{len(payload.encode('utf-16-le')) // 2}~m~{payload}"


def message(method: str, params: list[Any], *, stamped: bool = False) -> str:
    """A `{"m", "p"}` packet; `stamped` adds the top-level `t`/`t_ms` chart messages carry."""
    body: dict[str, Any] = {"m": method, "p": params}
    if stamped:
        now = time.time()
        body |= {"t": int(now), "t_ms": int(now * 1000)}
    text = json.dumps(
        body,
        separators=(",", ":"),
        ensure_ascii=False,
        default=lambda d: float(d) if isinstance(d, Decimal) else str(d),
    )
    return frame(text)


def payloads(message: str) -> list[str]:
    """Split a message into payloads by counting UTF-16 units, the way the browser does.

    ValueError (UnicodeDecodeError included) when it is not a run of well-formed packets."""
    data, out = message.encode("utf-16-le"), []
    while data:
        text = data[:64].decode("utf-16-le", errors="replace")
        digits = text[3:].split("~m~", 1)[0]
        if not (digits.isdigit() and text.startswith(f"~m~{digits}~m~")):
            raise ValueError("no packet header")
        start, end = 2 * (6 + len(digits)), 2 * (6 + len(digits) + int(digits))
        if end > len(data):
            raise ValueError("truncated")
        out.append(data[start:end].decode("utf-16-le"))  # fails if it splits a character
        data = data[end:]
    if not out:
        raise ValueError("empty")
    return out


def listing_name(symbol: str) -> str:
    """`CME_MINI:MNQ1!` or `={"symbol":"CME_MINI:MNQ1!",…}` → `CME_MINI:MNQ1!`; "" otherwise
    (custom chart types nest a symbol object under `symbol`: not served by the simulator)."""
    if not symbol.startswith("="):
        return symbol
    try:
        spec = json.loads(symbol[1:])
    except ValueError:
        return ""
    name = spec.get("symbol", "") if isinstance(spec, dict) else ""
    return name if isinstance(name, str) else ""
