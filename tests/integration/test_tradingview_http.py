"""The real auth client and scanner source over loopback HTTP against the local TradingView."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from services.price_feed.quotes import Quote
from services.price_feed.tradingview.auth import (
    AuthError,
    AuthTokenKeeper,
    AuthUnavailable,
    CookiesRejected,
    SessionCookies,
    fetch_auth_token,
)
from services.price_feed.tradingview.scanner import ScannerSource
from simulators.tradingview.http import SiteServer
from simulators.tradingview.market import Account, Market
from simulators.tradingview.tokens import make_jwt
from tests.polling import wait_for

COOKIES = SessionCookies("sess-alice", "sign-alice")
TTL_S = 4 * 3600


def open_account(
    market: Market, cookies: SessionCookies, user_id: int = 7, ttl_s: int = TTL_S
) -> Account:
    """An account whose JWT `exp` and the market's own expiry agree."""
    token = make_jwt(user_id, int(time.time()) + ttl_s)
    return market.add_account(cookies.sessionid, token, ttl_s, cookies.sessionid_sign)


@pytest.fixture
def market() -> Market:
    m = Market()
    m.list("CME_MINI:MNQ1!", "21034.25", "Micro E-mini Nasdaq-100")
    m.list("CME_MINI:MES1!", "5871.50", "Micro E-mini S&P 500")
    m.list("NYMEX:CL1!", "71.42", "Crude Oil")
    return m


@pytest.fixture
def site(market) -> Iterator[SiteServer]:
    with SiteServer(market) as server:
        yield server


# --- cookies → token ----------------------------------------------------------------------


def test_known_cookies_give_the_accounts_token_with_its_expiry(market, site):
    account = open_account(market, COOKIES)

    token = fetch_auth_token(site.url, COOKIES)

    assert token.value == account.token
    assert token.expires_at == datetime.fromtimestamp(account.token_expires_at, UTC)
    assert market.token_valid(token.value)
    sent = site.last_headers["home"]
    assert sent["Cookie"] == "sessionid=sess-alice; sessionid_sign=sign-alice"
    assert sent["User-Agent"].startswith("Mozilla/5.0")


def test_the_page_embeds_the_user_as_compact_json_like_the_real_site(market, site):
    account = open_account(market, COOKIES)
    cookies = {"sessionid": COOKIES.sessionid, "sessionid_sign": COOKIES.sessionid_sign}

    page = requests.get(site.url + "/", cookies=cookies, timeout=2).text

    # third-party clients look for exactly `"auth_token":"…"`, with no space after the colon
    assert f'"auth_token":"{account.token}"' in page
    assert '"id":7,' in page and '"username":"trader7"' in page


def test_a_wrong_signature_is_rejected_when_the_account_has_one(market, site):
    open_account(market, COOKIES)
    with pytest.raises(CookiesRejected):
        fetch_auth_token(site.url, SessionCookies("sess-alice", "forged"))


def test_region_redirect_is_followed_with_the_same_cookies(market):
    account = open_account(market, COOKIES)
    with SiteServer(market, redirect_to_region="fr") as site:
        token = fetch_auth_token(site.url, COOKIES)
        assert token.value == account.token
        assert site.count("home") == 2
        assert "sessionid=sess-alice" in site.last_headers["home"]["Cookie"]


def test_a_redirect_loop_is_an_auth_error(market):
    open_account(market, COOKIES)
    with SiteServer(market, redirect_loop=True) as site, pytest.raises(AuthError, match="loop"):
        fetch_auth_token(site.url, COOKIES)
    assert site.count("home") <= 6


@pytest.mark.parametrize("marker", [True, False])
def test_unknown_cookies_are_rejected_with_the_steps_to_fix_them(market, marker):
    with (
        SiteServer(market, anonymous_marker=marker) as site,
        pytest.raises(CookiesRejected) as caught,
    ):
        fetch_auth_token(site.url, SessionCookies("never-seen"))
    steps = "copy fresh sessionid and sessionid_sign cookies from a logged-in browser"
    assert steps in str(caught.value)


def test_cookies_of_a_signed_out_session_are_rejected(market, site):
    open_account(market, COOKIES)
    fetch_auth_token(site.url, COOKIES)
    market.end_session(COOKIES.sessionid)
    with pytest.raises(CookiesRejected):
        fetch_auth_token(site.url, COOKIES)


