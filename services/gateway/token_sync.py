"""Keeps the Redis token → recorder map filled from PostgreSQL, off the request path.

The UI updates single entries as recorders change; this fills the whole map at start-up and
again whenever its marker is gone (Redis restarted without its data).
"""

from __future__ import annotations

import logging
import threading

import redis
from sqlalchemy.orm import Session, sessionmaker

from libs.common import recorder_tokens
from libs.common.config import Settings

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 30.0


class TokenMapSync:
    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        sessions: sessionmaker[Session],
        interval_s: float = SYNC_INTERVAL_S,
    ):
        self._client = client
        self._settings = settings
        self._sessions = sessions
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> int | None:
        """Rebuild the map; the number of recorders, or None when PostgreSQL or Redis failed."""
        try:
            with self._sessions() as session:
                count = recorder_tokens.sync_all(self._client, self._settings, session)
        except Exception as exc:  # a failed sync must not stop the gateway; the loop tries again
            log.warning("token map sync failed", extra={"kv": {"error": type(exc).__name__}})
            return None
        log.info("token map synced", extra={"kv": {"recorders": count}})
        return count

    def sync_if_lost(self) -> int | None:
        try:
            if recorder_tokens.is_synced(self._client, self._settings):
                return None
        except redis.RedisError:
            return None  # Redis is down: nothing to write to, try on the next round
        return self.sync()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="token-map-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sync_if_lost()
