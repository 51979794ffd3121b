"""Runs the price feed as a process: picks the sources from PRICE_SOURCE, serves `GET /status`
and `GET /metrics`."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from libs.common import partitions, redis_conn, status_server
from libs.common.config import Settings
from libs.common.metrics import ScrapeCollector
from libs.common.storage import db
from services.price_feed.feed import Feed
from services.price_feed.quotes import PriceSource
from services.price_feed.tradingview_store import CookieStore, CredentialStore
from services.price_feed.tradingview_store import StoredCookies as StoredCookies  # re-exported

log = logging.getLogger("price_feed")

SOURCES = ("tradingview", "scanner", "sim", "replay", "tradovate", "off")


class FeedConfigError(ValueError):
    """PRICE_SOURCE and its settings do not make a working feed; the message says what to set."""


def check_config(settings: Settings) -> None:
    """Raise FeedConfigError when PRICE_SOURCE and its settings cannot make a feed."""
    name = settings.price_source
    if name not in SOURCES:
        raise FeedConfigError(f"PRICE_SOURCE must be one of {', '.join(SOURCES)}, not {name!r}")
    if name == "replay":
        if not settings.replay_file:
            raise FeedConfigError("PRICE_SOURCE=replay needs REPLAY_FILE, a CSV of ts,symbol,price")
        if not Path(settings.replay_file).exists():
            raise FeedConfigError(f"REPLAY_FILE {settings.replay_file} does not exist")
        if settings.replay_speed <= 0:
            raise FeedConfigError("REPLAY_SPEED must be a positive number")


@dataclass
class FeedSources:
    primary: PriceSource
    fallback: PriceSource | None = None
    session_state: Callable[[], dict[str, Any] | None] = lambda: None  # TradingView's, if any
    housekeeping: Callable[[], None] = lambda: None  # run by the feed every half second
    renewer: Any = None  # the TradingView SessionRenewer, when the feed signs in by itself


def build_sources(settings: Settings, cookies: CookieStore | None) -> FeedSources:
    """The sources PRICE_SOURCE names, wired to the stored TradingView cookies where they log in."""
    check_config(settings)
    name = settings.price_source
    if name == "sim":
        from services.price_feed.sim import SimSource

        return FeedSources(SimSource(interval_s=settings.sim_interval_s))
    if name == "off":
        from services.price_feed.sim import OffSource

        return FeedSources(OffSource())
    if name == "replay":
        from services.price_feed.sim import ReplaySource

        replay = Path(settings.replay_file or "")  # check_config made sure it is set
        return FeedSources(ReplaySource(replay, speed=settings.replay_speed))
    if name in ("tradingview", "scanner"):
        return _tradingview_sources(settings, cookies)
    if name == "tradovate":
        return _tradovate_sources(settings, cookies.sessions if cookies else None)
    raise AssertionError(name)  # check_config knows every name


def _tradingview_sources(settings: Settings, cookies: CookieStore | None) -> FeedSources:
    from services.price_feed.tradingview.auth import AuthTokenKeeper, SessionCookies
    from services.price_feed.tradingview.renewal import SessionRenewer
    from services.price_feed.tradingview.scanner import ScannerSource
    from services.price_feed.tradingview.socket_source import TradingViewSocketSource

    def session_cookies() -> SessionCookies | None:
        stored = cookies.current() if cookies else None
        return SessionCookies(stored.sessionid, stored.sessionid_sign) if stored else None

    renewer = None
    if cookies is not None:
        signin_url = settings.tradingview_signin_url or settings.tradingview_url
        renewer = SessionRenewer(signin_url, CredentialStore(cookies))
    keeper = AuthTokenKeeper(settings.tradingview_url, session_cookies, renewer=renewer)

    def session_state() -> dict[str, Any]:
        # Whose cookies and credentials these are stays out of /status, which needs no login.
        stored = cookies.current() if cookies else None
        return {
            **keeper.state(),
            "source": stored.source if stored else None,
            "sign_in": renewer.state() if renewer else None,
        }

    scanner = ScannerSource(settings.tradingview_scanner_url, session_cookies)
    if settings.price_source == "scanner":
        return FeedSources(scanner, None, session_state, keeper.renew_if_needed, renewer)
    socket = TradingViewSocketSource(
        settings.tradingview_ws_url, keeper.token, on_token_refused=keeper.invalidate
    )
    seen = {"cookies": session_cookies()}

    def reconnect_on_new_cookies() -> None:
        keeper.renew_if_needed()
        current = session_cookies()
        if current != seen["cookies"]:
            seen["cookies"] = current
            log.info("tradingview cookies changed; reconnecting")
            socket.credentials_changed()

    return FeedSources(socket, scanner, session_state, reconnect_on_new_cookies, renewer)


def _tradovate_sources(settings: Settings, sessions: sessionmaker[Session] | None) -> FeedSources:
    """Tradovate's market-data socket with the token of the most recently connected account."""
    from libs.common.futures.exchange_calendar import trade_date
    from libs.common.storage.models import Account
    from libs.common.tradovate.accounts import AccountUnusable, TokenKeeper, base_url
    from services.price_feed.tradovate import TradovateMarketDataSource

    client = redis_conn.connect(settings.redis_url, decode_responses=True)
    keeper = TokenKeeper(settings, client, sessions=sessions)

    def account() -> Account | None:
        with keeper.sessions() as s:
            return s.scalar(
                select(Account)
                .where(Account.broker == "tradovate", Account.status == "connected")
                .order_by(Account.updated_at.desc())
                .limit(1)
            )

    def token(md: bool) -> str | None:
        found = account()
        if found is None:
            return None
        try:
            return keeper.md_token(None, found) if md else keeper.token(None, found)
        except AccountUnusable as exc:
            log.warning(
                "tradovate account unusable for market data",
                extra={"kv": {"reason": repr(str(exc))}},
            )
            return None

    first = account()
    rest_url = base_url(settings, first.environment if first else "demo")
    source = TradovateMarketDataSource(
        settings.tradovate_md_url,
        rest_url,
        lambda: token(md=True),
        rest_token_provider=lambda: token(md=False),
        clock_date=lambda: trade_date(datetime.now(UTC)),
    )
    return FeedSources(source)


