"""The real TradingView socket client against the local quote simulator, over loopback sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
import websocket

from services.price_feed.quotes import Quote
from services.price_feed.tradingview.framing import (
    Heartbeat,
    Hello,
    Message,
    decode,
    encode_message,
)
from services.price_feed.tradingview.socket_source import (
    ORIGIN,
    REFUSED_TOKEN,
    TradingViewSocketSource,
)
from simulators.tradingview.market import Market
from simulators.tradingview.quote_server import QuoteServer
from tests.polling import wait_for

MNQ, ES = "CME_MINI:MNQ1!", "CME_MINI:ES1!"
TOKEN = "token-alice-1"
HEARTBEAT_S = 0.2


class Tape:
    """Every quote a source emitted, in order."""

    def __init__(self) -> None:
        self._quotes: list[Quote] = []
        self._lock = threading.Lock()

    def __call__(self, quote: Quote) -> None:
        with self._lock:
            self._quotes.append(quote)

    def of(self, root: str) -> list[Quote]:
        with self._lock:
            return [q for q in self._quotes if q.symbol == root]

    def prices(self, root: str) -> list[Decimal]:
        return [q.price for q in self.of(root)]

    def has(self, root: str, price: str) -> bool:
        return Decimal(price) in self.prices(root)


@pytest.fixture
def market() -> Market:
    market = Market()
    # a non-ASCII description, astral character included, rides along in every snapshot
    market.list(MNQ, "21034.25", "Micro E-mini Nasdaq-100 — Société 🚀", pricescale=100, minmov=25)
    market.list(ES, "6012.50", "E-mini S&P 500 Futures", pricescale=100, minmov=25)
    market.add_account("sess-alice", TOKEN)
    return market


@pytest.fixture
def server(market) -> Iterator[QuoteServer]:
    server = QuoteServer(market, heartbeat_interval_s=HEARTBEAT_S, max_missed_heartbeats=3, seed=7)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connect(server) -> Iterator[Callable[..., tuple[TradingViewSocketSource, Tape]]]:
    """Start a client for `symbols` with a token provider; stopped at the end of the test."""
    sources: list[TradingViewSocketSource] = []

    def make(token: str | None | Callable[[], str | None] = None, symbols=("MNQ", "ES"), **kw):
        provider = token if callable(token) else (lambda: token)
        options = (
            dict(
                heartbeat_timeout_s=1.0,
                hello_timeout_s=2.0,
                backoff_base_s=0.05,
                backoff_max_s=0.2,
                refused_backoff_s=0.5,
            )
            | kw
        )
        source = TradingViewSocketSource(server.url, provider, **options)
        source.set_symbols(set(symbols))
        tape = Tape()
        source.start(tape)
        sources.append(source)
        return source, tape

    yield make
    for source in sources:
        source.stop()


def streaming(tape: Tape, *roots: str) -> Callable[[], bool]:
    return lambda: all(tape.of(root) for root in roots)


def test_anonymous_connection_streams_delayed_quotes(server, market, connect):
    source, tape = connect(token=None)
    wait_for(streaming(tape, "MNQ", "ES"), what="snapshots")
    assert tape.of("MNQ")[0].price == Decimal("21034.25")
    assert tape.of("MNQ")[0].delayed and tape.of("ES")[0].source == "tradingview"

    market.set_price(MNQ, "21040.5")
    wait_for(lambda: tape.has("MNQ", "21040.50"), what="the tick")

    status = source.status()
    assert status.connected and status.authenticated is False
    assert status.delayed_symbols == {"MNQ", "ES"} and status.error is None
    assert server.connections()[0].auth == "anonymous"


def test_authenticated_token_streams_real_time(server, market, connect):
    source, tape = connect(token=TOKEN)
    wait_for(streaming(tape, "MNQ", "ES"), what="snapshots")
    market.set_price(ES, "6013.75")
    wait_for(lambda: tape.has("ES", "6013.75"), what="the tick")

    assert not any(q.delayed for q in tape.of("MNQ") + tape.of("ES"))
    assert source.status().authenticated is True
    assert source.status().delayed_symbols == set()
    assert server.connections()[0].auth == "authenticated"


def test_a_symbol_switched_to_delayed_is_reported_delayed(market, connect):
    source, tape = connect(token=TOKEN)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    market.set_delayed(MNQ, True)
    wait_for(lambda: source.status().delayed_symbols == {"MNQ"}, what="MNQ delayed")
    market.set_price(MNQ, "21035")
    wait_for(lambda: tape.has("MNQ", "21035"), what="the tick")
    assert tape.of("MNQ")[-1].delayed and not tape.of("ES")[-1].delayed


def test_heartbeats_are_echoed_and_the_connection_survives_many_intervals(server, connect):
    source, tape = connect(token=None, heartbeat_timeout_s=1.0)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    wait_for(lambda: server.heartbeat_echoes >= 6, what="six echoed heartbeats")

    [conn] = server.connections()
    assert conn.heartbeats_echoed >= conn.heartbeats_sent - 1
    assert server.connections_accepted == 1 and source.status().reconnects == 0


@pytest.mark.parametrize("abrupt", [True, False], ids=["abrupt", "clean"])
def test_server_drop_reconnects_resubscribes_and_keeps_quotes_flowing(
    server, market, connect, abrupt
):
    source, tape = connect(token=None)
    wait_for(streaming(tape, "MNQ", "ES"), what="snapshots")
    market.set_price(MNQ, "21036")
    wait_for(lambda: tape.has("MNQ", "21036"), what="first tick")
    before = len(tape.of("MNQ"))

    server.drop_all(abrupt=abrupt)
    wait_for(lambda: server.connections_accepted == 2, what="the reconnect")
    wait_for(lambda: server.subscribed_symbols() == {MNQ, ES}, what="resubscription")
    market.set_price(MNQ, "21037.25")
    wait_for(lambda: tape.has("MNQ", "21037.25"), what="tick after the reconnect")

    # the reconnect snapshot repeats the last tick: it is not emitted again
    assert tape.prices("MNQ")[before:] == [Decimal("21037.25")]
    assert source.status().reconnects == 1 and source.status().connected


def test_reconnect_snapshot_older_than_the_last_tick_is_not_emitted(server, market, connect):
    source, tape = connect(token=None)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    market.set_price(MNQ, "21050")
    wait_for(lambda: tape.has("MNQ", "21050"), what="the tick")
    listing = market.get(MNQ)
    listing.price, listing.lp_time = Decimal("21040"), listing.lp_time - 5  # a lagging cache

    server.drop_all(abrupt=True)
    wait_for(lambda: server.subscribed_symbols() == {MNQ, ES}, what="resubscription")
    market.set_price(MNQ, "21051")
    wait_for(lambda: tape.has("MNQ", "21051"), what="tick after the reconnect")

    assert not tape.has("MNQ", "21040")
    assert tape.prices("MNQ")[-2:] == [Decimal("21050"), Decimal("21051")]


def test_malformed_frame_makes_the_client_reconnect(server, market, connect):
    source, tape = connect(token=None)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    server.send_malformed()
    wait_for(lambda: source.status().reconnects == 1, what="the reconnect")
    wait_for(lambda: server.subscribed_symbols() == {MNQ, ES}, what="resubscription")
    market.set_price(MNQ, "21038")
    wait_for(lambda: tape.has("MNQ", "21038"), what="tick after the reconnect")


def test_unknown_symbol_is_failed_while_the_others_stream(server, market, connect):
    source, tape = connect(token=None, symbols=("MNQ", "XYZ"))
    wait_for(lambda: source.status().failed_symbols == {"XYZ"}, what="XYZ failed")
    market.set_price(MNQ, "21039")
    wait_for(lambda: tape.has("MNQ", "21039"), what="MNQ tick")

    assert tape.of("XYZ") == [] and source.status().connected
    assert server.connections_accepted == 1  # the session was kept


def test_critical_error_recreates_the_quote_session(server, market, connect):
    source, tape = connect(token=None)
    wait_for(streaming(tape, "MNQ", "ES"), what="snapshots")
    [old_qs] = server.connections()[0].sessions

    server.send_critical_error()
    wait_for(lambda: list(server.connections()[0].sessions) not in ([old_qs], []), what="new qs")
    [conn] = server.connections()
    [(new_qs, symbols)] = conn.sessions.items()
    assert new_qs != old_qs and symbols == {MNQ, ES}  # the rejected session was deleted

    market.set_price(ES, "6014")
    wait_for(lambda: tape.has("ES", "6014"), what="tick in the new session")
    assert server.connections_accepted == 1


def test_refused_token_falls_back_to_anonymous_until_a_new_token_arrives(server, market, connect):
    tokens = {"current": TOKEN}
    source, tape = connect(token=lambda: tokens["current"])
    wait_for(lambda: source.status().authenticated is True, what="authenticated")

    market.expire_token(TOKEN)
    server.drop_all()
    wait_for(lambda: source.status().error == REFUSED_TOKEN, what="the refusal")
    wait_for(lambda: [c.auth for c in server.connections()] == ["anonymous"], what="anonymous")
    market.set_price(MNQ, "21041")
    wait_for(lambda: tape.has("MNQ", "21041"), what="delayed tick")
    assert tape.of("MNQ")[-1].delayed and source.status().authenticated is False
    assert source.status().error == REFUSED_TOKEN

    market.add_account("sess-alice-2", "token-alice-2")
    tokens["current"] = "token-alice-2"
    server.drop_all()
    wait_for(lambda: source.status().authenticated is True, what="authenticated again")
    assert source.status().error is None


def test_bad_token_from_the_start_streams_anonymously_and_says_why(server, market, connect):
    source, tape = connect(token="not-a-token")
    wait_for(streaming(tape, "MNQ"), what="delayed snapshot")
    assert tape.of("MNQ")[0].delayed
    assert source.status().authenticated is False and source.status().error == REFUSED_TOKEN


def test_token_provider_failure_streams_anonymously_and_says_why(connect):
    def broken() -> str:
        raise RuntimeError("cookie jar unreadable")

    source, tape = connect(token=broken)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    assert tape.of("MNQ")[0].delayed and source.status().authenticated is False
    assert "cookie jar unreadable" in (source.status().error or "")


def test_set_symbols_while_streaming_adds_and_removes_subscriptions(server, market, connect):
    source, tape = connect(token=None, symbols=("MNQ",))
    wait_for(lambda: server.subscribed_symbols() == {MNQ}, what="MNQ subscribed")

    source.set_symbols({"ES"})
    wait_for(lambda: server.subscribed_symbols() == {ES}, what="swap to ES")
    wait_for(streaming(tape, "ES"), what="ES snapshot")
    count = len(tape.of("MNQ"))
    market.set_price(MNQ, "21042")
    market.set_price(ES, "6015.25")
    wait_for(lambda: tape.has("ES", "6015.25"), what="ES tick")
    assert len(tape.of("MNQ")) == count
    assert source.status().delayed_symbols == {"ES"}


def test_refused_upgrade_backs_off_then_connects(server, connect):
    server.refuse_next_upgrades(2, status=429)
    started = time.monotonic()
    source, tape = connect(token=None, refused_backoff_s=0.4)
    wait_for(lambda: source.status().connected, what="the connection")
    assert time.monotonic() - started >= 0.8  # two refusals, each followed by the long backoff
    assert server.upgrades_refused == 2 and server.connections_accepted == 1
    wait_for(streaming(tape, "MNQ"), what="snapshot")


def test_silence_is_detected_and_the_client_reconnects(server, connect):
    source, tape = connect(token=None, heartbeat_timeout_s=0.6)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    server.stop_heartbeats()
    silent_since = time.monotonic()
    wait_for(lambda: server.connections_accepted >= 2, what="the reconnect")
    # the client counts from the last heartbeat, at most one interval before they stopped
    assert time.monotonic() - silent_since >= 0.6 - HEARTBEAT_S

    server.resume_heartbeats()
    echoes = server.heartbeat_echoes
    wait_for(lambda: server.heartbeat_echoes >= echoes + 2, what="heartbeats again")
    accepted = server.connections_accepted
    time.sleep(0.8)  # longer than the silence limit: a healthy connection is kept
    assert server.connections_accepted == accepted


def test_non_ascii_description_does_not_break_framing(server, market, connect):
    source, tape = connect(token=TOKEN, symbols=("MNQ",))
    for price in ("21035", "21035.25", "21035.5"):
        market.set_price(MNQ, price)
    wait_for(lambda: tape.has("MNQ", "21035.5"), what="ticks")
    assert server.connections_accepted == 1 and source.status().reconnects == 0


def test_stop_closes_promptly(server, connect):
    source, tape = connect(token=None)
    wait_for(streaming(tape, "MNQ"), what="snapshot")
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 5  # not the 10 s hello or 30 s silence timeouts
    wait_for(lambda: server.connections() == [], what="the server to see the close")
    assert not source.status().connected


# -- the simulator on its own, with a bare WebSocket -------------------------------------------


@pytest.fixture
def bare(server) -> Iterator[websocket.WebSocket]:
    """A plain WebSocket that has read the hello (alone in its message) and echoes nothing."""
    ws = websocket.create_connection(server.url, timeout=2)
    assert isinstance(decode(ws.recv())[0], Hello)
    yield ws
    ws.close(timeout=0.2)
    ws.shutdown()  # after the server's close, close() alone leaves the TCP socket open


def next_message(ws: websocket.WebSocket) -> Message:
    while True:
        packets = [p for p in decode(ws.recv()) if not isinstance(p, Heartbeat)]
        if packets:
            return packets[0]


def test_simulator_requiring_the_origin_admits_the_client_and_refuses_others(market):
    server = QuoteServer(market, heartbeat_interval_s=HEARTBEAT_S, require_origin=ORIGIN).start()
    source = TradingViewSocketSource(server.url, lambda: None)
    try:
        source.set_symbols({"MNQ"})
        tape = Tape()
        source.start(tape)
        wait_for(streaming(tape, "MNQ"), what="snapshot")
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(server.url, timeout=2, origin="https://example.com")
        assert refused.value.status_code == 403
    finally:
        source.stop()
        server.stop()


def test_simulator_closes_a_client_that_never_echoes(bare):
    started = time.monotonic()
    while bare.recv_data()[0] != websocket.ABNF.OPCODE_CLOSE:
        pass
    assert time.monotonic() - started >= 3 * HEARTBEAT_S


def test_simulator_answers_the_old_flags_object_with_critical_error(bare):
    bare.send(encode_message("quote_create_session", ["qs_a"]))
    bare.send(encode_message("quote_add_symbols", ["qs_a", {"flags": ["force_permission"]}]))
    assert next_message(bare) == Message(
        "critical_error", ["qs_a", "invalid_parameters", "quote_add_symbols"]
    )


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (encode_message("quote_set_fields", ["qs_x", "lp"]), "{unknown_session_id,"),
        ('~m~99~m~{"m":', "wrong data"),
    ],
    ids=["unknown session", "bad frame"],
)
def test_simulator_answers_protocol_error_and_closes(bare, frame, error):
    bare.send(frame)
    message = next_message(bare)
    assert message.method == "protocol_error" and message.params[0].startswith(error)
    while (opcode := bare.recv_data()[0]) != websocket.ABNF.OPCODE_CLOSE:
        assert opcode == websocket.ABNF.OPCODE_TEXT  # heartbeats at most, then the close
