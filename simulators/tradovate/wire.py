"""How the simulated sockets read a client's request (tradovate.md §6.2): the four newline-separated
fields, and two things real clients send that the docs do not show.

Tradovate's own JavaScript tutorial JSON-encodes every body, so its `authorize` carries the token
in quotes, and a request without a query or body carries JavaScript's text `undefined` there; the
real service serves both, so the simulator does too.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    endpoint: str  # lower case, no slashes around it
    id: int
    query: str
    body: str


def parse_request(text: str) -> Request | None:
    """`endpoint\\nid\\nquery\\nbody`, or None when there is no endpoint and integer id."""
    parts = text.split("\n", 3)
    if len(parts) < 2 or not parts[1].strip().isdigit():
        return None
    query = _given(parts[2] if len(parts) > 2 else "")
    body = _given(parts[3] if len(parts) > 3 else "")
    return Request(parts[0].strip().lower().strip("/"), int(parts[1]), query, body)


def _given(text: str) -> str:
    text = text.strip()
    return "" if text == "undefined" else text


def token_of(body: str) -> str:
    """`authorize`'s token: raw as documented, or a JSON string as the JS tutorial sends it."""
    if body.startswith('"'):
        with contextlib.suppress(ValueError):
            decoded = json.loads(body)
            if isinstance(decoded, str):
                return decoded.strip()
    return body