def feed_metrics(feed: Feed) -> Iterator[Metric]:
    """The same numbers `/status` shows, read from the feed when Prometheus scrapes."""
    status = feed.status()
    yield CounterMetricFamily(
        "jt_feed_ticks_published", "Ticks put on the ticks stream.", value=status["ticks_published"]
    )
    yield GaugeMetricFamily(
        "jt_feed_connected",
        "1 while the primary source is connected.",
        value=int(bool(status["connected"])),
    )
    yield GaugeMetricFamily(
        "jt_feed_fallback_active",
        "1 while the polling fallback runs.",
        value=int(bool(status["fallback_active"])),
    )
    yield CounterMetricFamily(
        "jt_feed_reconnects", "Reconnects of the primary source.", value=status["reconnects"] or 0
    )
    ages = GaugeMetricFamily(
        "jt_feed_last_tick_age_seconds", "Seconds since the symbol last ticked.", labels=["symbol"]
    )
    for symbol, age in status["last_tick_age_s"].items():
        ages.add_metric([symbol], age)
    yield ages


def feed_registry(feed: Feed) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ScrapeCollector(lambda: feed_metrics(feed), "price feed"))
    return registry


def start_status_server(port: int, feed: Feed, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """`/status` (always 200: it is for people), `/healthz` (503 while the feed is not ok) and
    `/metrics` on `port`."""
    return status_server.start_status_server(
        port,
        {
            "/status": status_server.json_route(feed.status),
            "/healthz": status_server.json_route(feed.status, lambda status: status["ok"]),
            "/metrics": status_server.metrics_route(feed_registry(feed)),
        },
        "feed-status",
        host,
    )


def run(settings: Settings) -> None:
    client = redis_conn.connect(settings.redis_url, decode_responses=True)
    try:
        partitions.check(client, settings)  # ticks go to every partition the installation runs
    except partitions.PartitionMismatch as exc:
        client.close()
        raise SystemExit(f"price feed not started: {exc}") from None
    sql = db.make_engine(settings.database_url, pool_size=1)
    cookies = CookieStore(db.make_sessionmaker(sql), settings.encryption_key)
    try:
        sources = build_sources(settings, cookies)
    except FeedConfigError as exc:
        raise SystemExit(f"price feed: {exc}") from None
    feed = Feed(
        settings,
        client,
        sources.primary,
        sources.fallback,
        session_state=sources.session_state,
        housekeeping=sources.housekeeping,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    server = start_status_server(settings.price_feed_port, feed, settings.internal_host)
    log.info(
        "price feed starting",
        extra={"kv": {"source": sources.primary.name, "port": settings.price_feed_port}},
    )
    feed.run(stopping)
    server.shutdown()
    client.close()
    sql.dispose()
    log.info("price feed stopped")
