"""The TradingView feed as `justtrades price-feed` wires it — an operator's cookies from
PostgreSQL, the token from the site, the quote socket, the scanner fallback — against the local
TradingView."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import update

from libs.common import streams
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import TradingViewSession, User
from libs.common.streams import TickMessage
from services.price_feed.feed import Feed
from services.price_feed.service import CookieStore, StoredCookies, build_sources
from simulators.tradingview.http import SiteServer
from simulators.tradingview.market import Market
from simulators.tradingview.quote_server import QuoteServer
from simulators.tradingview.tokens import make_jwt
from tests.polling import wait_for


@pytest.fixture
def market() -> Market:
    m = Market()
    m.list("CME_MINI:MNQ1!", "25640.25", "Micro E-mini Nasdaq-100", pricescale=100, minmov=25)
    m.add_account("sess-1", make_jwt(1, int(time.time()) + 3600), 3600, "sign-1")
    return m


@pytest.fixture
def tradingview(market):
    site = SiteServer(market).start()
    quotes = QuoteServer(market, heartbeat_interval_s=0.2).start()
    yield site, quotes
    quotes.stop()
    site.stop()


@pytest.fixture
def feed_for(settings, redis_client, sessions):
    running = []

    def start(site, quotes, **changes) -> Feed:
        s = replace(
            settings,
            price_source="tradingview",
            price_watchlist=("MNQ",),
            tradingview_url=site.url,
            tradingview_scanner_url=site.url,
            tradingview_ws_url=quotes.url,
            **changes,
        )
        cookies = CookieStore(sessions, s.encryption_key, every_s=0.1)
        sources = build_sources(s, cookies)
        sources.primary.backoff_base_s = sources.primary.backoff_max_s = (
            0.2  # reconnect quickly in tests
        )
        sources.fallback.interval_s = 0.1
        feed = Feed(
            s,
            redis_client,
            sources.primary,
            sources.fallback,
            fallback_grace_s=0.3,
            session_state=sources.session_state,
            housekeeping=sources.housekeeping,
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=feed.run, args=(stop,), kwargs={"every_s": 0.05}, daemon=True
        )
        thread.start()
        running.append((stop, thread))
        return feed

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(10)


def make_operator(sessions, user):
    """What `justtrades user admin EMAIL` does; returns the user."""
    with db.transaction(sessions) as s:
        s.execute(update(User).where(User.id == user.id).values(is_admin=True))
    return user


def store_cookies(sessions, settings, user, sessionid="sess-1", sign="sign-1"):
    sealed = SecretBox(settings.encryption_key).encrypt(
        json.dumps({"sessionid": sessionid, "sessionid_sign": sign})
    )
    with db.transaction(sessions) as s:
        row = s.get(TradingViewSession, user.id)
        if row:
            row.cookies_encrypted = sealed
        else:
            s.add(TradingViewSession(user_id=user.id, cookies_encrypted=sealed))


def last_tick(redis_client, settings) -> TickMessage | None:
    entries = redis_client.xrevrange(settings.stream(streams.TICKS), count=1)
    return TickMessage.from_fields(entries[0][1]) if entries else None


def test_without_cookies_quotes_are_delayed_and_flagged(
    tradingview, feed_for, redis_client, settings, market
):
    feed = feed_for(*tradingview)
    wait_for(lambda: feed.status()["connected"], "the socket")
    market.set_price("CME_MINI:MNQ1!", "25641.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25641 and t, "the new price"
    )
    assert tick.delayed and tick.source == "tradingview"
    status = feed.status()
    assert status["authenticated"] is False and status["delayed_symbols"] == ["MNQ"]
    assert status["tradingview_session"]["configured"] is False


def test_stored_cookies_give_real_time_quotes(
    tradingview, feed_for, redis_client, settings, sessions, make_user, market
):
    user = make_operator(sessions, make_user())
    store_cookies(sessions, settings, user)
    feed = feed_for(*tradingview)
    wait_for(lambda: feed.status()["authenticated"], "an authenticated connection")
    market.set_price("CME_MINI:MNQ1!", "25642.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25642 and t, "the new price"
    )
    assert not tick.delayed
    session = feed.status()["tradingview_session"]
    assert (
        "user_id" not in session
        and session["authenticated"] is True
        and session["token_expires_at"]
    )


def test_scanner_takes_over_while_the_socket_is_down_and_hands_back(
    tradingview, feed_for, redis_client, settings, market
):
    site, quotes = tradingview
    feed = feed_for(site, quotes)
    wait_for(lambda: feed.status()["connected"], "the socket")
    port = int(quotes.url.split(":")[2].split("/")[0])
    quotes.stop()
    wait_for(lambda: feed.fallback_active, "the fallback to start")
    market.set_price("CME_MINI:MNQ1!", "25650.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25650 and t,
        "a scanner tick",
    )
    assert tick.source == "scanner"
    assert feed.status()["active_source"] == "scanner"

    revived = QuoteServer(market, heartbeat_interval_s=0.2, port=port).start()
    try:
        wait_for(
            lambda: feed.status()["connected"] and not feed.fallback_active,
            "the socket to take back over",
            15,
        )
        market.set_price("CME_MINI:MNQ1!", "25651.00")
        tick = wait_for(
            lambda: (t := last_tick(redis_client, settings)) and t.price == 25651 and t,
            "a socket tick",
        )
        assert tick.source == "tradingview"
        assert feed.status()["reconnects"] >= 1
    finally:
        revived.stop()


def test_signed_out_cookies_are_reported_and_the_feed_goes_on_anonymously(
    tradingview, feed_for, redis_client, settings, sessions, make_user, market
):
    user = make_operator(sessions, make_user())
    store_cookies(sessions, settings, user)
    feed = feed_for(*tradingview)
    wait_for(lambda: feed.status()["authenticated"], "an authenticated connection")
    market.end_session("sess-1")  # the user signed out in the browser: cookies and token are dead
    tradingview[1].drop_all(abrupt=False)
    wait_for(lambda: feed.status()["tradingview_session"]["error"], "the session error", 15)
    assert (
        "did not accept the stored session cookies" in feed.status()["tradingview_session"]["error"]
    )
    market.set_price("CME_MINI:MNQ1!", "25660.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25660 and t,
        "an anonymous tick",
        15,
    )
    assert tick.delayed

    # New cookies are picked up without a restart, and without waiting for a disconnect.
    market.add_account("sess-2", make_jwt(1, int(time.time()) + 3600), 3600, "sign-2")
    store_cookies(sessions, settings, user, "sess-2", "sign-2")
    wait_for(lambda: feed.status()["authenticated"] is True, "real time again", 15)


def test_cookies_saved_while_streaming_anonymously_switch_to_real_time(
    tradingview, feed_for, redis_client, settings, sessions, make_user, market
):
    feed = feed_for(*tradingview)
    wait_for(lambda: feed.status()["connected"], "the socket")
    assert feed.status()["authenticated"] is False
    store_cookies(sessions, settings, make_operator(sessions, make_user()))
    wait_for(
        lambda: feed.status()["authenticated"] is True, "the feed to log in with the new cookies"
    )
    market.set_price("CME_MINI:MNQ1!", "25670.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25670 and t,
        "a real-time tick",
    )
    assert not tick.delayed


def test_only_an_operators_cookies_are_used_however_recent_anyone_elses_are(
    sessions, settings, make_user
):
    operator = make_operator(sessions, make_user(email="operator@example.com"))
    user = make_user(email="user@example.com")
    store_cookies(sessions, settings, operator, "sess-1", "sign-1")
    store = CookieStore(sessions, settings.encryption_key, every_s=0)

    store_cookies(sessions, settings, user, "expired", "expired-sign")  # newer, not an operator's
    assert store.current() == StoredCookies(operator.id, "sess-1", "sign-1")

    other = make_operator(sessions, make_user(email="second-operator@example.com"))
    store_cookies(sessions, settings, other, "sess-2", "sign-2")
    assert store.current() == StoredCookies(other.id, "sess-2", "sign-2")


def test_a_users_own_cookies_leave_the_shared_feed_anonymous(
    tradingview, feed_for, redis_client, settings, sessions, make_user, market
):
    store_cookies(sessions, settings, make_user())  # valid cookies, but not an operator's
    feed = feed_for(*tradingview)
    wait_for(lambda: feed.status()["connected"], "the socket")
    assert feed.status()["tradingview_session"]["configured"] is False
    market.set_price("CME_MINI:MNQ1!", "25680.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25680 and t, "the new price"
    )
    assert tick.delayed
