"""How many engine partitions this installation runs, as Redis records it, and the one safe way to
change it (docs/operations.md "Partitions").

A recorder's signals, commands and position belong to partition `recorder_id mod N`. Changing N
moves a recorder to another partition, so signals still waiting in the old one would be applied
by an engine that no longer owns the recorder, or never. Redis therefore records N under
`jt:engine_partitions`: every service that writes or reads partitioned keys refuses to start when
its ENGINE_PARTITIONS differs, and `justtrades partitions --set N` changes it only once every
partition has applied everything it was sent and no engine is running.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import redis
from sqlalchemy import Engine

from libs.common import streams
from libs.common.config import MAX_ENGINE_PARTITIONS as MAX_PARTITIONS
from libs.common.config import Settings
from libs.common.storage import db

KEY = "engine_partitions"  # jt:engine_partitions → N
# Keys that must be drained (nothing unread, nothing read but unacknowledged) before N changes.
DRAINED = (streams.SIGNALS, streams.ENGINE_COMMANDS)
# Per-partition keys a change of N leaves behind: ticks are transient (a stale tick applied by a
# new partition's engine would be a wrong price); the rest is rebuilt by each engine at start.
TRANSIENT = (
    streams.TICKS,
    streams.OPEN_SYMBOLS,
    streams.ENGINE_COMMANDS_READER,
    streams.SIGNALS,
    streams.ENGINE_COMMANDS,
)
LAST_PRICES = "engine_last_price"


class PartitionMismatch(RuntimeError):
    """ENGINE_PARTITIONS differs from what the installation's Redis runs."""


def _how_to_change(n: int) -> str:
    return (
        "Changing it moves nothing by itself: stop the gateway, let the engines apply what is "
        "waiting (`justtrades partitions` shows it), stop every service, then run "
        f"`justtrades partitions --set {n}` and start again with ENGINE_PARTITIONS={n} "
        '(docs/operations.md "Partitions").'
    )


def recorded(client: redis.Redis, settings: Settings) -> int | None:
    value = client.get(settings.stream(KEY))
    return None if value is None else int(value)


def check(client: redis.Redis, settings: Settings) -> None:
    """Record ENGINE_PARTITIONS on first use; raise PartitionMismatch when Redis holds another
    count, or when a one-partition installation's `jt:signals` still has signals to apply."""
    n = settings.engine_partitions
    held = recorded(client, settings)
    if held is None:
        legacy = replace(settings, engine_partitions=1)
        if n != 1 and (waiting := unapplied(client, legacy)):
            raise PartitionMismatch(
                f"ENGINE_PARTITIONS={n}, but {_describe(waiting)} of the one-partition layout "
                f"{'are' if len(waiting) > 1 else 'is'} not applied yet. " + _how_to_change(n)
            )
        client.set(settings.stream(KEY), n, nx=True)
        held = recorded(client, settings)
    if held != n:
        raise PartitionMismatch(
            f"ENGINE_PARTITIONS={n}, but this installation's Redis runs {held} engine "
            f"partition(s) ({settings.stream(KEY)}). " + _how_to_change(n)
        )


@dataclass(frozen=True)
class StreamState:
    key: str
    unread: int  # entries the engine's group has not read yet
    pending: int  # read, not acknowledged

    @property
    def waiting(self) -> int:
        return self.unread + self.pending


def stream_state(client: redis.Redis, key: str) -> StreamState | None:
    """The engine group's backlog on `key`; None when the stream or the group does not exist
    (nothing written, or never read: then every entry is unread)."""
    try:
        groups = client.xinfo_groups(key)
    except redis.ResponseError:  # no such stream
        return None
    group = next((g for g in groups if g["name"] == streams.ENGINE_GROUP), None)
    if group is None:
        length = client.xlen(key)
        return StreamState(key, length, 0) if length else None
    unread = group.get("lag")
    if unread is None:  # Redis < 7: count what follows the last delivered entry
        after = "(" + str(group["last-delivered-id"])
        unread = len(client.xrange(key, min=after, max="+") or [])
    return StreamState(key, int(unread), int(group["pending"]))


def partition_states(client: redis.Redis, settings: Settings) -> list[list[StreamState]]:
    """Per partition (of `settings.engine_partitions`), the state of its signals, commands and
    ticks streams."""
    return [
        [
            state
            for name in (*DRAINED, streams.TICKS)
            if (state := stream_state(client, settings.partition_key(name, k))) is not None
        ]
        for k in range(settings.engine_partitions)
    ]


def unapplied(client: redis.Redis, settings: Settings) -> list[StreamState]:
    """Signals and engine commands of the partitions in `settings` not applied yet."""
    return [
        state
        for k in range(settings.engine_partitions)
        for name in DRAINED
        if (state := stream_state(client, settings.partition_key(name, k))) is not None
        and state.waiting
    ]


def _describe(states: list[StreamState]) -> str:
    return ", ".join(f"{s.waiting} entries on {s.key}" for s in states)


def engines_running(sql: Engine) -> list[int]:
    """The partitions whose engine holds its leader lock now."""
    with sql.connect() as conn:
        return sorted(db.engine_leaders_held(conn, MAX_PARTITIONS))


def change(client: redis.Redis, settings: Settings, sql: Engine, n: int) -> list[str]:
    """Switch the installation to `n` partitions: refused (PartitionMismatch) while an engine
    runs or anything sent to the current partitions is unapplied. The engines' last prices are
    carried over; the old layout's transient keys and every ticks stream are removed. Returns
    what was done, a line each."""
    if not 1 <= n <= MAX_PARTITIONS:
        raise PartitionMismatch(f"the partition count must be from 1 to {MAX_PARTITIONS}, not {n}")
    old = replace(settings, engine_partitions=recorded(client, settings) or 1)
    new = replace(settings, engine_partitions=n)
    if running := engines_running(sql):
        raise PartitionMismatch(
            "stop every engine first: the engine of partition "
            + ", ".join(str(k) for k in running)
            + " is running"
        )
    if waiting := unapplied(client, old):
        raise PartitionMismatch(
            f"not changed: {_describe(waiting)} still wait to be applied. Start the engines "
            "(with the current ENGINE_PARTITIONS) until `justtrades partitions` shows nothing "
            "waiting, stop them, then run this again."
        )
    done: list[str] = []
    prices: dict[str, str] = {}
    for key in old.all_partition_keys(LAST_PRICES):
        prices.update(cast(dict[str, str], client.hgetall(key)))
    new_keys = {name: set(new.all_partition_keys(name)) for name in TRANSIENT}
    for name in TRANSIENT:
        for key in old.all_partition_keys(name):
            if name == streams.TICKS or key not in new_keys[name]:
                done += [f"removed {key}"] if client.delete(key) else []
    for key in new.all_partition_keys(streams.TICKS):
        done += [f"removed {key}"] if client.delete(key) else []
    for key in new.all_partition_keys(LAST_PRICES):
        if prices:
            streams.set_hash(client, key, prices)
    client.set(settings.stream(KEY), n)
    done.append(f"{settings.stream(KEY)} = {n} (was {old.engine_partitions})")
    return done
