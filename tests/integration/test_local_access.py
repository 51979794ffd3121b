"""Nothing is reachable without a credential (DESIGN §7): the embedded Redis and PostgreSQL that
`justtrades run` starts refuse another local connection without their generated passwords, and
the executor runs only its own job function, whatever a queue holds."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import socket
import stat
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from rq import Callback, Queue
from rq.serializers import JSONSerializer

from libs.common import orders
from libs.common.config import Settings, load_settings
from libs.common.storage.embedded import (
    PASSWORDS_FILE,
    PG_USER,
    EmbeddedPostgres,
    embedded_passwords,
    free_port,
)
from tools import supervisor

# --- the embedded servers, started as `justtrades run` starts them ------------------------------


def _own_dir(prefix: str) -> Iterator[Path]:
    """A folder outside pytest's own (which pytest makes private to root again whenever a run
    starts, shutting out PostgreSQL's system user when the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def embedded() -> Iterator[Settings]:
    """Settings whose URLs point at embedded servers that `justtrades run`'s code started."""
    if os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"):
        pytest.skip("servers are configured: nothing embedded to check")
    for folder in _own_dir("jt-local-access-"):
        var_dir = folder / "var"
        base = load_settings(environ={"JT_VAR_DIR": str(var_dir)}, env_file=folder / "none.env")
        with supervisor.servers_for(base) as live:
            yield live


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    yield from _own_dir("jt-trust-")


@pytest.fixture
def no_libpq_password(monkeypatch, tmp_path):
    """A client with no password from its environment or a ~/.pgpass either."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))


def redis_port(settings: Settings) -> int:
    return redis.connection.parse_url(settings.redis_url)["port"]


def pg_port(settings: Settings) -> int:
    return int(settings.database_url.rsplit(":", 1)[1].split("/")[0])


def plain(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def test_a_redis_client_without_the_password_is_refused(embedded):
    # Given the embedded Redis; when another local program connects without the password
    with socket.create_connection(("127.0.0.1", redis_port(embedded)), timeout=5) as conn:
        conn.sendall(b"SET jt:signals:injected 1\r\nPING\r\n")
        answer = conn.recv(4096)

    # Then every command is refused, and nothing was written
    assert answer.startswith(b"-NOAUTH"), answer
    with redis.Redis.from_url(embedded.redis_url) as client:
        assert client.ping()
        assert client.exists("jt:signals:injected") == 0


def test_a_postgres_client_without_the_password_is_refused_over_tcp_and_the_socket(
    embedded, no_libpq_password
):
    socket_dir = embedded.var_dir / "postgres"
    for host in ("127.0.0.1", str(socket_dir)):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(
                host=host, port=pg_port(embedded), user=PG_USER, dbname="justtrades"
            ).close()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host=host,
                port=pg_port(embedded),
                user=PG_USER,
                dbname="justtrades",
                password="justtrades",
            ).close()
    # while the services' URL, which carries the password, works
    with psycopg.connect(plain(embedded.database_url)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_passwords_and_the_urls_holding_them_are_readable_by_their_owner_only(embedded):
    for name in (PASSWORDS_FILE, "embedded.json", "redis/redis.conf"):
        mode = stat.S_IMODE((embedded.var_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    kept = json.loads((embedded.var_dir / "embedded.json").read_text())
    passwords = embedded_passwords(embedded.var_dir)
    assert passwords.postgres in kept["database_url"]
    assert passwords.redis in kept["redis_url"]


def test_the_banner_shows_the_servers_without_their_passwords(embedded):
    shown = supervisor.banner(embedded)
    passwords = embedded_passwords(embedded.var_dir)
    assert passwords.postgres not in shown and passwords.redis not in shown
    assert f"127.0.0.1:{redis_port(embedded)}" in shown


# --- a PostgreSQL data dir made before passwords -------------------------------------------------


def _pg(server: EmbeddedPostgres, *args: str) -> None:
    """Run a PostgreSQL program on the cluster as the embedded servers do (as root: as their
    own system user)."""
    done = subprocess.run(
        [server._bin(args[0]), *args[1:]], capture_output=True, text=True, **server._run_as()
    )
    assert done.returncode == 0, f"{args[0]}: {done.stderr or done.stdout}"


def test_a_trust_cluster_from_before_is_upgraded_in_place_and_keeps_its_rows(
    pg_dir, no_libpq_password
):
    # Given a data dir made the old way (trust auth), with a row in it
    data_dir = pg_dir / "postgres"
    data_dir.mkdir()
    old = EmbeddedPostgres(data_dir, free_port(), password="unused")
    _pg(old, "initdb", "-D", str(data_dir), "--auth=trust", "-U", PG_USER, "--no-instructions")
    opts = f"-h 127.0.0.1 -p {old.port} -k {data_dir}"
    _pg(old, "pg_ctl", "-D", str(data_dir), "-w", "-o", opts, "-l", str(data_dir / "log"), "start")
    try:
        with psycopg.connect(
            host="127.0.0.1", port=old.port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('my positions')")
    finally:
        _pg(old, "pg_ctl", "-D", str(data_dir), "-w", "stop")

    # When it is started the way `make run` starts it now
    server = EmbeddedPostgres(data_dir, old.port, password="the-new-password")
    server.start()
    try:
        # Then the row is still there, read with the password ...
        with psycopg.connect(plain(server.url_of("postgres"))) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("my positions",)]
        # ... and a connection without it is refused, over TCP and the socket
        for host in ("127.0.0.1", str(data_dir)):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(host=host, port=server.port, user=PG_USER, dbname="postgres")
    finally:
        server.stop()

    # And a second start (nothing left to upgrade) opens it as it is
    server.start()
    server.stop()


# --- the executor's queues ----------------------------------------------------------------------


class _Shell:
    """A pickle that runs a shell command when it is loaded: what a pickling worker would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def leave_mark(*args, **kwargs) -> None:
    """A callback a job names: it must never be imported, let alone called."""
    Path(os.environ["JT_TEST_MARK"]).write_text("ran")


