"""The webhook token → recorder map the gateway reads from Redis instead of PostgreSQL.

The UI writes an entry whenever a recorder is created, changed or deleted; the gateway rebuilds
the whole map from PostgreSQL at start-up and whenever the map's marker key is missing (Redis
restarted without its data), off the request path. Entries are keyed by the token's SHA-256, so
the tokens themselves never sit in Redis.

Each entry is written twice: in the whole map (`jt:recorder_tokens`, which the gateway looks
tokens up in) and in its recorder's engine partition's map (`jt:{pK}:recorder_tokens`), which
the gateway's store script checks beside that partition's signals stream: on a Redis Cluster a
script's keys must share one slot. With one partition on a plain Redis both are the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

import redis
from redis.client import Pipeline
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common import streams
from libs.common.config import Settings
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


def partition_map_key(settings: Settings, partition: int) -> str:
    """The map of one engine partition's recorders (the whole map's key with one partition on a
    plain Redis)."""
    return settings.partition_key(TOKENS_KEY, partition)


def _map_keys(settings: Settings) -> list[str]:
    """The whole map's key, then each partition's that differs from it."""
    whole = settings.stream(TOKENS_KEY)
    parts = [partition_map_key(settings, k) for k in range(settings.engine_partitions)]
    return [whole, *(key for key in parts if key != whole)]


def put(
    client: redis.Redis, settings: Settings, recorder: Recorder, old_token: str | None = None
) -> None:
    """Write the recorder's entry (and drop its previous token's) in the whole map and its
    partition's."""
    keys = dict.fromkeys(
        [
            settings.stream(TOKENS_KEY),
            partition_map_key(settings, settings.partition_of(recorder.id)),
        ]
    )
    entry = RecorderRef.of(recorder).to_json()
    # A transaction must stay in one slot on a cluster: there each key is written on its own.
    pipe = client.pipeline(transaction=not settings.redis_cluster)
    for key in keys:
        if old_token and old_token != recorder.webhook_token:
            pipe.hdel(key, token_digest(old_token))
        pipe.hset(key, token_digest(recorder.webhook_token), entry)
    pipe.execute()


def remove(client: redis.Redis, settings: Settings, token: str) -> None:
    """Drop the token from the whole map and every partition's."""
    pipe = client.pipeline(transaction=not settings.redis_cluster)
    for key in _map_keys(settings):
        pipe.hdel(key, token_digest(token))
    pipe.execute()


def lookup(client: redis.Redis, settings: Settings, token: str) -> RecorderRef | None:
    value = client.hget(settings.stream(TOKENS_KEY), token_digest(token))
    if value is None:
        return None
    return RecorderRef.from_json(value.decode() if isinstance(value, bytes) else value)


def is_synced(client: redis.Redis, settings: Settings) -> bool:
    return bool(client.exists(settings.stream(SYNCED_KEY)))


def token_map(session: Session) -> dict[str, RecorderRef]:
    """The whole map as PostgreSQL has it: sha256(token) → recorder."""
    return {
        token_digest(r.webhook_token): RecorderRef.of(r) for r in session.scalars(select(Recorder))
    }


def sync_all(client: redis.Redis, settings: Settings, session: Session) -> int:
    """Bring the whole map and each partition's in line with PostgreSQL; returns how many
    recorders there are.

    Tokens are overwritten, not cleared first, so an entry the UI writes meanwhile survives;
    only tokens present before PostgreSQL was read and absent from it are removed. On a plain
    Redis every map changes in one transaction; on a cluster each map in its own (its slot's).
    """
    keys = _map_keys(settings)
    before = {key: set(map(_text, client.hkeys(key))) for key in keys}
    refs = token_map(session)
    wanted: dict[str, dict[str, str]] = {key: {} for key in keys}
    whole = settings.stream(TOKENS_KEY)
    for digest, ref in refs.items():
        entry = ref.to_json()
        wanted[whole][digest] = entry
        wanted[partition_map_key(settings, settings.partition_of(ref.recorder_id))][digest] = entry

    def write(pipe: Pipeline, key: str) -> None:
        if wanted[key]:
            streams.set_hash(pipe, key, wanted[key])
        if stale := before[key] - wanted[key].keys():
            pipe.hdel(key, *stale)

    synced = settings.stream(SYNCED_KEY)
    if settings.redis_cluster:
        for key in keys:
            pipe = client.pipeline(transaction=True)
            write(pipe, key)
            pipe.execute()
        client.set(synced, "1")  # last: the maps are whole once it is there
    else:
        pipe = client.pipeline(transaction=True)
        for key in keys:
            write(pipe, key)
        pipe.set(synced, "1")
        pipe.execute()
    return len(refs)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
