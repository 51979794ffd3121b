"""The real Tradovate market-data client against the local md socket and contract REST server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal

import pytest
import requests
import websocket

from services.price_feed.quotes import Quote
from services.price_feed.tradovate import NO_TOKEN, TradovateMarketDataSource
from simulators.tradovate.contracts import ContractCatalogue, ContractRestServer
from simulators.tradovate.market_data import MarketDataServer
from tests.polling import wait_for

TODAY = date(2026, 11, 2)
GOOD = "md-token-good"
IDLE_TIMEOUT_S = 0.8


class Quotes:
    """What the source emitted, safe to read from the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Quote] = []

    def __call__(self, quote: Quote) -> None:
        with self._lock:
            self.items.append(quote)

    def of(self, symbol: str) -> list[Quote]:
        with self._lock:
            return [q for q in self.items if q.symbol == symbol]


@pytest.fixture
def tokens() -> set[str]:
    return {GOOD}


@pytest.fixture
def catalogue() -> ContractCatalogue:
    c = ContractCatalogue()
    for name in ("MNQZ6", "MESZ6", "MNQH7"):
        c.add(name)
    return c


@pytest.fixture
def rest(catalogue, tokens) -> Iterator[ContractRestServer]:
    with ContractRestServer(catalogue, tokens) as server:
        yield server


@pytest.fixture
def md(catalogue, tokens) -> Iterator[MarketDataServer]:
    with MarketDataServer(
        catalogue, tokens, heartbeat_interval_s=0.2, idle_timeout_s=IDLE_TIMEOUT_S
    ) as server:
        yield server


@pytest.fixture
def make_source(md, rest) -> Iterator[Callable[..., TradovateMarketDataSource]]:
    started: list[TradovateMarketDataSource] = []

    def make(
        symbols: set[str], token: Callable[[], str | None] = lambda: GOOD, **kw
    ) -> TradovateMarketDataSource:
        options = dict(
            front_contract=lambda root, on: f"{root}Z{on.year % 10}",
            clock_date=lambda: TODAY,
            heartbeat_interval_s=0.2,
            silence_timeout_s=1.5,
            backoff_base_s=0.05,
            backoff_max_s=0.2,
            reconcile_interval_s=0.5,
            seed=7,
        )
        source = TradovateMarketDataSource(md.url, rest.url, token, **(options | kw))
        source.set_symbols(symbols)
        started.append(source)
        return source

    yield make
    for source in started:
        source.stop()


def streaming(md: MarketDataServer, *names: str) -> Callable[[], bool]:
    return lambda: set(names) <= md.subscriptions()


def test_authorized_quotes_flow_as_decimal_quotes_of_the_root(make_source, md, rest):
    quotes, source = Quotes(), make_source({"MNQ"})
    source.start(quotes)
    wait_for(streaming(md, "MNQZ6"))
    md.set_trade("MNQZ6", "21012.25")
    wait_for(lambda: quotes.of("MNQ"))
    quote = quotes.of("MNQ")[0]
    assert quote.price == Decimal("21012.25") and isinstance(quote.price, Decimal)
    assert (quote.source, quote.delayed) == ("tradovate", False)
    assert abs(quote.ts - time.time() * 1000) < 5000
    status = source.status()
    assert status.connected and status.authenticated and status.error is None
    assert md.authorized_connections == 1 and rest.requests["contract/find"] == 1


def test_partial_entries_merge_and_only_trades_emit(make_source, md):
    quotes, source = Quotes(), make_source({"MNQ", "MES"})
    source.start(quotes)
    wait_for(streaming(md, "MNQZ6", "MESZ6"))
    md.set_book("MNQZ6", "21000.00", "21000.25")
    time.sleep(0.3)
    assert quotes.of("MNQ") == []  # a book-only event carries no trade
    md.set_trade("MNQZ6", "21000.25")
    wait_for(lambda: len(quotes.of("MNQ")) == 1)
    md.set_book("MNQZ6", "21000.25", "21000.50")  # the merged trade is unchanged: no repeat
    md.set_trades({"MNQZ6": "21000.50", "MESZ6": "5871.75"})  # two contracts, one event
    wait_for(lambda: len(quotes.of("MNQ")) == 2 and quotes.of("MES"))
    assert [q.price for q in quotes.of("MNQ")] == [Decimal("21000.25"), Decimal("21000.50")]
    assert quotes.of("MES")[0].price == Decimal("5871.75")