def test_site_errors_and_an_unreachable_site_are_unavailable_not_rejected(market, site):
    open_account(market, COOKIES)
    site.fail_next(1, 503)
    with pytest.raises(AuthUnavailable, match="HTTP 503"):
        fetch_auth_token(site.url, COOKIES)

    dead = SiteServer(market).start()
    url = dead.url
    dead.stop()
    with pytest.raises(AuthUnavailable, match="could not be reached"):
        fetch_auth_token(url, COOKIES, timeout=2)


# --- AuthTokenKeeper ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_keeper_caches_the_token_until_it_nears_expiry(market, site):
    account = open_account(market, COOKIES)
    clock = FakeClock()
    keeper = AuthTokenKeeper(site.url, lambda: COOKIES, refresh_margin_s=300, clock=clock)

    assert keeper.token() == account.token
    assert keeper.token() == account.token
    clock.now = account.token_expires_at - 301
    assert keeper.token() == account.token
    assert site.count("home") == 1

    fresh = market.rotate_token(COOKIES.sessionid, TTL_S)
    clock.now = account.token_expires_at - 299  # inside the margin: time to fetch again
    assert keeper.token() == fresh
    assert site.count("home") == 2
    state = keeper.state()
    assert state["configured"] is True and state["authenticated"] is True and state["error"] is None
    expires = datetime.fromtimestamp(account.token_expires_at, UTC)
    assert state["token_expires_at"] == expires.isoformat()


def test_keeper_fetches_again_when_the_cookies_change(market, site):
    open_account(market, COOKIES)
    bob = SessionCookies("sess-bob")
    bob_account = open_account(market, bob, user_id=8)
    stored = {"cookies": COOKIES}
    keeper = AuthTokenKeeper(site.url, lambda: stored["cookies"])

    keeper.token()
    stored["cookies"] = SessionCookies("sess-alice", "sign-alice")  # same values, read again
    keeper.token()
    assert site.count("home") == 1

    stored["cookies"] = bob
    assert keeper.token() == bob_account.token
    assert keeper.token() == bob_account.token
    assert site.count("home") == 2


def test_keeper_stops_asking_with_rejected_cookies_until_they_change(market, site):
    stored = {"cookies": SessionCookies("expired-session", "old-sign")}
    keeper = AuthTokenKeeper(site.url, lambda: stored["cookies"])

    assert keeper.token() is None
    assert keeper.token() is None
    assert site.count("home") == 1
    state = keeper.state()
    assert state["authenticated"] is False and "expired or were signed out" in state["error"]

    account = open_account(market, COOKIES)
    stored["cookies"] = COOKIES
    assert keeper.state()["authenticated"] is None  # new cookies, not tried yet
    assert keeper.token() == account.token
    assert site.count("home") == 2
    assert keeper.state()["authenticated"] is True


def test_keeper_without_cookies_is_anonymous_and_asks_nothing(site):
    keeper = AuthTokenKeeper(site.url, lambda: None)
    assert keeper.token() is None
    assert keeper.state() == {
        "configured": False,
        "authenticated": False,
        "token_expires_at": None,
        "error": None,
    }
    assert site.count("home") == 0


def test_keeper_waits_before_retrying_an_unavailable_site(market, site):
    account = open_account(market, COOKIES)
    clock = FakeClock()
    keeper = AuthTokenKeeper(site.url, lambda: COOKIES, clock=clock, retry_after_s=30)
    site.fail_next(1, 500)

    assert keeper.token() is None
    assert keeper.token() is None
    assert site.count("home") == 1
    assert "HTTP 500" in keeper.state()["error"]
    clock.now += 31
    assert keeper.token() == account.token


# --- scanner ------------------------------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.quotes: list[Quote] = []
        self._lock = threading.Lock()

    def __call__(self, quote: Quote) -> None:
        with self._lock:
            self.quotes.append(quote)

    def of(self, root: str) -> list[Quote]:
        with self._lock:
            return [q for q in self.quotes if q.symbol == root]


@pytest.fixture
def run_scanner(site) -> Iterator[Callable[..., tuple[ScannerSource, Collector]]]:
    started: list[ScannerSource] = []

    def run(
        symbols: set[str], cookies: SessionCookies | None = None, **kw
    ) -> tuple[ScannerSource, Collector]:
        scanner = ScannerSource(
            site.url, lambda: cookies, interval_s=kw.pop("interval_s", 0.03), **kw
        )
        scanner.set_symbols(symbols)
        collector = Collector()
        scanner.start(collector)
        started.append(scanner)
        return scanner, collector

    yield run
    for scanner in started:
        scanner.stop()


