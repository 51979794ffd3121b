"""Tradovate's wire formats, pure: WebSocket frames and requests (docs/outside/tradovate.md
§6.1–6.2),
quote merging (§6.5) and the answers of `contract/find` (§4, §5.2).

Numbers parse as `Decimal`, so a price arrives exactly as the server wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

HEARTBEAT = "[]"  # the client heartbeat (§6.3): an empty JSON array, no newline fields


class FrameError(ValueError):
    """A server frame that is not `o`, `h`, `a[...]` or `c[code,"reason"]`."""


@dataclass(frozen=True)
class Open:
    """`o`: the socket is ready for `authorize`."""


@dataclass(frozen=True)
class Heartbeat:
    """`h`: the server is alive and has nothing to say."""


@dataclass(frozen=True)
class Response:
    """The answer to request `i`; `d` is the REST body on 2xx, an error string otherwise."""

    i: int | None
    s: int
    d: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.s < 300


@dataclass(frozen=True)
class Event:
    """A pushed message: `md`, `props`, `shutdown`, `chart`, `clock`."""

    e: str
    d: Any = None


@dataclass(frozen=True)
class Messages:
    """`a[...]`: responses and events, possibly mixed in one frame."""

    items: tuple[Response | Event, ...]


@dataclass(frozen=True)
class Close:
    """`c[code,"reason"]`: the server is closing the socket."""

    code: int
    reason: str


Frame = Open | Heartbeat | Messages | Close


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise FrameError(f"frame payload is not JSON: {exc}") from None


def _message(raw: Any) -> Response | Event:
    if not isinstance(raw, dict):
        raise FrameError("a message inside a[...] is not an object")
    if "e" in raw:
        return Event(str(raw["e"]), raw.get("d"))
    if isinstance(raw.get("s"), int):
        i = raw.get("i")
        return Response(i if isinstance(i, int) else None, raw["s"], raw.get("d"))
    raise FrameError("a message has neither `e` nor an integer `s`")


def parse_frame(text: str) -> Frame:
    """One text frame from the server → a typed frame; anything else raises `FrameError`."""
    if text == "o":
        return Open()
    if text == "h":
        return Heartbeat()
    if text.startswith("a"):
        body = _loads(text[1:])
        if not isinstance(body, list):
            raise FrameError("a-frame payload is not an array")
        return Messages(tuple(_message(m) for m in body))
    if text.startswith("c"):
        body = _loads(text[1:])
        if not (isinstance(body, list) and body and isinstance(body[0], int)):
            raise FrameError("c-frame payload is not [code, reason]")
        return Close(body[0], str(body[1]) if len(body) > 1 else "")
    raise FrameError(f"unknown frame type {text[:1]!r}")


def build_request(endpoint: str, request_id: int, query: str = "", body: Any = None) -> str:
    """`endpoint\\nid\\nquery\\nbody`; a str body goes raw (the token of `authorize`), else JSON."""
    if body is None:
        text = ""
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, separators=(",", ":"), default=str)
    return f"{endpoint}\n{request_id}\n{query}\n{text}"


Entries = dict[str, dict[str, Any]]  # "Trade" → {"price": Decimal, "size": Decimal}


def merge_entries(last: Entries | None, update: Any) -> Entries:
    """The quote after a partial update: missing entries and missing fields keep old values."""
    merged = {name: dict(fields) for name, fields in (last or {}).items()}
    if not isinstance(update, dict):
        return merged
    for name, fields in update.items():
        if isinstance(fields, dict):
            merged.setdefault(name, {}).update(fields)
    return merged


def trade_price(entries: Entries) -> Decimal | None:
    """The last trade price of a merged quote, when it has one."""
    price = entries.get("Trade", {}).get("price")
    if isinstance(price, Decimal):
        return price
    if isinstance(price, int) and not isinstance(price, bool):
        return Decimal(price)
    return None


@dataclass(frozen=True)
class ContractLookup:
    """What `contract/find` said: an id, a lasting refusal, or a hiccup worth retrying."""

    contract_id: int | None = None
    failure: str | None = None  # the contract does not exist: the root goes in failed_symbols
    transient: str | None = None  # network, 401, 429, 5xx, p-ticket: ask again later


def read_contract_find(name: str, status: int, body: Any) -> ContractLookup:
    """Interpret a `GET /contract/find?name=` answer (§4: business errors come as HTTP 200)."""
    unknown = f"Tradovate does not know contract {name}"
    if status == 200:
        if isinstance(body, dict) and isinstance(body.get("id"), int):
            return ContractLookup(contract_id=body["id"])
        if isinstance(body, dict) and "p-ticket" in body:
            return ContractLookup(transient="Tradovate is rate-limiting contract lookups")
        text = body.get("errorText") if isinstance(body, dict) else None
        return ContractLookup(failure=f"{unknown} ({text})" if text else unknown)
    if status == 404:
        return ContractLookup(failure=unknown)
    if status == 401:
        return ContractLookup(transient="Tradovate refused the access token for a contract lookup")
    return ContractLookup(transient=f"the contract lookup for {name} failed with HTTP {status}")
