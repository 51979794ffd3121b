"""Tokens shaped like TradingView's socket tokens: RS512-looking JWTs whose payload is readable."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_jwt(user_id: int, exp: int, plan: str = "pro") -> str:
    """A token with a real header and payload but a random signature: clients only read `exp`
    (docs/outside/tradingview.md C.3), and the simulated socket recognises tokens by value, not by
    signature."""
    header = {"alg": "RS512", "typ": "JWT"}
    payload = {"user_id": user_id, "plan": plan, "exp": exp, "iat": int(time.time())}
    parts = [
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(payload, separators=(",", ":")).encode()),
        _b64url(secrets.token_bytes(256)),  # an RS512 signature is as long as the 2048-bit key
    ]
    return ".".join(parts)


def read_claims(token: str) -> dict[str, Any] | None:
    """The payload of a token made here (or any JWT), or None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None
