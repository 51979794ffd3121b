"""The webhook token → recorder map the gateway reads from Redis instead of PostgreSQL.

The UI writes an entry whenever a recorder is created, changed or deleted; the gateway rebuilds
the whole map from PostgreSQL at start-up and whenever the map's marker key is missing (Redis
restarted without its data), off the request path. Entries are keyed by the token's SHA-256, so
the tokens themselves never sit in Redis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.storage.models import Recorder

TOKENS_KEY = "recorder_tokens"  # hash: sha256(token) → JSON RecorderRef
SYNCED_KEY = "recorder_tokens:synced"  # present once the hash holds every recorder
DEFAULT_MAX_QTY = Decimal(100)


@dataclass(frozen=True)
class RecorderRef:
    recorder_id: int
    user_id: int
    name: str
    enabled: bool
    # The most contracts one signal may carry; entries written before it existed read as 100.
    max_qty: Decimal = DEFAULT_MAX_QTY

    @classmethod
    def of(cls, recorder: Recorder) -> RecorderRef:
        max_qty = DEFAULT_MAX_QTY if recorder.max_qty is None else Decimal(recorder.max_qty)
        return cls(recorder.id, recorder.user_id, recorder.name, recorder.enabled, max_qty)

    def to_json(self) -> str:
        # One spelling per value (100, not 100.000000): the gateway compares entries as text.
        return json.dumps({**self.__dict__, "max_qty": f"{self.max_qty.normalize():f}"})

    @classmethod
    def from_json(cls, text: str) -> RecorderRef:
        data = json.loads(text)
        data["max_qty"] = Decimal(str(data.get("max_qty", DEFAULT_MAX_QTY)))
        return cls(**data)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def put(client: redis.Redis, prefix: str, recorder: Recorder, old_token: str | None = None) -> None:
    pipe = client.pipeline()
    if old_token and old_token != recorder.webhook_token:
        pipe.hdel(prefix + TOKENS_KEY, token_digest(old_token))
    pipe.hset(
        prefix + TOKENS_KEY,
        token_digest(recorder.webhook_token),
        RecorderRef.of(recorder).to_json(),
    )
    pipe.execute()


def remove(client: redis.Redis, prefix: str, token: str) -> None:
    client.hdel(prefix + TOKENS_KEY, token_digest(token))


def lookup(client: redis.Redis, prefix: str, token: str) -> RecorderRef | None:
    value = client.hget(prefix + TOKENS_KEY, token_digest(token))
    if value is None:
        return None
    return RecorderRef.from_json(value.decode() if isinstance(value, bytes) else value)


def is_synced(client: redis.Redis, prefix: str) -> bool:
    return bool(client.exists(prefix + SYNCED_KEY))


def token_map(session: Session) -> dict[str, RecorderRef]:
    """The whole map as PostgreSQL has it: sha256(token) → recorder."""
    return {
        token_digest(r.webhook_token): RecorderRef.of(r) for r in session.scalars(select(Recorder))
    }


def sync_all(client: redis.Redis, prefix: str, session: Session) -> int:
    """Bring the map in line with PostgreSQL; returns how many recorders there are.

    Tokens are overwritten, not cleared first, so an entry the UI writes meanwhile survives;
    only tokens present before PostgreSQL was read and absent from it are removed.
    """
    before = set(client.hkeys(prefix + TOKENS_KEY))
    mapping = {digest: ref.to_json() for digest, ref in token_map(session).items()}
    stale = {t.decode() if isinstance(t, bytes) else t for t in before} - mapping.keys()
    pipe = client.pipeline(transaction=True)
    if mapping:
        streams.set_hash(pipe, prefix + TOKENS_KEY, mapping)
    if stale:
        pipe.hdel(prefix + TOKENS_KEY, *stale)
    pipe.set(prefix + SYNCED_KEY, "1")
    pipe.execute()
    return len(mapping)