def test_client_heartbeats_keep_a_quiet_socket_open(make_source, md):
    source = make_source({"MNQ"})
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    time.sleep(IDLE_TIMEOUT_S * 2.5)  # no quotes flow at all
    assert md.idle_closes == 0 and md.connections_accepted == 1
    assert md.heartbeats_received >= 5
    assert source.status().connected and source.status().reconnects == 0


def test_server_drops_a_client_that_stops_heartbeats(md):
    ws = websocket.create_connection(md.url, timeout=3)
    started = time.monotonic()
    assert ws.recv() == "o"
    ws.send(f"authorize\n0\n\n{GOOD}")
    assert ws.recv() == 'a[{"s":200,"i":0}]'
    frames = []
    try:
        while True:
            frames.append(ws.recv())
            if frames[-1] == "":
                break
    except websocket.WebSocketConnectionClosedException:
        pass
    assert time.monotonic() - started >= IDLE_TIMEOUT_S
    assert "h" in frames and frames[-2].startswith("c[")  # server heartbeats, then close
    assert md.idle_closes == 1 and md.heartbeats_received == 0
    ws.close()


def test_requests_before_authorize_are_denied(md):
    ws = websocket.create_connection(md.url, timeout=3)
    assert ws.recv() == "o"
    ws.send('md/subscribeQuote\n1\n\n{"symbol":"MNQZ6"}')
    assert ws.recv() == 'a[{"i":1,"s":401,"d":"Access is denied"}]'
    ws.close()


@pytest.mark.parametrize(
    ("abrupt", "close_frame"), [(False, None), (True, None), (False, (3000, "Go away!"))]
)
def test_server_drop_reconnects_reauthorizes_and_resubscribes(
    make_source, md, rest, abrupt, close_frame
):
    quotes, source = Quotes(), make_source({"MNQ"})
    source.start(quotes)
    wait_for(streaming(md, "MNQZ6"))
    md.drop_all(abrupt=abrupt, close_frame=close_frame)
    wait_for(lambda: md.authorized_connections == 2 and "MNQZ6" in md.subscriptions())
    assert source.status().reconnects == 1
    md.set_trade("MNQZ6", "21001.50")
    wait_for(lambda: quotes.of("MNQ"))
    assert md.subscribe_requests == 2
    assert rest.requests["contract/find"] == 1  # the contract id is cached across connections


def test_a_silent_server_is_taken_for_dead(make_source, md):
    source = make_source({"MNQ"}, silence_timeout_s=0.6)
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    md.heartbeats_on = False  # the socket stays open but nothing arrives
    quiet = time.monotonic()
    wait_for(lambda: "silent" in (source.status().error or ""))
    assert time.monotonic() - quiet >= 0.6 - 0.2  # the last `h` may have come just before
    md.heartbeats_on = True
    wait_for(lambda: md.authorized_connections == 2 and "MNQZ6" in md.subscriptions())
    assert source.status().reconnects == 1


def test_refused_token_reports_then_recovers_with_a_fresh_token(make_source, md, caplog):
    caplog.set_level("DEBUG", logger="price_feed")
    caplog.set_level("DEBUG", logger="websocket")  # the client library; the server's may log frames
    current = {"token": "expired-secret"}
    quotes, source = Quotes(), make_source({"MNQ"}, token=lambda: current["token"])
    source.start(quotes)
    wait_for(lambda: md.auth_failures >= 2)
    status = source.status()
    assert status.authenticated is False and not status.connected
    assert "refused the market-data access token" in status.error
    current["token"] = GOOD
    wait_for(lambda: source.status().authenticated and "MNQZ6" in md.subscriptions())
    md.set_trade("MNQZ6", "21002.00")
    wait_for(lambda: quotes.of("MNQ"))
    assert source.status().error is None
    ours = [r for r in caplog.records if r.name in ("price_feed", "websocket")]
    assert ours  # the client did log its story
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'kv', '')}" for r in ours)
    assert "expired-secret" not in logged and GOOD not in logged


