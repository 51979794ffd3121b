"""The system a chaos run breaks: its own PostgreSQL and Redis (so they can be crashed), a
Tradovate simulator in this process, and every service as a child process that a supervisor
thread restarts when it dies, as `justtrades run` does."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from libs.common.config import PROJECT_ROOT
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.rolls import front_contract
from libs.common.storage import db
from libs.common.storage.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    embedded_passwords,
    free_port,
    free_ports,
)
from simulators.tradovate.account_socket import AccountSocketServer
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue
from tools.supervisor import SERVICES  # the same children `justtrades run` starts

log = logging.getLogger("chaos")

HEALTH_PATHS = {"gateway": "/healthz", "engine": "/healthz", "ui": "/healthz"}
# ENGINE_PARTITIONS > 1: one engine process per partition, "engine-0", "engine-1", …
PORT_VARS = {
    "gateway": "GATEWAY_PORT",
    "engine": "ENGINE_PORT",
    "ui": "UI_PORT",
    "price-feed": "PRICE_FEED_PORT",
    "executor": "EXECUTOR_METRICS_PORT",
}
BROKER_USER, BROKER_PASSWORD = "chaos", "chaos-broker-password"
APP_ID, CID, SEC = "JustTrades", 1234, "sim-api-secret"
START_TIMEOUT_S = 60.0
RESTART_AFTER_S = 0.3  # the supervisor's pause before it starts a dead child again


class ClusterError(RuntimeError):
    """The cluster could not be brought up (a service never became healthy, a server failed)."""


@dataclass
class Cluster:
    root: Path
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    broker: BrokerSimulator
    account_socket: AccountSocketServer
    env: dict[str, str]
    ports: dict[str, int]
    # name → (module, environment on top of `env`): SERVICES, with one engine per partition.
    services: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # Kills of one partition's engine during which another partition's engine read nothing.
    stalled_partitions: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    _held: set[str] = field(default_factory=set)  # services the fault injector keeps down
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- bring-up ----------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, partitions: int = 1) -> Cluster:
        root.mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        # Passwords as `make run` has them (kept beside the data, for looking into a failed run).
        passwords = embedded_passwords(root)
        postgres = EmbeddedPostgres(root / "postgres", free_port(), passwords.postgres)
        # The same AOF policy as `make run` (everysec): a killed redis-server loses nothing it
        # answered, because Redis writes the AOF before it replies; only the fsync is deferred.
        redis_server = EmbeddedRedis(root / "redis", free_port(), passwords.redis)
        postgres.start()
        redis_server.start()
        db.upgrade(postgres.url)
        broker = BrokerSimulator(
            ContractCatalogue.standard(datetime.now(UTC).date()),
            users={BROKER_USER: BROKER_PASSWORD},
            environment="demo",
            app_id=APP_ID,
            cid=CID,
            sec=SEC,
        ).start()
        account_socket = AccountSocketServer(broker).start()  # fills and positions, live
        ports = {name: free_port() for name in SERVICES}
        ports["engine"] = free_ports(partitions)  # partition K's engine listens on ENGINE_PORT + K
        env = dict(os.environ)
        env.update(
            DATABASE_URL=postgres.url,
            REDIS_URL=redis_server.url,
            SECRET_KEY=secrets.token_urlsafe(48),
            ENCRYPTION_KEY=Fernet.generate_key().decode(),
            JT_VAR_DIR=str(root / "var"),
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            PUBLIC_URL=f"http://127.0.0.1:{ports['gateway']}",
            WEBHOOK_IP_ALLOWLIST="",
            WEBHOOK_RATE_LIMIT="100000",
            PRICE_SOURCE="sim",
            SIM_INTERVAL_S="0.2",
            TRADOVATE_DEMO_URL=broker.url,
            TRADOVATE_LIVE_URL=broker.url,
            TRADOVATE_DEMO_WS_URL=account_socket.url,
            TRADOVATE_LIVE_WS_URL=account_socket.url,
            TRADOVATE_RATE_LIMIT_PER_MIN="6000",
            EXECUTOR_WORKERS="1",
            TRADOVATE_MD_URL="ws://127.0.0.1:9",
            TRADOVATE_OAUTH_URL="http://127.0.0.1:9",
            TRADINGVIEW_URL="http://127.0.0.1:9",
            TRADINGVIEW_SCANNER_URL="http://127.0.0.1:9",
            TRADINGVIEW_WS_URL="ws://127.0.0.1:9",  # loopback only: nothing leaves the machine
            **{PORT_VARS[name]: str(port) for name, port in ports.items()},
            # Its own, so a chaos run beside a running installation takes no port of it.
            GATEWAY_METRICS_PORT=str(free_port()),
            ENGINE_PARTITIONS=str(partitions),
        )
        services: dict[str, tuple[str, dict[str, str]]] = {
            name: (module, {}) for name, module in SERVICES.items() if name != "engine"
        }
        if partitions == 1:
            services["engine"] = (SERVICES["engine"], {})
        else:
            for k in range(partitions):
                services[f"engine-{k}"] = (SERVICES["engine"], {"ENGINE_PARTITION": str(k)})
                ports[f"engine-{k}"] = ports["engine"] + k
        cluster = cls(root, postgres, redis_server, broker, account_socket, env, ports, services)
        for name in services:
            cluster._spawn(name)
        cluster.wait_healthy()
        threading.Thread(target=cluster._supervise, name="chaos-supervisor", daemon=True).start()
        return cluster

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def engines(self) -> list[str]:
        """The engine processes' names: "engine", or one "engine-K" per partition."""
        return [name for name in self.services if name.partition("-")[0] == "engine"]

    def front_contract(self, root: str) -> str:
        return front_contract(root, trade_date(datetime.now(UTC)))

    def _spawn(self, name: str) -> None:
        logs = self.root / "logs"
        module, extra = self.services[name]
        with (logs / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=PROJECT_ROOT,
                env={**self.env, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        for name in self.services:
            while name not in self._held and not self._healthy(name):
                process = self.processes[name]
                if process.poll() is not None:
                    self._spawn(name)  # e.g. started while PostgreSQL was still recovering
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"{name} did not become healthy in {timeout:.0f}s; "
                        f"see {self.root / 'logs' / (name + '.log')}"
                    )
                time.sleep(0.2)

    def leading(self, engine: str) -> bool:
        """Whether an engine process holds its partition's lead (its /healthz answers 200)."""
        return self._healthy(engine)

    def ticks_read(self, engine: str) -> int:
        """How many ticks an engine process has read since it started (its /status)."""
        try:
            return int(requests.get(self.url(engine) + "/status", timeout=2).json()["ticks"])
        except (requests.RequestException, ValueError, KeyError):
            return 0

    def _healthy(self, name: str) -> bool:
        if self.processes[name].poll() is not None:
            return False
        path = HEALTH_PATHS.get("engine" if name in self.engines else name)
        if path is None:
            return True
        try:
            return requests.get(self.url(name) + path, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    # --- the supervisor ------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.wait(RESTART_AFTER_S):
            with self._lock:
                for name, process in self.processes.items():
                    if process.poll() is not None and name not in self._held:
                        self.restarts[name] = self.restarts.get(name, 0) + 1
                        self._spawn(name)

    # --- faults --------------------------------------------------------------------------------

    def kill(self, name: str, down_for_s: float = 0.0) -> None:
        """SIGKILL a service; the supervisor starts it again after `down_for_s` (and its pause)."""
        with self._lock:
            self._held.add(name)
            process = self.processes[name]
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        time.sleep(down_for_s)
        with self._lock:
            self._held.discard(name)

    def stop_service(self, name: str) -> None:
        """SIGTERM a service and keep it down (the price feed: no tick arrives while checking)."""
        with self._lock:
            self._held.add(name)
            process = self.processes[name]
            process.terminate()
            process.wait(15)

    def crash_redis(self, down_for_s: float) -> None:
        self.redis.kill()
        time.sleep(down_for_s)
        self.redis.start()

    def crash_postgres(self, down_for_s: float) -> None:
        self.postgres.stop(mode="immediate")
        time.sleep(down_for_s)
        self.postgres.start()

    # --- tear-down -----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for process in self.processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in self.processes.values():
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.account_socket.stop()
        self.broker.stop()
        self.redis.stop()
        self.postgres.stop()
