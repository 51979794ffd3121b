"""The two-step TradingView sign-in (reference C.4): the feed's real client against the local
TradingView, then the feed renewing its own session as `justtrades price-feed` wires it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from libs.common import events, streams
from libs.common.authenticator import current_code
from libs.common.notify import rules
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import Position, TradingViewCredentials, TradingViewSession
from libs.common.streams import SignalMessage
from services.position_engine.engine import PositionEngine
from services.price_feed.feed import Feed
from services.price_feed.service import CookieStore, build_sources
from services.price_feed.tradingview.auth import AuthTokenKeeper, SessionCookies, fetch_auth_token
from services.price_feed.tradingview.renewal import Outcome, SessionRenewer, StoredCredentials
from services.price_feed.tradingview.signin import (
    Credentials,
    SignInDeferred,
    SignInStopped,
    sign_in,
)
from simulators.tradingview.http import SiteServer
from simulators.tradingview.market import Market
from simulators.tradingview.quote_server import QuoteServer
from simulators.tradingview.tokens import make_jwt
from tests.integration.test_tradingview_feed import last_tick, make_operator, store_cookies
from tests.polling import wait_for

USERNAME, PASSWORD = "trader7", "s3cret-password-for-tv"
SECRET = "JBSWY3DPEHPK3PXPKRUGS4TF"
OTHER_SECRET = "KRSXG5CTMVRXEZLUKRSXG5CT"  # a valid key, but not this account's
CREDENTIALS = Credentials(USERNAME, PASSWORD, SECRET, "2026-12-03T22:00:00+00:00")


@pytest.fixture
def market() -> Market:
    m = Market()
    m.list("CME_MINI:MNQ1!", "25640.25", "Micro E-mini Nasdaq-100", pricescale=100, minmov=25)
    m.add_user(USERNAME, PASSWORD, SECRET, user_id=1, email="trader7@example.com")
    m.add_account("sess-1", make_jwt(1, int(time.time()) + 3600), 3600, "sign-1")
    return m


@pytest.fixture
def site(market):
    with SiteServer(market) as server:
        yield server


# --- the client against the simulator -----------------------------------------------------


def test_password_then_code_gives_a_session_the_home_page_accepts(market, site):
    cookies = sign_in(site.url, CREDENTIALS)
    assert site.signins == ["2FA_required", "signed_in"]
    assert site.last_headers["signin"]["Referer"] == site.url
    assert cookies.sessionid in market.accounts and cookies.sessionid_sign
    token = fetch_auth_token(site.url, cookies)
    assert market.token_valid(token.value)


def test_the_first_step_asks_for_the_code_with_provisional_cookies(site):
    import requests

    first = requests.post(
        site.url + "/accounts/signin/",
        data={"username": USERNAME, "password": PASSWORD, "remember": "on"},
        timeout=5,
    )
    assert first.json() == {"error": "2FA_required", "code": "2FA_required"}
    assert first.cookies.get("sessionid") and first.cookies.get("sessionid_sign")
    # the provisional cookies are not a session: the home page does not know them
    home = requests.get(site.url + "/", cookies=first.cookies, timeout=5)
    assert "unauthorized_user_token" in home.text


@pytest.mark.parametrize(("offset_s", "accepted"), [(-30, True), (30, True), (-95, False)])
def test_a_code_one_step_early_or_late_is_accepted_but_not_three(market, site, offset_s, accepted):
    def code(secret: str) -> str:
        return current_code(secret, time.time() + offset_s)

    if accepted:
        assert sign_in(site.url, CREDENTIALS, code=code).sessionid in market.accounts
    else:
        with pytest.raises(SignInStopped, match="refused the authenticator code"):
            sign_in(site.url, CREDENTIALS, code=code)


def test_wrong_password_captcha_and_rate_limit_each_mean_what_the_feed_should_do(site):
    with pytest.raises(SignInStopped, match="username or password"):
        sign_in(site.url, replace(CREDENTIALS, password="wrong"))
    site.captcha_required = True
    with pytest.raises(SignInStopped, match="captcha"):
        sign_in(site.url, CREDENTIALS)
    site.captcha_required = False
    site.signin_limit = len(site.signins)  # the window is full
    with pytest.raises(SignInDeferred) as deferred:
        sign_in(site.url, CREDENTIALS)
    assert deferred.value.rate_limited and site.signins[-1] == "rate_limit"
    assert site.last_headers["signin"] is not None
    for message in site.signins:
        assert PASSWORD not in message


def test_an_account_without_two_factor_signs_in_at_the_first_step(market, site):
    market.add_user("plain", "pw-plain", None, user_id=2)
    cookies = sign_in(site.url, Credentials("plain", "pw-plain", SECRET))
    assert site.signins == ["signed_in"] and cookies.sessionid in market.accounts


# --- the feed renewing its session ------------------------------------------------------


@pytest.fixture
def tradingview(market, site):
    quotes = QuoteServer(market, heartbeat_interval_s=0.2).start()
    yield site, quotes
    quotes.stop()


@pytest.fixture
def feed_for(settings, redis_client, sessions):
    running = []

    def start(site, quotes) -> Feed:
        s = replace(
            settings,
            price_source="tradingview",
            price_watchlist=("MNQ",),
            tradingview_url=site.url,
            tradingview_scanner_url=site.url,
            tradingview_ws_url=quotes.url,
        )
        sources = build_sources(s, CookieStore(sessions, s.encryption_key, every_s=0.1))
        sources.primary.backoff_base_s = sources.primary.backoff_max_s = 0.2
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


def store_credentials(sessions, settings, user, secret=SECRET) -> None:
    """What POST /api/tradingview/credentials stores."""
    sealed = SecretBox(settings.encryption_key).encrypt(
        json.dumps({"username": USERNAME, "password": PASSWORD, "totp_secret": secret})
    )
    with db.transaction(sessions) as s:
        s.merge(
            TradingViewCredentials(
                user_id=user.id,
                secrets_encrypted=sealed,
                username_hint="tr…",
                saved_at=datetime.now(UTC),
                renewals_stopped=False,
            )
        )


def stored_session(sessions, settings, user) -> tuple[str, dict]:
    with sessions() as s:
        row = s.get(TradingViewSession, user.id)
        box = SecretBox(settings.encryption_key)
        return row.source, json.loads(box.decrypt(row.cookies_encrypted))


def price_statuses(redis_client, settings) -> list[dict]:
    return [
        json.loads(f["data"])
        for _, f in redis_client.xrange(settings.stream(streams.EVENTS))
        if f["type"] == events.PRICE_STATUS
    ]


def open_long(settings, redis_client, recorder) -> None:
    signal = SignalMessage(
        signal_id=str(uuid.uuid4()),
        recorder_id=recorder.id,
        action="buy",
        ticker="MNQ1!",
        symbol="MNQ",
        price=Decimal("25640"),
        qty=None,
        position_size=None,
        market_position=None,
        received_at=int(time.time() * 1000),
        raw="{}",
    )
    redis_client.xadd(settings.stream(streams.SIGNALS), signal.to_fields())


def drain(engine: PositionEngine) -> None:
    while engine.step(block_ms=None):
        pass


def position(sessions) -> Position:
    with sessions() as s:
        return s.scalars(select(Position)).one()


def test_cookies_expiring_mid_stream_are_renewed_with_the_code_and_exits_keep_working(
    tradingview, feed_for, redis_client, settings, sessions, make_user, make_recorder, market
):
    # Given an operator's cookies and sign-in, a feed streaming real-time, and an open long whose
    # recorder takes no exit on delayed quotes, its take-profit 4 ticks up
    site, quotes = tradingview
    operator = make_operator(sessions, make_user())
    store_cookies(sessions, settings, operator)
    store_credentials(sessions, settings, operator)
    engine = PositionEngine(settings, sessions, redis_client, consumer="engine-1")
    engine.prepare()
    recorder = make_recorder(user=operator, tp_ticks=4, allow_delayed_exits=False)
    feed = feed_for(site, quotes)
    wait_for(lambda: feed.status()["authenticated"], "an authenticated connection")
    open_long(settings, redis_client, recorder)
    drain(engine)
    assert position(sessions).status == "open"

    # When the session ends mid-stream (signed out elsewhere) and the socket drops
    market.end_session("sess-1")
    quotes.drop_all(abrupt=False)
    ended_at = time.monotonic()

    # Then the feed signs in with the code, once, and streams real-time again within seconds,
    # without a restart
    wait_for(
        lambda: (
            feed.status()["tradingview_session"]["source"] == "sign-in"
            and feed.status()["authenticated"] is True
        ),
        "real time again through a sign-in",
        15,
    )
    assert time.monotonic() - ended_at < 10
    assert site.signins == ["2FA_required", "signed_in"]
    source, cookies = stored_session(sessions, settings, operator)
    assert source == "sign-in" and cookies["sessionid"] in market.accounts
    session = feed.status()["tradingview_session"]
    assert session["sign_in"]["renewed_at"] and session["sign_in"]["renewals_stopped"] is False
    market.set_price("CME_MINI:MNQ1!", "25642.00")
    tick = wait_for(
        lambda: (t := last_tick(redis_client, settings)) and t.price == 25642 and t,
        "a real-time tick",
    )
    assert not tick.delayed

    # And the position takes its take-profit on that real-time tick
    drain(engine)
    closed = position(sessions)
    assert (closed.status, closed.exit_reason, closed.exit_price) == ("closed", "tp", 25641)


def test_a_wrong_authenticator_key_costs_one_attempt_and_says_why(
    tradingview, feed_for, redis_client, settings, sessions, make_user, market
):
    # Given expired cookies and a sign-in whose key is not the account's
    site, quotes = tradingview
    operator = make_operator(sessions, make_user())
    market.end_session("sess-1")
    store_cookies(sessions, settings, operator)
    store_credentials(sessions, settings, operator, secret=OTHER_SECRET)

    # When the feed runs for a few seconds and its socket drops again and again
    feed = feed_for(site, quotes)
    wait_for(lambda: feed.status()["signin_failed"], "the sign-in to fail", 15)
    for _ in range(5):
        quotes.drop_all(abrupt=True)
        time.sleep(0.6)

    # Then the site saw exactly one sign-in, the code refused, and no retry
    assert site.signins == ["2FA_required", "invalid_code"]
    status = feed.status()
    assert "refused the authenticator code" in status["signin_failed"]
    assert status["tradingview_session"]["sign_in"]["renewals_stopped"] is True
    assert status["authenticated"] is False and status["delayed_symbols"] == ["MNQ"]
    with sessions() as s:
        row = s.get(TradingViewCredentials, operator.id)
        assert row.renewals_stopped and "authenticator code" in row.last_error
        assert row.last_attempt_at is not None and row.renewed_at is None
    assert any(p.get("signin_failed") for p in price_statuses(redis_client, settings))


def test_a_rate_limited_sign_in_waits_instead_of_retrying(
    tradingview, feed_for, settings, sessions, make_user, market
):
    site, quotes = tradingview
    site.signin_limit = 0  # every sign-in request is answered 429
    operator = make_operator(sessions, make_user())
    market.end_session("sess-1")
    store_cookies(sessions, settings, operator)
    store_credentials(sessions, settings, operator)
    feed = feed_for(site, quotes)
    wait_for(
        lambda: (feed.status()["tradingview_session"]["sign_in"] or {}).get("last_error"),
        "the sign-in to be refused",
        15,
    )
    for _ in range(4):
        quotes.drop_all(abrupt=True)
        time.sleep(0.6)
    assert site.signins == ["rate_limit"]
    sign_in_state = feed.status()["tradingview_session"]["sign_in"]
    assert sign_in_state["renewals_stopped"] is False and sign_in_state["next_attempt_at"]
    assert feed.status()["signin_failed"] is None  # it will try again later by itself


def test_a_captcha_stops_renewals_until_the_sign_in_is_saved_again(
    tradingview, feed_for, redis_client, settings, sessions, client, alice, market
):
    # Given an operator whose cookies expired, and TradingView asking for a captcha
    site, quotes = tradingview
    operator, key = alice
    make_operator(sessions, operator)
    market.end_session("sess-1")
    store_cookies(sessions, settings, operator)
    site.captcha_required = True
    saved = client.post(
        "/api/tradingview/credentials",
        json={"username": USERNAME, "password": PASSWORD, "totp_secret": SECRET},
        headers=key,
    )
    assert saved.status_code == 200

    # When the feed runs
    feed = feed_for(site, quotes)
    wait_for(lambda: feed.status()["signin_failed"], "the captcha to stop the sign-in", 15)

    # Then quotes stay delayed, the user is told (price.status, the session API) with the steps
    # to paste cookies, and no further attempt is made while the socket reconnects
    for _ in range(4):
        quotes.drop_all(abrupt=True)
        time.sleep(0.6)
    assert site.signins == ["recaptcha_required"]
    assert "captcha" in feed.status()["signin_failed"]
    assert feed.status()["delayed_symbols"] == ["MNQ"]
    assert any(
        "captcha" in (p.get("signin_failed") or "") for p in price_statuses(redis_client, settings)
    )
    view = client.get("/api/tradingview/session", headers=key).get_json()
    assert view["renewals_stopped"] is True and "captcha" in view["last_error"]
    assert "sessionid_sign" in view["how_to_refresh"]
    # and the notifier's rules make exactly one feed_signin_failed of what the feed published
    published = price_statuses(redis_client, settings)
    told = [
        n
        for previous, status in zip([None, *published], published, strict=False)
        for n in rules.feed_notices(previous, status)
        if n.event == "feed_signin_failed"
    ]
    assert len(told) == 1
    assert "paste the sessionid" in rules.message_text(told[0].event, told[0].data)

    # When the operator solves the captcha in a browser and saves the sign-in again
    site.captcha_required = False
    client.post(
        "/api/tradingview/credentials",
        json={"username": USERNAME, "password": PASSWORD, "totp_secret": SECRET},
        headers=key,
    )

    # Then the feed signs in at once and streams real-time again
    wait_for(lambda: feed.status()["authenticated"] is True, "real time after saving again", 15)
    assert site.signins == ["recaptcha_required", "2FA_required", "signed_in"]
    assert feed.status()["signin_failed"] is None
    view = client.get("/api/tradingview/session", headers=key).get_json()
    assert view["source"] == "sign-in" and view["renewed_at"] and not view["renewals_stopped"]


class MemoryStore:
    """A RenewalStore without PostgreSQL: the credentials, the cookies saved, the outcomes."""

    def __init__(self, credentials: Credentials) -> None:
        self.stored = StoredCredentials(1, credentials)
        self.saved: list[SessionCookies] = []
        self.outcomes: list[Outcome] = []

    def credentials(self) -> StoredCredentials:
        return self.stored

    def save_session(self, user_id: int, cookies: SessionCookies) -> None:
        self.saved.append(cookies)

    def record(self, stored: StoredCredentials, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def test_a_token_about_to_expire_that_the_site_keeps_serving_is_renewed_by_signing_in(market, site):
    # Given cookies whose session ends in two minutes: the home page serves a token that
    # expires inside the keeper's five-minute margin
    cookies = SessionCookies("short-lived", "short-sign")
    market.add_account(
        cookies.sessionid, make_jwt(1, int(time.time()) + 120), 120, cookies.sessionid_sign
    )
    store = MemoryStore(CREDENTIALS)
    current = {"cookies": cookies}

    def provider() -> SessionCookies:
        return store.saved[-1] if store.saved else current["cookies"]

    keeper = AuthTokenKeeper(site.url, provider, renewer=SessionRenewer(site.url, store))

    # When the socket asks for a token
    token = keeper.token()

    # Then the keeper signed in once and hands out the new session's long-lived token
    assert site.signins == ["2FA_required", "signed_in"]
    assert token is not None and token != market.accounts[cookies.sessionid].token
    assert keeper.state()["authenticated"] is True
    assert [o.error for o in store.outcomes] == [None]
    # and asking again uses it, without another sign-in
    assert keeper.token() == token and len(site.signins) == 2
