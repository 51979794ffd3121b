"""The faults a chaos run injects: kill -9 of each service at a moment that hurts, and crashes
of Redis and PostgreSQL. Each returns a line saying what it did."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from tools.chaos.cluster import Cluster

IN_FLIGHT_WAIT_S = 15.0  # how long to wait for an order to be in flight before killing anyway
ANSWER_DELAY_S = 2.0  # the broker holds its answer this long, so the kill lands before it


def kill_engine(cluster: Cluster, rng: random.Random) -> str:
    # Ticks arrive in bursts every 20 ms, so the engine is almost always inside a batch.
    name = rng.choice(cluster.engines)
    others = [e for e in cluster.engines if e != name]
    # The others leading (not standing by after a PostgreSQL crash), so that what they read
    # while this one is down says whether a partition goes on without it.
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while not all(cluster.leading(e) for e in others) and time.monotonic() < deadline:
        time.sleep(0.1)
    before = {e: cluster.ticks_read(e) for e in others}
    cluster.kill(name, down_for_s=rng.uniform(0.5, 1.5))
    # The other partitions' engines went on reading the tick flow while this one was down.
    went_on = {e: cluster.ticks_read(e) - n for e, n in before.items()}
    for other, read in went_on.items():
        if read <= 0:
            cluster.stalled_partitions.append(f"{other} read no tick while {name} was down")
    if not others:
        return "kill -9 engine (mid-batch under the tick flow)"
    return (
        f"kill -9 {name} (mid-batch under the tick flow; meanwhile "
        + ", ".join(f"{e} read {n} ticks" for e, n in went_on.items())
        + ")"
    )


def kill_executor_mid_send(cluster: Cluster, rng: random.Random) -> str:
    """The worst moment: the broker has the order but the executor never hears its answer."""
    broker = cluster.broker
    with broker.lock:
        before = len(broker.book.commands)
    broker.delay_next(ANSWER_DELAY_S)
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while time.monotonic() < deadline:
        with broker.lock:
            if len(broker.book.commands) > before:
                break
        time.sleep(0.005)
    else:
        cluster.kill("executor", down_for_s=rng.uniform(0.2, 1.0))
        return "kill -9 executor (no order was in flight)"
    cluster.kill("executor", down_for_s=rng.uniform(0.2, 1.0))
    return "kill -9 executor mid-send (order placed at the broker, answer not yet received)"


def _kill(name: str, what: str) -> Callable[[Cluster, random.Random], str]:
    def fault(cluster: Cluster, rng: random.Random) -> str:
        cluster.kill(name, down_for_s=rng.uniform(0.2, 1.0))
        return f"kill -9 {name}{what}"

    return fault


# Four senders post continuously, so some request is nearly always being handled.
kill_gateway = _kill("gateway", " (mid-request under the webhook flow)")
kill_ui = _kill("ui", " (its live relay mid-read)")
kill_price_feed = _kill("price-feed", "")


def crash_redis(cluster: Cluster, rng: random.Random) -> str:
    down = rng.uniform(1.0, 3.0)
    cluster.crash_redis(down)
    return f"kill -9 redis-server, restarted from its AOF after {down:.1f}s"


def crash_postgres(cluster: Cluster, rng: random.Random) -> str:
    down = rng.uniform(1.0, 3.0)
    cluster.crash_postgres(down)
    return f"PostgreSQL immediate shutdown (a crash), restarted after {down:.1f}s"


FAULTS: dict[str, Callable[[Cluster, random.Random], str]] = {
    "engine": kill_engine,
    "executor": kill_executor_mid_send,
    "gateway": kill_gateway,
    "ui": kill_ui,
    "price-feed": kill_price_feed,
    "redis": crash_redis,
    "postgres": crash_postgres,
}


def schedule(count: int, rng: random.Random) -> list[str]:
    """`count` faults: every kind once per round, each round in a random order."""
    plan: list[str] = []
    while len(plan) < count:
        round_ = list(FAULTS)
        rng.shuffle(round_)
        plan += round_
    return plan[:count]
