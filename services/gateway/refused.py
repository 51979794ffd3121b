"""Refused webhooks kept per recorder (the newest 100, for 7 days), so its owner can see in the
UI why an alert never arrived: the status, the sentence the gateway answered and the body.

Keeping one is a single transaction on a short-timeout client and swallows any Redis error: a
refusal is answered the same whether or not it could be kept. Tokens never reach the record.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis

from libs.common import redis_conn, streams

log = logging.getLogger(__name__)

KEPT = 100
KEPT_FOR_S = 7 * 24 * 3600
KEPT_STATUSES = frozenset({400, 404, 413, 422, 429})
BODY_KEPT_BYTES = 4 * 1024
BODY_NOT_KEPT = "(body over 16 KiB, not kept)"
# A 404 naming a recorder is kept on at most this many recorders of that name: the name is all
# an unknown sender gives, so it must not reach every recorder called "MNQ".
MAX_NAMED = 10
TOKEN_MARK = "<token>"
# A shorter "token" in a 404's URL is a typo, not a secret; replacing it would garble the body.
MIN_TOKEN_REPLACED = 8

_TOKEN_LIKE = re.compile(r"[0-9A-Za-z_-]{16,64}")
_WEBHOOK_PATH = re.compile(r"(/webhook/)[^\s?#\"'<>\\]+")


@dataclass(frozen=True)
class Refusal:
    """One refused webhook as the UI lists it."""

    at: str  # ISO 8601, UTC
    status: int
    error: str
    body: str
    remote: str | None
    unknown_token: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def list_key(prefix: str, recorder_id: int) -> str:
    return f"{prefix}{streams.WEBHOOK_REFUSED}{recorder_id}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_text(body: bytes | None, token: str, is_token: Callable[[str], bool]) -> str:
    """The body as kept: text, with the request's token, any other webhook token (`is_token`)
    and any webhook URL's last part replaced by `<token>`, cut to its first 4 KiB."""
    if body is None:
        return BODY_NOT_KEPT
    text = body.decode("utf-8", errors="replace")
    if len(token) >= MIN_TOKEN_REPLACED:
        text = text.replace(token, TOKEN_MARK)
    text = _WEBHOOK_PATH.sub(rf"\g<1>{TOKEN_MARK}", text)
    text = _TOKEN_LIKE.sub(lambda m: TOKEN_MARK if is_token(m[0]) else m[0], text)
    return text.encode()[:BODY_KEPT_BYTES].decode("utf-8", errors="ignore")


def named_recorder(body: bytes | None) -> str | None:
    """The `recorder` field of a JSON object body, when it is text; else None."""
    if not body:
        return None
    try:
        data = json.loads(body.decode("utf-8").lstrip("\ufeff"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("recorder")
    return value if isinstance(value, str) and value.strip() else None


def keep(client: redis.Redis, prefix: str, recorder_ids: Iterable[int], refusal: Refusal) -> None:
    """Put the refusal at the head of each recorder's list, trimmed to the newest 100 and kept
    7 days; one round trip, and a Redis error is logged, never raised."""
    ids = list(dict.fromkeys(recorder_ids))
    if not ids:
        return
    record = refusal.to_json()
    try:
        # One transaction on a plain Redis; a cluster's must stay in one slot, so none there.
        pipe = client.pipeline(transaction=not redis_conn.is_cluster(client))
        for recorder_id in ids:
            key = list_key(prefix, recorder_id)
            pipe.lpush(key, record)
            pipe.ltrim(key, 0, KEPT - 1)
            pipe.expire(key, KEPT_FOR_S)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning(
            "refused webhook not kept",
            extra={"kv": {"error": type(exc).__name__, "status": refusal.status}},
        )
