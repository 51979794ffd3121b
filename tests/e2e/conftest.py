"""End-to-end fixtures: the gateway, the position engine and the UI as real processes on free
ports, against the test PostgreSQL and Redis, with a user and an API key made by the CLI.

Each service's stdout and stderr go to files under the test's tmp_path, so a test can read
what a service logged (and a failure shows it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import PROJECT_ROOT, Settings
from libs.common.storage.embedded import free_port, free_ports
from libs.common.storage.models import OrderIntent
from libs.common.streams import TickMessage
from tests.e2e.browser_support import browser, new_page  # noqa: F401 (fixtures for the browser tests)

T = TypeVar("T")

SERVICES = {
    "gateway": "services.gateway",
    "engine": "services.position_engine",
    "ui": "services.ui",
}
# Processes without an HTTP port: started with the stack, "healthy" while they run.
WORKERS = {"executor": "services.executor"}
# Started only by the tests that need them (`stack.start(name)`), "healthy" while they run.
OPTIONAL = {"price-feed": "services.price_feed", "notifier": "services.notifier"}
START_TIMEOUT_S = 45.0  # a cold start imports Flask, SQLAlchemy and gunicorn in three processes
STOP_TIMEOUT_S = 15.0
POLL_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 5.0
PASSWORD = "correct horse battery"
FIRST_USER = "trader@example.com"


def eventually(probe: Callable[[], T], what: str, timeout: float = POLL_TIMEOUT_S) -> T:
    """Call `probe` until it returns something truthy; fail naming `what` and its last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f}s for {what}; last seen: {last!r}")
        time.sleep(0.05)


def service_env(settings: Settings, var_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        SECRET_KEY=settings.secret_key,
        ENCRYPTION_KEY=settings.encryption_key,
        JT_VAR_DIR=str(var_dir),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        # the tests use the stream names of docs/contract.md §2, as redis-cli would
        JT_STREAM_PREFIX="jt:",
        WEBHOOK_IP_ALLOWLIST="",
        # Outside services: nowhere, unless a test starts a simulator and says where it is.
        TRADINGVIEW_URL="http://127.0.0.1:9",
        TRADINGVIEW_SCANNER_URL="http://127.0.0.1:9",
        TRADINGVIEW_WS_URL="ws://127.0.0.1:9",
        TRADOVATE_LIVE_URL="http://127.0.0.1:9/v1",
        TRADOVATE_DEMO_URL="http://127.0.0.1:9/v1",
        TRADOVATE_MD_URL="ws://127.0.0.1:9",
        TRADOVATE_OAUTH_URL="http://127.0.0.1:9/oauth",
        # Notification receivers run in the tests, on loopback.
        NOTIFY_ALLOWED_HOSTS="127.0.0.1",
        **extra,
    )
    return env


