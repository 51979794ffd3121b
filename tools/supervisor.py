"""`justtrades run`: the servers a newcomer needs, migrations, then every service in the foreground.

With no DATABASE_URL/REDIS_URL, embedded PostgreSQL and Redis start with their data under `var/`;
the URLs in use (passwords included) are written to `var/embedded.json`, mode 0600, so other
commands (`user create`, `bench`) find them. Each service is a child process; one that dies is
restarted; Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypedDict

import psycopg

from libs.common import partitions, redis_conn
from libs.common.backoff import capped_exponential
from libs.common.config import Settings
from libs.common.storage import db
from libs.common.storage.embedded import (
    PASSWORDS_FILE,
    EmbeddedServers,
    free_port,
    start_embedded,
)

log = logging.getLogger("supervisor")

SERVICES = {
    "gateway": "services.gateway",
    "engine": "services.position_engine",
    "ui": "services.ui",
    "price-feed": "services.price_feed",
    "executor": "services.executor",
}
# Started beside them, off the trading path: Discord, Telegram, e-mail and webhooks (§4e).
NOTIFIER = "services.notifier"


def _state_file(settings: Settings) -> Path:
    return settings.var_dir / "embedded.json"


class EmbeddedState(TypedDict, total=False):
    """What `var/embedded.json` holds while `justtrades run` keeps embedded servers up."""

    database_url: str
    redis_url: str
    pg_port: int | None
    redis_port: int | None


def embedded_urls(settings: Settings) -> EmbeddedState:
    """The URLs of the embedded servers a running `justtrades run` started, if any."""
    try:
        state: EmbeddedState = json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return state


def _write_state(path: Path, state: EmbeddedState) -> None:
    """Written under a temporary name created with mode 0600, then renamed: the URLs carry the
    servers' passwords, so no other user may read the file, even while it is being written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(state).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def without_password(url: str | None) -> str:
    """`url` with its password shown as `***`, for anything printed or logged."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url or "")


def _reachable(database_url: str, redis_url: str) -> bool:
    try:
        plain = database_url.replace("postgresql+psycopg://", "postgresql://")
        psycopg.connect(plain, connect_timeout=2).close()
        redis_conn.connect(redis_url, socket_connect_timeout=2).ping()
        return True
    except Exception:
        return False


def _remembered_ports(settings: Settings) -> tuple[int | None, int | None]:
    try:
        state = json.loads(_state_file(settings).read_text())
        return state.get("pg_port"), state.get("redis_port")
    except (OSError, ValueError):
        return None, None


def _port_free(port: int | None) -> bool:
    import socket

    if port is None:
        return False
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def servers_for(settings: Settings) -> Iterator[Settings]:
    """Settings with both URLs filled in: configured, already running embedded, or started here."""
    if settings.database_url and settings.redis_url:
        yield settings
        return
    state = _state_file(settings)
    if state.exists():
        urls = json.loads(state.read_text())
        if _reachable(urls["database_url"], urls["redis_url"]):
            yield settings.with_urls(
                settings.database_url or urls["database_url"],
                settings.redis_url or urls["redis_url"],
            )
            return
    pg_port, redis_port = _remembered_ports(settings)
    servers: EmbeddedServers = start_embedded(
        settings.var_dir,
        need_postgres=not settings.database_url,
        need_redis=not settings.redis_url,
        pg_port=pg_port if _port_free(pg_port) else free_port(),
        redis_port=redis_port if _port_free(redis_port) else free_port(),
    )
    # Each server was started only where its URL is missing.
    database_url = servers.postgres.url if servers.postgres else settings.database_url
    redis_url = servers.redis.url if servers.redis else settings.redis_url
    _write_state(
        state,
        {
            "database_url": database_url,
            "redis_url": redis_url,
            "pg_port": servers.postgres.port if servers.postgres else None,
            "redis_port": servers.redis.port if servers.redis else None,
        },
    )
    try:
        yield settings.with_urls(database_url, redis_url)
    finally:
        servers.stop()
        state.unlink(missing_ok=True)


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)  # on top of every child's environment
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "SECRET_KEY": settings.secret_key,
            "ENCRYPTION_KEY": settings.encryption_key,
            "JT_VAR_DIR": str(settings.var_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _start(child: Child, env: dict[str, str]) -> None:
    # A session of its own, so Ctrl-C reaches only the supervisor, which stops children in order.
    child.process = subprocess.Popen(
        [sys.executable, "-m", child.module], env={**env, **child.env}, start_new_session=True
    )
    child.started_at = time.monotonic()
    log.info("service started", extra={"kv": {"service": child.name, "pid": child.process.pid}})


def _stop_all(children: list[Child], timeout: float = 15.0) -> None:
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if not child.process:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def _passwords_line(settings: Settings) -> str:
    path = settings.var_dir / PASSWORDS_FILE
    return f"  Their passwords   {path} (mode 0600)\n" if path.exists() else ""


def _partitions_note(settings: Settings) -> str:
    n = settings.engine_partitions
    if n == 1:
        return ""
    return f"  ({n} partitions: ports {settings.engine_port} to {settings.engine_port + n - 1})"


def banner(settings: Settings) -> str:
    return (
        "\nJust Trades is running.\n"
        f"  UI and JSON API   http://localhost:{settings.ui_port}\n"
        f"  Webhooks          {settings.public_url}/webhook/<token>"
        f"  (gateway on port {settings.gateway_port})\n"
        f"  Engine health     http://localhost:{settings.engine_port}/healthz"
        f"{_partitions_note(settings)}\n"
        f"  Price feed        http://localhost:{settings.price_feed_port}/status"
        f"  (PRICE_SOURCE={settings.price_source})\n"
        f"  PostgreSQL        {without_password(settings.database_url)}\n"
        f"  Redis             {without_password(settings.redis_url)}\n"
        f"{_passwords_line(settings)}"
        "Make a user in another terminal:"
        "  .venv/bin/justtrades user create you@example.com --password '...'\n"
        "Press Ctrl-C to stop everything.\n"
    )


def run(settings: Settings, only: list[str] | None = None) -> int:
    from services.price_feed.service import FeedConfigError, check_config

    try:
        check_config(settings)
    except FeedConfigError as exc:
        print(f"justtrades: {exc}", file=sys.stderr)
        return 2
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with servers_for(settings) as live:
        db.upgrade(live.database_url)
        try:  # each service refuses too; here once, before any starts and is restarted in a loop
            partitions.check(redis_conn.connect(live.redis_url, decode_responses=True), live)
        except partitions.PartitionMismatch as exc:
            print(f"justtrades: {exc}", file=sys.stderr)
            return 2
        env = _child_env(live)
        children = [
            Child(name, module)
            for name, module in SERVICES.items()
            if name not in ("executor", "engine") and (not only or name in only)
        ]
        if not only or "engine" in only:
            # One engine per partition (ENGINE_PARTITIONS), each on ENGINE_PORT + its number.
            n = live.engine_partitions
            children += [
                Child(
                    "engine" if n == 1 else f"engine-{k}",
                    SERVICES["engine"],
                    env={"ENGINE_PARTITION": str(k)},
                )
                for k in range(n)
            ]
        if not only or "executor" in only:
            # Several worker processes: each runs one job at a time; the limiter and the
            # per-subaccount locks in Redis keep them from stepping on each other.
            children += [
                Child(f"executor-{n + 1}", SERVICES["executor"])
                for n in range(live.executor_workers)
            ]
        if not only or "notifier" in only:
            children.append(Child("notifier", NOTIFIER))
        for child in children:
            _start(child, env)
        print(banner(live), flush=True)
        try:
            while not stopping:
                time.sleep(0.5)
                for child in children:
                    process = child.process  # every child was started above
                    if stopping or process is None or process.poll() is None:
                        continue
                    # Back off when a service keeps dying right after start.
                    quick = time.monotonic() - child.started_at < 10
                    child.restarts = child.restarts + 1 if quick else 0
                    log.error(
                        "service exited; restarting",
                        extra={
                            "kv": {
                                "service": child.name,
                                "code": process.returncode,
                                "restarts": child.restarts,
                            }
                        },
                    )
                    time.sleep(capped_exponential(child.restarts, 0.5, 30.0))
                    _start(child, env)
        finally:
            print("\nStopping services...", flush=True)
            _stop_all(children)
    print("Stopped.", flush=True)
    return 0
