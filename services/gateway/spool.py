"""Keeps the gateway accepting signals while Redis is unreachable: a disk spool and its drainer,
plus in-process copies of the token map and the rate limit, which otherwise live in Redis.

Each spooled signal is one file, fsynced (file and folder) before the webhook answers 202, named
by a sortable key (wall-clock ns, pid, counter) so the gunicorn workers of one host share one
order. The drainer XADDs files in name order and deletes each only after Redis took it; a crash
between the two sends that signal twice, which the engine ignores: it records every signal_id in
PostgreSQL and skips one it has already applied.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import redis

from libs.common.recorder_tokens import TOKENS_KEY, RecorderRef, token_digest

log = logging.getLogger(__name__)

SUFFIX = ".json"
DRAIN_INTERVAL_S = 0.5
TOKEN_REFRESH_S = 60.0
RETRY_S = 5.0
DATABASE_RELOAD_S = (
    1.0  # an unknown token during a Redis outage reads PostgreSQL at most this often
)


class SpoolFull(Exception):
    """The spool already holds `max_signals` signals."""


class Spool:
    """A folder of signals waiting for Redis, oldest name first; safe across threads and processes.

    Routing and the drainer's deletes share a lock file: a request decides "straight to Redis" or
    "to the spool" and writes under a shared lock, and a file is deleted under the exclusive one,
    so no request can see the spool empty while an earlier request is still writing into it.
    """

    def __init__(self, directory: Path, max_signals: int):
        self.directory = directory
        self.max_signals = max_signals
        directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()
        self._last_ns = 0
        self._key_lock = threading.Lock()
        self._route_lock = directory / "route.lock"
        self._threads = threading.local()

    def entries(self) -> list[Path]:
        with os.scandir(self.directory) as it:
            names = sorted(e.name for e in it if e.name.endswith(SUFFIX) and e.is_file())
        return [self.directory / name for name in names]

    def count(self) -> int:
        with os.scandir(self.directory) as it:
            return sum(1 for e in it if e.name.endswith(SUFFIX))

    def is_empty(self) -> bool:
        with os.scandir(self.directory) as it:
            return not any(e.name.endswith(SUFFIX) for e in it)

    @contextmanager
    def routing(self) -> Iterator[None]:
        # Each thread keeps its lock file open (opening it took as long as the rest of the
        # check); flock locks belong to the open file, so threads still exclude each other.
        fd = self._route_fd()
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _route_fd(self) -> int:
        held: BinaryIO | None = getattr(self._threads, "route_lock", None)
        if held is None:
            fd = os.open(self._route_lock, os.O_RDWR | os.O_CREAT, 0o600)
            held = self._threads.route_lock = os.fdopen(fd, "r+b")  # closed with the thread
        return held.fileno()

    def put(self, fields: dict[str, str]) -> Path:
        """Store one signal durably; call inside `routing()`. Raises SpoolFull, OSError."""
        if self.count() >= self.max_signals:
            raise SpoolFull
        key = self._next_key()
        tmp = self.directory / f".{key}.tmp"
        final = self.directory / f"{key}{SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps(fields).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        _fsync_dir(self.directory)  # the rename itself must survive a power cut before the 202
        return final

    def read(self, path: Path) -> dict[str, str]:
        fields: dict[str, str] = json.loads(path.read_bytes())  # as `write` stored them
        return fields

    def remove(self, path: Path) -> None:
        with _flock(self._route_lock, fcntl.LOCK_EX):
            path.unlink(missing_ok=True)
        _fsync_dir(self.directory)

    def set_aside(self, path: Path) -> None:
        """A file that cannot be read would block the queue forever; keep it for a human."""
        path.rename(path.with_suffix(".unreadable"))

    @contextmanager
    def drain_lock(self) -> Iterator[bool]:
        """True when this caller is the one drainer on the host; never waits."""
        fd = os.open(self.directory / "drain.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _next_key(self) -> str:
        with self._key_lock:  # never backwards within a process, even if the clock steps back
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            return f"{self._last_ns:020d}-{os.getpid():010d}-{next(self._counter):010d}"


@contextmanager
def _flock(path: Path, operation: int) -> Iterator[None]:
    # One descriptor per call: flock locks belong to the open file, so threads exclude each other.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolDrainer:
    """A thread per worker; the one holding the drain lock sends spooled signals to Redis."""

    def __init__(
        self,
        spool: Spool,
        publish: Callable[[dict[str, str]], None],
        on_tick: Callable[[], None] | None = None,
        interval_s: float = DRAIN_INTERVAL_S,
    ):
        self._spool = spool
        self._publish = publish
        self._on_tick = on_tick
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spool-drainer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wake(self) -> None:
        self._wake.set()

    def drain(self) -> int:
        """Send spooled signals oldest first until the spool is empty or Redis fails; how many."""
        sent = 0
        with self._spool.drain_lock() as mine:
            if not mine:
                return 0
            while entries := self._spool.entries():
                for path in entries:
                    try:
                        fields = self._spool.read(path)
                    except FileNotFoundError:
                        continue
                    except ValueError:
                        log.error(
                            "unreadable spool file set aside", extra={"kv": {"file": path.name}}
                        )
                        self._spool.set_aside(path)
                        continue
                    try:
                        self._publish(fields)
                    except redis.RedisError:
                        return sent
                    self._spool.remove(path)
                    sent += 1
        if sent:
            log.info("spool drained", extra={"kv": {"signals": sent}})
        return sent

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            self._wake.clear()
            try:
                if not self._spool.is_empty():
                    self.drain()
                if self._on_tick is not None:
                    self._on_tick()
            except Exception as exc:  # the thread must outlive any one failure
                log.warning("spool drain failed", extra={"kv": {"error": type(exc).__name__}})


class KnownTokens:
    """The token map as this worker last read it from Redis: it admits known tokens while Redis is
    down."""

    def __init__(self, prefix: str, refresh_s: float = TOKEN_REFRESH_S):
        self._key = prefix + TOKENS_KEY
        self._refresh_s = refresh_s
        self._by_digest: dict[str, RecorderRef] = {}
        self._refreshed_at = float("-inf")
        self._reloaded_at = float("-inf")
        self._reload_answered = False
        self._lock = threading.Lock()

    def get(self, token: str) -> RecorderRef | None:
        return self._by_digest.get(token_digest(token))

    def named(self, name: str, limit: int) -> list[RecorderRef]:
        """Up to `limit` recorders whose name is `name`, compared as the webhook's `recorder`
        field is (trimmed, casefolded)."""
        wanted = name.strip().casefold()
        if not wanted:
            return []
        found = []
        for recorder in list(self._by_digest.values()):
            if recorder.name.strip().casefold() == wanted:
                found.append(recorder)
                if len(found) == limit:
                    break
        return found

    def remember(self, token: str, recorder: RecorderRef | None) -> None:
        with self._lock:
            if recorder is None:
                self._by_digest.pop(token_digest(token), None)
            else:
                self._by_digest[token_digest(token)] = recorder

    def refresh(
        self, client: redis.Redis, from_database: Callable[[], dict[str, RecorderRef]] | None = None
    ) -> None:
        """Replace the copy with Redis's map, at most every `refresh_s`. While Redis is down, with
        `from_database`, the copy comes from PostgreSQL instead (every few seconds), so a worker
        that starts during the outage still knows every recorder."""
        if time.monotonic() - self._refreshed_at < self._refresh_s:
            return
        try:
            mapping = client.hgetall(self._key)
        except redis.RedisError:  # keep the copy; try again in a few seconds, not every tick
            self._refreshed_at = time.monotonic() - self._refresh_s + RETRY_S
            self._fill_from(from_database)
            return
        fresh = {_text(k): RecorderRef.from_json(_text(v)) for k, v in mapping.items()}
        with self._lock:
            self._by_digest = fresh
            self._refreshed_at = time.monotonic()

    def reload(self, from_database: Callable[[], dict[str, RecorderRef]]) -> bool:
        """While Redis is down, a token our copy does not know: read PostgreSQL's now, whatever
        the refresh interval (a recorder made since the copy was taken must not get a 404, which
        TradingView never sends again). At most every DATABASE_RELOAD_S per worker; False when
        PostgreSQL did not answer (then the caller cannot tell a 404)."""
        if time.monotonic() - self._reloaded_at < DATABASE_RELOAD_S:
            return self._reload_answered
        self._reloaded_at = time.monotonic()
        self._reload_answered = self._fill_from(from_database)
        return self._reload_answered

    def _fill_from(self, from_database: Callable[[], dict[str, RecorderRef]] | None) -> bool:
        if from_database is None:
            return False
        try:
            fresh = from_database()
        except Exception as exc:  # PostgreSQL away too: keep what we have
            log.warning(
                "token copy not read from PostgreSQL", extra={"kv": {"error": type(exc).__name__}}
            )
            return False
        with self._lock:
            self._by_digest = fresh
        return True


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LocalRateWindow:
    """The per-token fixed window kept in this process while Redis (holding the real one) is down.

    Each worker counts alone, so across gunicorn's workers a token may get up to workers × limit.
    """

    def __init__(self, limit: int, window_s: int):
        self._limit = limit
        self._window_s = window_s
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def allow(self, token: str, now_s: float | None = None) -> bool:
        window = int((time.time() if now_s is None else now_s) // self._window_s)
        key = (token_digest(token), window)
        with self._lock:
            if key not in self._counts:  # a new window: forget the finished ones
                self._counts = {k: n for k, n in self._counts.items() if k[1] >= window}
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key] <= self._limit


class LocalAlertIds:
    """Alert ids this process spooled while Redis was down, each with its signal id, for the
    dedupe window: a repeat reaching the same process is recognized at once; one reaching
    another process is dropped when the spool drains (the drainer's script sees the id taken)."""

    def __init__(self, window_s: int):
        self._window_s = window_s
        self._ids: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, signal_id: str, now_s: float | None = None) -> str | None:
        """Mark `key` as `signal_id`'s; the signal id that already holds it, or None."""
        now = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._ids = {k: v for k, v in self._ids.items() if v[1] > now}
            held = self._ids.get(key)
            if held is not None:
                return held[0]
            self._ids[key] = (signal_id, now + self._window_s)
            return None

    def release(self, key: str) -> None:
        with self._lock:
            self._ids.pop(key, None)