@pytest.fixture
def mark(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "owned"
    monkeypatch.setenv("JT_TEST_MARK", str(path))
    return path


def _queue_name(settings: Settings) -> str:
    return settings.stream_prefix + orders.QUEUE_ENTRIES


def _refused(executor, settings: Settings, job_id: str) -> bool:
    queue = orders.order_queue(executor.rq, _queue_name(settings))
    return job_id in queue.failed_job_registry.get_job_ids()


def test_a_pickled_job_naming_os_system_is_refused_and_nothing_runs(
    settings, redis_client, executor, mark, caplog
):
    # Given two jobs written the way anyone with Redis access could: RQ's default (pickled)
    # enqueue of os.system, and a hash whose data is a pickle that runs a command when loaded
    queue = Queue(_queue_name(settings), connection=executor.rq)
    plain_job = queue.enqueue(os.system, f"touch {mark}")
    evil = pickle.dumps(_Shell(f"touch {mark}"))
    executor.rq.hset(
        "rq:job:evil",
        mapping={
            "data": zlib.compress(evil),
            "status": "queued",
            "origin": queue.name,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "description": "evil",
        },
    )
    executor.rq.rpush(queue.key, "evil")

    # When the executor's worker takes them
    with caplog.at_level(logging.WARNING, logger="libs.common.rq_jobs"):
        executor()

    # Then neither ran, both failed, and each refusal is one warning line
    assert not mark.exists()
    assert _refused(executor, settings, plain_job.id)
    assert _refused(executor, settings, "evil")
    refusals = [r for r in caplog.records if r.getMessage() == "job refused"]
    assert sorted(r.kv["job_id"] for r in refusals) == sorted([plain_job.id, "evil"])


def test_a_json_job_naming_a_foreign_function_or_a_callback_is_refused(
    settings, redis_client, executor, mark, caplog
):
    # Given JSON jobs as the executor's own queue writes them: one naming os.system, one our
    # drain job with a callback of someone else's
    queue = Queue(_queue_name(settings), connection=executor.rq, serializer=JSONSerializer)
    foreign = queue.enqueue("os.system", f"touch {mark}")
    hooked = queue.enqueue(
        "libs.common.orders.drain_subaccount",
        999_999,
        on_success=Callback(f"{__name__}.leave_mark"),
        on_failure=Callback(f"{__name__}.leave_mark"),
    )

    # When the executor's worker takes them
    with caplog.at_level(logging.WARNING, logger="libs.common.rq_jobs"):
        executor()

    # Then nothing ran, neither the command nor the callback, and both jobs failed
    assert not mark.exists()
    assert _refused(executor, settings, foreign.id)
    assert _refused(executor, settings, hooked.id)
    functions = {r.kv["function"] for r in caplog.records if r.getMessage() == "job refused"}
    assert functions == {"os.system", "libs.common.orders.drain_subaccount"}
