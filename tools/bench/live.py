"""Event → browser: events published on `jt:events` at a steady rate, timed until a Socket.IO
client logged in to a real `justtrades ui` process (gunicorn, the relay's consumer group, the Redis
message queue) receives them. The publisher stamps each event with its wall-clock time; the client
runs in this process, on the same clock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
import socketio

from libs.common import streams
from libs.common.events import BENCH_PING
from libs.common.storage.embedded import free_port
from services.ui import live
from tools.bench.table import Spread

if TYPE_CHECKING:
    from tools.bench.core import Bench

LOSS_WAIT_S = 5.0  # how long after the last event an event still counts as late rather than lost


class LiveBench:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.settings = bench.settings

    def _ui(self, port: int) -> subprocess.Popen[bytes]:
        s = self.settings
        env = dict(
            os.environ,
            DATABASE_URL=s.database_url,
            REDIS_URL=s.redis_url,
            UI_PORT=str(port),
            JT_STREAM_PREFIX=s.stream_prefix,
            LOG_LEVEL="WARNING",
            JT_VAR_DIR=str(s.var_dir),
            SECRET_KEY=s.secret_key,
            ENCRYPTION_KEY=s.encryption_key,
        )
        return subprocess.Popen(
            [sys.executable, "-m", "services.ui"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _browser(
        self, base: str, email: str, password: str, on_event: Callable[[dict[str, Any]], None]
    ) -> socketio.Client:
        http = requests.Session()
        answer = http.post(f"{base}/login", json={"email": email, "password": password}, timeout=10)
        answer.raise_for_status()
        client = socketio.Client(reconnection=False)
        client.on(live.SOCKET_EVENT, on_event)
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        client.connect(base, transports=["websocket"], headers={"Cookie": cookie}, wait_timeout=10)
        return client

    def _wait_subscribed(self) -> None:
        """The UI's message-queue listener subscribes when the first socket connects."""
        channel = self.settings.stream(live.CHANNEL)
        deadline = time.monotonic() + 10
        while not dict(self.bench.redis.pubsub_numsub(channel)).get(channel):
            if time.monotonic() > deadline:
                raise RuntimeError("the UI's message queue listener did not subscribe")
            time.sleep(0.05)

    def event_to_browser(self, per_s: int = 200) -> None:
        bench = self.bench
        user_id, email, password = bench.bench_login()
        port = free_port()
        ui = self._ui(port)
        base = f"http://127.0.0.1:{port}"
        arrived: dict[int, float] = {}
        changed = threading.Condition()
        sent = 0  # events published so far, over every round

        def on_event(message: dict[str, Any]) -> None:
            data = message.get("data") or {}
            if message.get("type") == BENCH_PING and "seq" in data:
                with changed:
                    arrived[data["seq"]] = (time.time() - data["sent_at"]) * 1000
                    changed.notify_all()

        def measure(count: int) -> list[float]:
            """`count` events at `per_s`; the latencies of those that arrived."""
            nonlocal sent
            first, started = sent, time.monotonic()
            for i in range(count):
                time.sleep(max(0.0, started + i / per_s - time.monotonic()))
                streams.publish_event(
                    bench.redis,
                    stream,
                    BENCH_PING,
                    {"user_id": user_id, "seq": sent, "sent_at": time.time()},
                )
                sent += 1
            rates.append(count / (time.monotonic() - started))
            counts.append(count)
            seqs = range(first, sent)
            with changed:
                changed.wait_for(lambda: all(s in arrived for s in seqs), LOSS_WAIT_S)
                lat = [arrived[s] for s in seqs if s in arrived]
            if not lat:
                raise RuntimeError("no event reached the Socket.IO client")
            return lat

        client = None
        rates: list[float] = []
        counts: list[int] = []
        stream = self.settings.stream(streams.EVENTS)
        try:
            bench.wait_http(f"{base}/healthz")
            client = self._browser(base, email, password, on_event)
            self._wait_subscribed()
            events = bench.rounds(measure, 1_500)
        finally:
            if client is not None:
                client.disconnect()
            ui.terminate()
            try:
                ui.wait(10)
            except subprocess.TimeoutExpired:
                ui.kill()
        counted = sum(counts[1:])  # the warm-up round's are not counted
        bench.add_latency(
            f"Event on jt:events -> Socket.IO client, p50 / p99, {per_s} events/s",
            events,
            100,
            f"{events.samples} of {counted} arrived at {Spread.of(rates[1:]).median:,.0f}/s; UI "
            "process (gunicorn, relay, Redis queue) and client on the same cores",
        )