def test_scanner_emits_only_when_close_changes(market, site, run_scanner):
    scanner, got = run_scanner({"MNQ"})
    wait_for(lambda: got.of("MNQ"))
    polls = scanner.polls
    wait_for(lambda: scanner.polls >= polls + 3)
    assert len(got.of("MNQ")) == 1
    first = got.of("MNQ")[0]
    assert first.price == Decimal("21034.25") and first.source == "scanner"
    assert abs(first.ts - time.time() * 1000) < 5000

    market.set_price("CME_MINI:MNQ1!", "21040.50")
    wait_for(lambda: len(got.of("MNQ")) == 2)
    assert got.of("MNQ")[1].price == Decimal("21040.50")


def test_anonymous_polling_is_flagged_delayed(site, run_scanner):
    scanner, got = run_scanner({"MNQ"})
    wait_for(lambda: got.of("MNQ"))
    assert got.of("MNQ")[0].delayed is True
    status = scanner.status()
    assert status.connected is True and status.authenticated is False
    assert status.delayed_symbols == {"MNQ"}
    sent = site.last_headers["scan"]
    assert "Cookie" not in sent
    assert sent["Origin"] == "https://www.tradingview.com"
    assert sent["Referer"].startswith("https://www.tradingview.com")
    assert sent["User-Agent"].startswith("Mozilla/5.0")


def test_polling_with_accepted_cookies_gets_streaming_data(market, site, run_scanner):
    open_account(market, COOKIES)
    scanner, got = run_scanner({"MNQ", "CL"}, COOKIES)
    wait_for(lambda: got.of("MNQ") and got.of("CL"))
    assert not got.of("MNQ")[0].delayed and not got.of("CL")[0].delayed
    status = scanner.status()
    assert status.authenticated is True and status.delayed_symbols == set()
    assert site.last_headers["scan"]["Cookie"] == "sessionid=sess-alice; sessionid_sign=sign-alice"


def test_polling_with_unknown_cookies_stays_delayed(site, run_scanner):
    scanner, got = run_scanner({"MNQ"}, SessionCookies("expired-session"))
    wait_for(lambda: got.of("MNQ"))
    assert got.of("MNQ")[0].delayed is True
    assert scanner.status().authenticated is False


def test_all_symbols_go_in_one_request_per_poll(site, run_scanner):
    scanner, got = run_scanner({"MNQ", "MES", "CL"})
    wait_for(lambda: scanner.polls >= 3)
    scanner.stop()
    assert site.count("scan") == scanner.polls
    for body in site.scan_bodies:
        assert body["symbols"]["tickers"] == ["NYMEX:CL1!", "CME_MINI:MES1!", "CME_MINI:MNQ1!"]
        assert body["symbols"]["query"] == {"types": []}
        assert body["columns"] == ["close", "update_mode", "update_time"]
    assert {q.symbol for q in got.quotes} == {"MNQ", "MES", "CL"}


def test_an_unknown_column_falls_back_to_close_for_good(market):
    with SiteServer(market, unknown_columns={"update_mode"}) as site:
        scanner = ScannerSource(site.url, interval_s=0.03)
        scanner.set_symbols({"MNQ"})
        got = Collector()
        scanner.start(got)
        try:
            wait_for(lambda: got.of("MNQ") and len(site.scan_bodies) >= 4)
        finally:
            scanner.stop()
        assert got.of("MNQ")[0].price == Decimal("21034.25")
        assert got.of("MNQ")[0].delayed is True  # anonymous, and the answer cannot say otherwise
        columns = [body["columns"] for body in site.scan_bodies]
        assert columns[0] == ["close", "update_mode", "update_time"]
        assert all(c == ["close"] for c in columns[1:])
        assert scanner.status().error is None


def test_rate_limiting_backs_off_exponentially_then_recovers(site):
    scanner = ScannerSource(site.url, interval_s=0.1, max_backoff_s=0.5)
    scanner.set_symbols({"MNQ"})
    got = Collector()
    site.fail_next(4, 429, route="scan")

    waits = [scanner.poll(got) for _ in range(4)]
    assert waits == [0.2, 0.4, 0.5, 0.5]
    status = scanner.status()
    assert status.connected is False and "429" in status.error
    assert got.quotes == []

    assert scanner.poll(got) == 0.1
    assert scanner.status().connected is True and scanner.status().error is None
    assert scanner.status().reconnects == 1
    assert [q.price for q in got.quotes] == [Decimal("21034.25")]


