"""The feed: one primary source plus the polling fallback, publishing ticks to `jt:ticks`.

It follows the symbols of open positions (the engine keeps them in `jt:open_symbols`) plus a
watch list, runs the fallback while the primary is down and stops it when the primary is back,
and reports its state at `GET /status` and as `price.status` events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from libs.common import events, streams
from libs.common.config import Settings
from libs.common.streams import TickMessage
from services.price_feed.quotes import PriceSource, Quote

log = logging.getLogger("price_feed")

TICKS_MAXLEN = 1_000_000
STATUS_TTL_S = 30


@dataclass
class TickLog:
    """When each symbol last ticked and whether that tick was delayed."""

    last_ms: dict[str, int] = field(default_factory=dict)
    delayed: dict[str, bool] = field(default_factory=dict)
    count: int = 0


class Feed:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        primary: PriceSource,
        fallback: PriceSource | None = None,
        *,
        fallback_grace_s: float = 5.0,
        session_state: Callable[[], dict | None] = lambda: None,
        housekeeping: Callable[[], None] = lambda: None,
    ):
        self.settings = settings
        self.redis = client
        self.primary = primary
        self.fallback = fallback
        self.fallback_grace_s = fallback_grace_s
        self.session_state = session_state  # the TradingView session, when the source uses one
        self.housekeeping = housekeeping  # e.g. reconnect when the stored cookies change
        self.ticks = TickLog()
        self.ticks_streams = settings.all_partition_keys(streams.TICKS)
        self.wanted: set[str] = set()
        self.fallback_active = False
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._last_status: dict | None = None
        self._started = time.monotonic()

    # --- publishing --------------------------------------------------------------------------

    def publish(self, quote: Quote) -> None:
        """Called by sources, from their own threads, for every new price."""
        fields = TickMessage(
            quote.symbol, quote.price, quote.ts, quote.source, quote.delayed
        ).to_fields()
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.ticks_streams:  # every engine partition gets every tick
            streams.add(pipe, stream, fields, maxlen=TICKS_MAXLEN)
        pipe.hset(self.settings.stream(streams.LAST_PRICE), quote.symbol, str(quote.price))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning(
                "tick not published",
                extra={"kv": {"symbol": quote.symbol, "error": type(exc).__name__}},
            )
            return
        with self._lock:
            self.ticks.last_ms[quote.symbol] = quote.ts
            self.ticks.delayed[quote.symbol] = quote.delayed
            self.ticks.count += 1

    # --- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self.refresh_symbols()
        self.primary.start(self.publish)

    def stop(self) -> None:
        self.primary.stop()
        if self.fallback and self.fallback_active:
            self.fallback.stop()

    def run(self, stop: threading.Event, every_s: float = 0.5) -> None:
        self.start()
        try:
            while not stop.wait(every_s):
                self.tick_once()
        finally:
            self.stop()

    def tick_once(self) -> None:
        try:
            self.refresh_symbols()
        except redis.RedisError as exc:
            log.warning("open symbols not read", extra={"kv": {"error": type(exc).__name__}})
        self.switch_fallback()
        try:
            self.housekeeping()
        except Exception:  # keep prices flowing whatever a check of credentials ran into
            log.exception("housekeeping failed")
        self.report()

    def refresh_symbols(self) -> None:
        # Every partition's hash in one round trip (per node on a cluster: redis-py splits it).
        pipe = self.redis.pipeline(transaction=False)
        for key in self.settings.all_partition_keys(streams.OPEN_SYMBOLS):
            pipe.hgetall(key)
        hashes: list[dict[str, str]] = pipe.execute()
        open_symbols = {s for counts in hashes for s, n in counts.items() if int(n) > 0}
        wanted = open_symbols | set(self.settings.price_watchlist)
        if wanted != self.wanted:
            log.info("following symbols", extra={"kv": {"symbols": ",".join(sorted(wanted))}})
            self.wanted = wanted
            self.primary.set_symbols(wanted)
            if self.fallback:
                self.fallback.set_symbols(wanted)

    def switch_fallback(self) -> None:
        """The fallback polls while the primary has been down for `fallback_grace_s`."""
        if self.fallback is None:
            return
        now = time.monotonic()
        if self.primary.connected:
            self._down_since = None
            if self.fallback_active:
                self.fallback.stop()
                self.fallback_active = False
                log.info("primary source back; fallback stopped")
            return
        self._down_since = self._down_since or now
        if not self.fallback_active and now - self._down_since >= self.fallback_grace_s:
            self.fallback.set_symbols(self.wanted)
            self.fallback.start(self.publish)
            self.fallback_active = True
            log.warning(
                "primary source down; fallback polling",
                extra={"kv": {"fallback": self.fallback.name}},
            )

    # --- status ------------------------------------------------------------------------------

    def status(self) -> dict:
        primary = self.primary.status()
        session = self.session_state()
        sign_in = (session or {}).get("sign_in") or {}
        active = self.fallback if self.fallback_active and self.fallback else self.primary
        now = time.time() * 1000
        with self._lock:
            ages = {s: round((now - ms) / 1000, 1) for s, ms in sorted(self.ticks.last_ms.items())}
            delayed = sorted(s for s, d in self.ticks.delayed.items() if d)
            count = self.ticks.count
        return {
            "ok": primary.connected or (self.fallback_active and active.connected),
            "source": self.primary.name,
            "active_source": active.name,
            "connected": primary.connected,
            "fallback_active": self.fallback_active,
            "authenticated": primary.authenticated,
            "reconnects": primary.reconnects,
            "symbols": sorted(self.wanted),
            "failed_symbols": sorted(primary.failed_symbols),
            "delayed_symbols": delayed,
            "cached_prices": len(ages),
            "last_tick_age_s": ages,
            "ticks_published": count,
            "error": primary.error,
            "tradingview_session": session,
            # Why the TradingView session stopped renewing itself (until the credentials change).
            "signin_failed": sign_in.get("last_error") if sign_in.get("renewals_stopped") else None,
        }

    def report(self) -> None:
        """Publish a `price.status` event when something a user would care about changed."""
        status = self.status()
        summary = {
            k: status[k]
            for k in (
                "ok",
                "active_source",
                "connected",
                "fallback_active",
                "authenticated",
                "delayed_symbols",
                "failed_symbols",
                "error",
                "signin_failed",
            )
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(
            self.settings.stream(streams.PRICE_FEED_STATUS), json.dumps(status), ex=STATUS_TTL_S
        )
        if summary != self._last_status:
            streams.publish_event(
                pipe, self.settings.stream(streams.EVENTS), events.PRICE_STATUS, status
            )
            self._last_status = summary
        try:
            pipe.execute()
        except redis.RedisError:
            log.warning("status not published")