def test_no_token_does_not_connect(make_source, md):
    source = make_source({"MNQ"}, token=lambda: None)
    source.start(Quotes())
    wait_for(lambda: source.status().error == NO_TOKEN)
    time.sleep(0.2)
    assert md.connections_accepted == 0 and source.status().authenticated is False


def test_unknown_and_refused_contracts_go_to_failed_symbols(make_source, md, rest, catalogue):
    catalogue.add("M2KZ6")
    md.denied.add("M2KZ6")  # listed, but no market-data entitlement
    quotes, source = Quotes(), make_source({"MNQ", "NQ", "M2K"})
    source.start(quotes)
    wait_for(lambda: source.status().failed_symbols == {"NQ", "M2K"})
    reasons = source.failures()
    assert reasons["NQ"] == "Tradovate does not know contract NQZ6"
    assert "refused quotes for M2KZ6" in reasons["M2K"]
    wait_for(streaming(md, "MNQZ6"))
    md.set_trade("MNQZ6", "21003.00")
    wait_for(lambda: quotes.of("MNQ"))
    source.set_symbols({"MNQ"})
    wait_for(lambda: not source.status().failed_symbols)


def test_unknown_contract_as_business_error(catalogue, tokens):
    with ContractRestServer(catalogue, tokens, unknown_find="error") as server:
        headers = {"Authorization": f"Bearer {GOOD}"}
        body = requests.get(
            f"{server.url}/contract/find", params={"name": "NQZ6"}, headers=headers, timeout=3
        ).json()
        assert "errorText" in body
        bare = requests.get(
            f"{server.url}/contract/find", params={"name": "MNQ"}, headers=headers, timeout=3
        )
        assert bare.status_code == 404
        assert (
            requests.get(
                f"{server.url}/contract/find", params={"name": "MNQZ6"}, timeout=3
            ).status_code
            == 401
        )


def test_quota_shutdown_waits_the_long_backoff(make_source, md):
    source = make_source({"MNQ"}, quota_backoff_s=1.2)
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    md.send_shutdown("ConnectionQuotaReached", "Too many connections")
    shut = time.monotonic()
    wait_for(lambda: not source.status().connected)
    assert "ConnectionQuotaReached" in source.status().error
    wait_for(lambda: md.connections_accepted == 2, timeout=3.0)
    assert time.monotonic() - shut >= 1.2


def test_maintenance_shutdown_uses_the_normal_backoff(make_source, md):
    source = make_source({"MNQ"}, quota_backoff_s=5.0)
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    md.send_shutdown("Maintenance")
    wait_for(lambda: md.connections_accepted == 2, timeout=1.0)


def test_set_symbols_follows_subscriptions_on_the_server(make_source, md):
    quotes, source = Quotes(), make_source({"MNQ"})
    source.start(quotes)
    wait_for(streaming(md, "MNQZ6"))
    source.set_symbols({"MES"})
    wait_for(lambda: md.subscriptions() == {"MESZ6"})
    assert md.unsubscribe_requests == 1
    md.set_trades({"MNQZ6": "21010.00", "MESZ6": "5870.00"})
    wait_for(lambda: quotes.of("MES"))
    assert quotes.of("MNQ") == []


def test_front_contract_follows_the_clock_date(make_source, md):
    today = {"date": TODAY}
    source = make_source(
        {"MNQ"},
        clock_date=lambda: today["date"],
        front_contract=lambda root, on: f"{root}{'Z6' if on < date(2026, 12, 11) else 'H7'}",
    )
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    today["date"] = date(2026, 12, 14)
    wait_for(lambda: md.subscriptions() == {"MNQH7"})


def test_stop_closes_promptly(make_source, md):
    source = make_source({"MNQ"})
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 3  # the reader notices at once, not after a 5 s join
    wait_for(lambda: md.connections() == [])
    assert not source.status().connected


def test_default_front_contract_comes_from_the_roll_calendar(make_source, md):
    source = make_source({"MNQ", "XYZ"}, front_contract=None)  # libs.common.futures.rolls decides
    source.start(Quotes())
    wait_for(streaming(md, "MNQZ6"))
    wait_for(lambda: source.status().failed_symbols == {"XYZ"})
    assert "no front contract for XYZ" in source.failures()["XYZ"]