def run_cli_in(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_user_with_key(env: dict[str, str], email: str) -> str:
    """`justtrades user create` then `apikey create`; the key is the last line of stdout."""
    made = run_cli_in(env, "user", "create", email, "--password", PASSWORD)
    assert made.returncode == 0, made.stderr
    keyed = run_cli_in(env, "apikey", "create", email)
    assert keyed.returncode == 0, keyed.stderr
    return keyed.stdout.strip().splitlines()[-1]


@pytest.fixture
def run_cli(settings, tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`python -m tools.cli ARGS` against the test databases; returns the finished process."""
    env = service_env(settings, tmp_path / "cli-var")
    return lambda *args: run_cli_in(env, *args)


class Api:
    """The UI's JSON API over real HTTP, as one user (Authorization: Bearer <key>)."""

    def __init__(self, base_url: str, key: str):
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(
            self.base_url + path, params=params, headers=self.headers, timeout=HTTP_TIMEOUT_S
        )

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(
            self.base_url + path, json=body, headers=self.headers, timeout=HTTP_TIMEOUT_S
        )

    def ok(self, path: str, **params: Any) -> dict:
        """GET that must answer 200 {"ok": true, ...}; returns the body."""
        response = self.get(path, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        body = response.json()
        assert body["ok"] is True, body
        return body

    def create_recorder(self, **fields: Any) -> dict:
        response = self.post("/api/recorders", fields)
        assert response.status_code == 201, response.text
        return response.json()

    def positions(self, recorder_id: int, **params: Any) -> list[dict]:
        """The recorder's positions, oldest first."""
        found = self.ok("/api/positions", recorder_id=recorder_id, **params)["positions"]
        return sorted(found, key=lambda p: p["id"])

    def settled_signal(self, signal_id: str, timeout: float = POLL_TIMEOUT_S) -> dict:
        """Poll GET /api/signals/<id> until the engine has decided; `pending` is the only state
        allowed before that, and a decided signal never goes back to it."""
        seen: list[str] = []

        def decided() -> dict | None:
            body = self.ok(f"/api/signals/{signal_id}")
            seen.append(body["status"])
            return None if body["status"] == "pending" else body

        body = eventually(decided, f"signal {signal_id} to leave pending", timeout)
        assert set(seen[:-1]) <= {"pending"}, seen
        return body


@dataclass
class Stack:
    """The three services as child processes, their URLs, and the first user's API."""

    env: dict[str, str]
    ports: dict[str, int]
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # A service's own environment on top of `env` (each partition's engine: ENGINE_PARTITION).
    own_env: dict[str, dict[str, str]] = field(default_factory=dict)
    api: Api | None = None
    email: str = FIRST_USER  # the first user's login; every user made here has PASSWORD
    password: str = PASSWORD

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log_path(self, name: str, stream: str = "stderr") -> Path:
        return self.log_dir / f"{name}.{stream}.log"

    def log(self, name: str) -> str:
        """Everything the service wrote to stderr (and stdout) so far, across restarts."""
        paths = (self.log_path(name), self.log_path(name, "stdout"))
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def command(self, name: str) -> list[str]:
        # One engine per partition is started as engine-0, engine-1 …
        module = {**SERVICES, **WORKERS, **OPTIONAL}.get(name) or SERVICES["engine"]
        return [sys.executable, "-m", module]

    def start(self, name: str) -> None:
        with self.log_path(name).open("ab") as err, self.log_path(name, "stdout").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                self.command(name),
                cwd=PROJECT_ROOT,
                env={**self.env, **self.own_env.get(name, {})},
                stdout=out,
                stderr=err,
            )

    def wait_healthy(self, name: str, timeout: float = START_TIMEOUT_S) -> None:
        if name in WORKERS or name in OPTIONAL:
            process = self.processes[name]
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)[-4000:]}")
            return
        url = f"{self.url(name)}/healthz"
        deadline = time.monotonic() + timeout
        while True:
            process = self.processes[name]
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)[-4000:]}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer 200 at {url}:\n{self.log(name)[-4000:]}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL: no clean shutdown, no acknowledgements, no goodbye."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, name: str) -> None:
        """SIGTERM, the way a deploy stops a service, and wait for it to exit."""
        process = self.processes[name]
        process.terminate()
        process.wait(timeout=STOP_TIMEOUT_S)

    def stop_all(self) -> None:
        """SIGTERM to every service at once, then wait for each (SIGKILL after the timeout)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def user_api(self, email: str) -> Api:
        """Another user, made with the CLI (password PASSWORD), and their own API key."""
        return Api(self.url("ui"), create_user_with_key(self.env, email))


@pytest.fixture
def stack(settings, engine, redis_client, tmp_path) -> Iterator[Stack]:
    """Gateway, engine, UI and an executor running against emptied tables (`engine`) and a flushed
    Redis."""
    ports = {name: free_port() for name in (*SERVICES, "gateway-metrics")}
    env = service_env(
        settings,
        tmp_path / "var",
        GATEWAY_PORT=str(ports["gateway"]),
        GATEWAY_METRICS_PORT=str(ports["gateway-metrics"]),
        ENGINE_PORT=str(ports["engine"]),
        UI_PORT=str(ports["ui"]),
        PUBLIC_URL=f"http://127.0.0.1:{ports['gateway']}",
        WEBHOOK_RATE_LIMIT="1000",  # tests post bursts; the limiter has tests of its own
    )
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    stack = Stack(env, ports, log_dir)
    try:
        for name in (*SERVICES, *WORKERS):
            stack.start(name)
        # The CLI runs while the services boot.
        stack.api = Api(stack.url("ui"), create_user_with_key(env, FIRST_USER))
        for name in (*SERVICES, *WORKERS):
            stack.wait_healthy(name)
        yield stack
    finally:
        stack.stop_all()


ENGINES = ("engine-0", "engine-1")  # ENGINE_PARTITIONS=2: one engine process per partition


@contextmanager
def partitioned_stack(
    settings: Settings,
    tmp_path: Path,
    email: str,
    workers: tuple[str, ...],
    stack_class: type[Stack] = Stack,
    **extra: str,
) -> Iterator[Stack]:
    """Gateway, UI, `workers` and one engine per partition with ENGINE_PARTITIONS=2, `email`'s
    API ready; everything stopped at the end."""
    ports = {name: free_port() for name in ("gateway", "ui", "gateway-metrics")}
    ports["engine-0"] = free_ports(2)  # partition K's engine listens on ENGINE_PORT + K
    ports["engine-1"] = ports["engine-0"] + 1
    env = service_env(
        settings,
        tmp_path / "var",
        GATEWAY_PORT=str(ports["gateway"]),
        GATEWAY_METRICS_PORT=str(ports["gateway-metrics"]),
        ENGINE_PORT=str(ports["engine-0"]),
        UI_PORT=str(ports["ui"]),
        PUBLIC_URL=f"http://127.0.0.1:{ports['gateway']}",
        WEBHOOK_RATE_LIMIT="1000",
        ENGINE_PARTITIONS="2",
        **extra,
    )
    env.pop("ENGINE_PARTITION", None)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    stack = stack_class(env, ports, log_dir)
    stack.own_env = {name: {"ENGINE_PARTITION": name[-1]} for name in ENGINES}
    names = ("gateway", "ui", *ENGINES, *workers)
    try:
        for name in names:
            stack.start(name)
        stack.api = Api(stack.url("ui"), create_user_with_key(env, email))
        for name in names:
            stack.wait_healthy(name)
        yield stack
    finally:
        stack.stop_all()


def post_webhook(url: str, body: dict) -> str:
    """POST a TradingView alert to a webhook URL; it must answer 202. Returns the signal's id."""
    answer = requests.post(url, json=body, timeout=5)
    assert answer.status_code == 202, answer.text
    return answer.json()["signal_id"]


def tick_every_partition(redis_client, price: str) -> None:
    """What the price feed does with ENGINE_PARTITIONS=2: an MNQ tick to every partition's ticks
    stream, and the last price (where the paper broker fills)."""
    fields = TickMessage("MNQ", Decimal(price), time.time_ns() // 1_000_000, "test").to_fields()
    for k in (0, 1):
        redis_client.xadd(f"jt:{{p{k}}}:ticks", fields)
    redis_client.hset("jt:last_price", "MNQ", price)


def intent_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """The order intents by status."""
    with sessions() as s:
        rows = s.execute(
            select(OrderIntent.status, func.count()).group_by(OrderIntent.status)
        ).all()
    return dict(rows)


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    return eventually


@pytest.fixture
def api(stack) -> Api:
    assert stack.api is not None
    return stack.api
