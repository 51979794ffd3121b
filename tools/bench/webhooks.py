"""The webhook rows: the real gateway and the bare Flask+XADD reference, both served by gunicorn
as the gateway is and measured in interleaved rounds (reference, gateway, reference, ...), one
client at a time and 16 concurrent, so that drift in the machine's load weighs on both alike."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from libs.common.storage.embedded import free_port
from libs.common.storage.models import Recorder
from tools.bench.processes import stop_process
from tools.bench.table import ROUNDS, Figure, Rounds, Spread, pct

if TYPE_CHECKING:
    from tools.bench.core import Bench

CONCURRENT = 16
GATEWAY_SHARE_GOAL = 0.9  # of the reference's throughput at 16 concurrent
BODY = json.dumps({"action": "buy", "ticker": "MNQ1!", "price": 25640.25}).encode()


@dataclass(frozen=True)
class Burst:
    """One round of concurrent posts: the rate, each post's latency, and the CPU the client
    threads took (share of one core)."""

    rate: float
    latencies: list[float]
    client_cpu: float


class Poster:
    """An HTTP client as lean as the standard library allows, a kept-alive connection per thread:
    every cycle it spends is taken from the server it times on these cores."""

    def __init__(self, name: str, port: int, path: str):
        self.name, self.port, self.path = name, port, path
        self._local = threading.local()

    def post(self, _: int = 0) -> float:
        if not hasattr(self._local, "conn"):
            self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        t = time.perf_counter()
        self._local.conn.request("POST", self.path, BODY)
        answer = self._local.conn.getresponse()
        text = answer.read()
        if answer.status != 202:
            raise RuntimeError(f"{self.name} answered {answer.status}: {text[:200]!r}")
        return (time.perf_counter() - t) * 1000

    def one_at_a_time(self, count: int) -> list[float]:
        return [self.post() for _ in range(count)]

    def concurrent(self, pool: ThreadPoolExecutor, count: int) -> Burst:
        start, cpu = time.perf_counter(), time.process_time()
        latencies = list(pool.map(self.post, range(count)))
        took = time.perf_counter() - start
        return Burst(count / took, latencies, (time.process_time() - cpu) / took)


class WebhookBench:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.settings = bench.settings

    @contextmanager
    def _served(self, module: str) -> Iterator[int]:
        """`python -m <module>` on a free port with the bench's settings; yields the port."""
        port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=self.settings.database_url,
            REDIS_URL=self.settings.redis_url,
            JT_STREAM_PREFIX=self.settings.stream_prefix,
            GATEWAY_PORT=str(port),
            GATEWAY_METRICS_PORT=str(free_port()),  # beside, not on, a running installation's
            WEBHOOK_RATE_LIMIT="1000000",
            LOG_LEVEL="WARNING",
            JT_VAR_DIR=str(self.settings.var_dir),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self.bench.wait_http(f"http://127.0.0.1:{port}/healthz")
            yield port
        finally:
            stop_process(proc)

    def run(self, recorder: Recorder) -> None:
        path = f"/webhook/{recorder.webhook_token}"
        with (
            self._served("tools.bench.reference") as reference_port,
            self._served("services.gateway") as gateway_port,
        ):
            reference = Poster("the reference", reference_port, path)
            gateway = Poster("the gateway", gateway_port, path)
            self._one_at_a_time(reference, gateway)
            self._concurrent(reference, gateway)

    def _one_at_a_time(self, reference: Poster, gateway: Poster) -> None:
        bench = self.bench
        load, count = os.getloadavg()[0], bench.n(2_000)
        for poster in (reference, gateway):
            poster.one_at_a_time(max(10, count // 4))  # warm-up, not counted
        rounds: dict[str, list[list[float]]] = {reference.name: [], gateway.name: []}
        bench.other_work.since_last()
        for _ in range(ROUNDS):
            for poster in (reference, gateway):
                rounds[poster.name].append(poster.one_at_a_time(count))
        others = bench.other_work.since_last()  # over both, their rounds interleaved
        ref = Rounds.of(rounds[reference.name], load, others)
        gw = Rounds.of(rounds[gateway.name], load, others)
        bench.add(
            "Reference: bare Flask view, parse JSON + XADD, one at a time, p50 / p99",
            ref.value,
            "reference",
            None,
            "served as the gateway is, same Redis; rounds interleaved with the gateway's",
            ref.numbers,
            load,
            others,
        )
        bench.add(
            "Webhook accepted, one at a time, p50 / p99",
            gw.value,
            "p99 <= 5 ms",
            gw.p99.median <= 5,
            f"p99 {gw.p99.median / max(ref.p99.median, 1e-9):.2f}x the reference's; "
            "HTTP client on the same cores",
            gw.numbers,
            load,
            others,
        )

    def _concurrent(self, reference: Poster, gateway: Poster) -> None:
        bench = self.bench
        load, count = os.getloadavg()[0], bench.n(8_000)
        bursts: dict[str, list[Burst]] = {reference.name: [], gateway.name: []}
        with ThreadPoolExecutor(CONCURRENT) as pool:
            for poster in (reference, gateway):
                poster.concurrent(pool, max(CONCURRENT * 4, count // 4))  # warm-up
            bench.other_work.since_last()
            for _ in range(ROUNDS):
                for poster in (reference, gateway):
                    bursts[poster.name].append(poster.concurrent(pool, count))
            others = bench.other_work.since_last()
        ref_rate = Spread.of([b.rate for b in bursts[reference.name]])
        gw_rate = Spread.of([b.rate for b in bursts[gateway.name]])
        share = gw_rate.median / max(ref_rate.median, 1e-9)
        ref_value, ref_numbers = _burst_row(bursts[reference.name])
        gw_value, gw_numbers = _burst_row(bursts[gateway.name])
        bench.add(
            f"Reference: bare Flask view, parse JSON + XADD, {CONCURRENT} concurrent",
            ref_value,
            "reference",
            None,
            "what the gateway's throughput is read against",
            ref_numbers,
            load,
            others,
        )
        client = Spread.of([b.client_cpu for b in bursts[gateway.name]]).median
        bench.add(
            f"Webhook accepted, {CONCURRENT} concurrent: throughput, p99",
            gw_value,
            f">= {GATEWAY_SHARE_GOAL:.0%} of the reference's throughput",
            share >= GATEWAY_SHARE_GOAL,
            f"{share:.0%} of the reference's {ref_rate.median:,.0f}/s; the {CONCURRENT} client "
            f"threads alone used {client:.0%} of a core",
            {**gw_numbers, "share_of_reference": round(share, 3)},
            load,
            others,
        )


def _burst_row(bursts: list[Burst]) -> tuple[str, dict[str, Figure]]:
    """`rate/s (lowest-highest), p99 x ms` over the rounds: the medians, the rate's spread."""
    rate = Spread.of([b.rate for b in bursts])
    p99 = Spread.of([pct(b.latencies, 99) for b in bursts])
    value = f"{rate.median:,.0f}/s ({rate.low:,.0f}-{rate.high:,.0f}), p99 {p99.median:.1f} ms"
    numbers: dict[str, Figure] = {
        "rate_per_s": round(rate.median, 1),
        "rate_low_per_s": round(rate.low, 1),
        "rate_high_per_s": round(rate.high, 1),
        "rate_rounds_per_s": [round(b.rate, 1) for b in bursts],
        "p99_ms": round(p99.median, 3),
        "p99_low_ms": round(p99.low, 3),
        "p99_high_ms": round(p99.high, 3),
        "rounds": len(bursts),
        "samples": sum(len(b.latencies) for b in bursts),
    }
    return value, numbers
