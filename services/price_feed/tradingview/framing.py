"""TradingView's `~m~<length>~m~<payload>` framing (docs/outside/tradingview.md B.2–B.4), pure.

Lengths count UTF-16 code units, as JavaScript's `String.length` does; numbers parse as `Decimal`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_HEADER = re.compile(r"~m~(\d{1,9})~m~")
_HEARTBEAT = re.compile(r"~h~(\d{1,12})")


class FramingError(ValueError):
    """A WebSocket message that is not a run of well-formed packets."""


@dataclass(frozen=True)
class Heartbeat:
    number: int
    raw: str  # the whole packet as received, so the echo is byte-identical


@dataclass(frozen=True)
class Hello:
    fields: dict[str, Any]


@dataclass(frozen=True)
class Message:
    method: str
    params: list[Any]
    extra: dict[str, Any] = field(default_factory=dict)  # top-level keys beside m/p, e.g. t, t_ms


Packet = Heartbeat | Hello | Message


def utf16_length(text: str) -> int:
    """JavaScript's `String.length`: characters outside the BMP count twice."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def encode_packet(payload: str) -> str:
    return f"~m~{utf16_length(payload)}~m~{payload}"


def encode_message(method: str, params: list[Any]) -> str:
    """One packet `{"m":method,"p":params}` in the compact JSON every client sends."""
    body = json.dumps(
        {"m": method, "p": params}, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )
    return encode_packet(body)


def encode_heartbeat(number: int) -> str:
    return encode_packet(f"~h~{number}")


def decode(message: str) -> list[Packet]:
    """Every packet of one WebSocket message, in order; FramingError if any is malformed."""
    if not message:
        raise FramingError("empty message")
    packets: list[Packet] = []
    pos = 0
    while pos < len(message):
        header = _HEADER.match(message, pos)
        if header is None:
            raise FramingError(f"no packet header at offset {pos}")
        start = header.end()
        end = _advance_units(message, start, int(header[1]))
        packets.append(_parse_payload(message[start:end], message[pos:end]))
        pos = end
    return packets


def _advance_units(text: str, start: int, units: int) -> int:
    """Index just past `units` UTF-16 code units of `text` from `start`."""
    end = start + units
    if end <= len(text) and utf16_length(text[start:end]) == units:
        return end  # the usual case: nothing outside the BMP in the payload
    count, i = 0, start
    while count < units and i < len(text):
        count += 2 if ord(text[i]) > 0xFFFF else 1
        i += 1
    if count != units:
        raise FramingError(f"declared length {units} does not fit the message")
    return i


def _parse_payload(payload: str, raw: str) -> Packet:
    heartbeat = _HEARTBEAT.fullmatch(payload)
    if heartbeat:
        return Heartbeat(int(heartbeat[1]), raw)
    if payload.startswith("~h~"):
        raise FramingError(f"bad heartbeat {payload[:20]!r}")
    if payload.startswith("~j~"):  # legacy JSON marker from old clients
        payload = payload[3:]
    try:
        body = json.loads(payload, parse_float=Decimal, parse_constant=Decimal)
    except ValueError as exc:
        raise FramingError(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FramingError("payload is not a JSON object")
    if "m" not in body:
        return Hello(body)
    params = body.get("p", [])
    if not isinstance(body["m"], str) or not isinstance(params, list):
        raise FramingError("message needs a string m and a list p")
    extra = {k: v for k, v in body.items() if k not in ("m", "p")}
    return Message(body["m"], params, extra)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
