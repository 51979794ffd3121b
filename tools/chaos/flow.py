"""The steady traffic of a chaos run: TradingView-style webhooks from a few threads and bursts of
ticks straight onto the tick stream, with every webhook's answer written down."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import redis
import requests

from libs.common import streams
from libs.common.futures.instruments import contract_spec
from simulators.tradovate.broker import BrokerSimulator

START_PRICES = {
    "MNQ": Decimal("21000"),
    "MES": Decimal("6000"),
    "NQ": Decimal("21000"),
    "ES": Decimal("6000"),
}
TICK_EVERY_S = 0.02
TICKS_PER_ROOT = 20  # per burst: 4 roots × 20 × 50 bursts/s ≈ 4,000 ticks/s
HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Target:
    """A recorder the flow sends to, and the root it trades."""

    recorder_id: int
    webhook_url: str
    root: str


class Prices:
    """A random walk per root on its tick grid, shared by the tick and the signal flows."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._prices = dict(START_PRICES)
        self._lock = threading.Lock()

    def step(self, root: str) -> Decimal:
        with self._lock:
            tick = contract_spec(root).tick_size
            self._prices[root] += tick * self._rng.randint(-2, 2)
            return self._prices[root]

    def now(self, root: str) -> Decimal:
        with self._lock:
            return self._prices[root]


@dataclass
class Answers:
    """What each webhook got back: 202 with a signal id, another status, or nothing at all."""

    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)  # status code → count
    unanswered: int = 0  # connection refused or cut: the gateway was down or died mid-request

    def record(self, response: requests.Response | None) -> None:
        if response is None:
            self.unanswered += 1
        elif response.status_code == 202:
            self.accepted.append(response.json()["signal_id"])
        else:
            self.refused[response.status_code] += 1


class SignalFlow:
    """`rate` webhooks a second in all, from `threads` senders, to random targets."""

    def __init__(
        self, targets: list[Target], prices: Prices, rate: float, seed: int, threads: int = 4
    ):
        self.targets = targets
        self.prices = prices
        self.rate = rate
        self.threads = threads
        self.seed = seed
        self.answers = Answers()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            worker = threading.Thread(
                target=self._send_loop,
                args=(random.Random(self.seed + n),),
                name=f"chaos-webhooks-{n}",
                daemon=True,
            )
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(HTTP_TIMEOUT_S + 5)

    def _send_loop(self, rng: random.Random) -> None:
        pause = self.threads / self.rate
        with requests.Session() as http:
            while not self._stop.wait(pause * rng.uniform(0.5, 1.5)):
                target = rng.choice(self.targets)
                body = {
                    "action": rng.choices(("buy", "sell", "close"), (45, 45, 10))[0],
                    "ticker": f"{target.root}1!",
                    "price": str(self.prices.now(target.root)),
                    "qty": rng.randint(1, 3),
                }
                try:
                    response = http.post(target.webhook_url, json=body, timeout=HTTP_TIMEOUT_S)
                except requests.RequestException:
                    response = None
                self.answers.record(response)


class TickFlow:
    """Bursts of ticks on the tick stream; the broker simulator's prices follow the same walk so
    its market orders fill near the signals' prices. Ticks written while Redis is down are lost,
    as a live feed's would be."""

    def __init__(
        self,
        client: redis.Redis,
        stream_keys: list[str],
        prices: Prices,
        broker: BrokerSimulator,
        contracts: dict[str, str],
    ):
        self.client = client
        self.streams = stream_keys  # every engine partition's ticks stream gets every tick
        self.prices = prices
        self.broker = broker
        self.contracts = contracts  # root → front contract at the broker
        self.written = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-ticks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(TICK_EVERY_S):
            pipe = self.client.pipeline(transaction=False)
            now_ms = time.time_ns() // 1_000_000
            count = 0
            for root in START_PRICES:
                for _ in range(TICKS_PER_ROOT):
                    tick = streams.TickMessage(root, self.prices.step(root), now_ms, "chaos")
                    for key in self.streams:
                        streams.add(pipe, key, tick.to_fields())
                    count += 1
                self.broker.set_price(self.contracts[root], self.prices.now(root))
            try:
                pipe.execute()
                self.written += count
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                self.dropped += count
                self._stop.wait(0.2)