def test_server_errors_and_empty_answers_back_off_too(site):
    scanner = ScannerSource(site.url, interval_s=0.1)
    scanner.set_symbols({"MNQ"})
    site.fail_next(1, 502, route="scan")
    assert scanner.poll(Collector()) == 0.2
    assert "HTTP 502" in scanner.status().error
    site.fail_next(1, 200, route="scan")  # 200 with an empty body
    assert scanner.poll(Collector()) == 0.4
    assert "empty" in scanner.status().error


def test_an_unreachable_scanner_is_reported(market):
    dead = SiteServer(market).start()
    url = dead.url
    dead.stop()
    scanner = ScannerSource(url, interval_s=0.1, timeout_s=2)
    scanner.set_symbols({"MNQ"})
    assert scanner.poll(Collector()) == 0.2
    assert scanner.status().connected is False
    assert "cannot be reached" in scanner.status().error


def test_background_polling_recovers_after_rate_limiting(site, run_scanner):
    site.fail_next(2, 429, route="scan")
    scanner, got = run_scanner({"MNQ"}, interval_s=0.02)
    wait_for(lambda: got.of("MNQ"))
    assert site.count("scan") >= 3
    assert scanner.status().connected is True and scanner.status().reconnects == 1


def test_set_symbols_changes_the_tickers_of_the_next_poll(site, run_scanner):
    scanner, got = run_scanner({"MNQ"})
    wait_for(lambda: got.of("MNQ"))
    scanner.set_symbols({"CL"})
    wait_for(lambda: got.of("CL"))
    assert site.scan_bodies[-1]["symbols"]["tickers"] == ["NYMEX:CL1!"]
    assert site.scan_bodies[0]["symbols"]["tickers"] == ["CME_MINI:MNQ1!"]


def test_an_unknown_ticker_is_just_missing(site, run_scanner):
    scanner, got = run_scanner({"MNQ", "ZZZ"})
    wait_for(lambda: got.of("MNQ"))
    assert "ZZZ" in site.scan_bodies[-1]["symbols"]["tickers"]
    assert got.of("ZZZ") == []
    assert scanner.status().failed_symbols == {"ZZZ"}
    assert scanner.status().connected is True


def test_no_wanted_symbols_means_no_request(site):
    scanner = ScannerSource(site.url, interval_s=0.1)
    assert scanner.poll(Collector()) == 0.1
    assert site.count("scan") == 0


def test_stop_returns_promptly(site):
    scanner = ScannerSource(site.url, interval_s=30)
    scanner.set_symbols({"MNQ"})
    got = Collector()
    scanner.start(got)
    wait_for(lambda: got.quotes)
    started = time.monotonic()
    scanner.stop()
    assert time.monotonic() - started < 5  # not the 30 s poll interval


# --- the simulator's single-symbol form (D.2) ----------------------------------------------


def test_single_symbol_endpoint_answers_flat_fields(site):
    def get(symbol: str, fields: str, **extra: str) -> requests.Response:
        params = {"symbol": symbol, "fields": fields, **extra}
        return requests.get(f"{site.url}/symbol", params=params, timeout=5)

    found = get("CME_MINI:MNQ1!", "close,update_mode,update_time,pricescale", no_404="true")
    assert found.json()["close"] == 21034.25
    assert found.json()["update_mode"] == "delayed_streaming_600"
    assert get("X:NOPE1!", "close", no_404="true").json() == {}
    assert get("X:NOPE1!", "close").status_code == 404
    bad = get("CME_MINI:MNQ1!", "change.5")
    assert bad.status_code == 400 and bad.json()["error"] == 'Unknown field "change.5"'


def test_scan_endpoint_rejects_an_unknown_column_whole(site):
    body = {
        "symbols": {"tickers": ["CME_MINI:MNQ1!"], "query": {"types": []}},
        "columns": ["close", "change.5"],
    }
    answer = requests.post(f"{site.url}/global/scan", data=json.dumps(body), timeout=5)
    assert answer.status_code == 400
    assert answer.json() == {"totalCount": 0, "error": 'Unknown field "change.5"', "data": None}
