"""Chart sessions and the full quote field set of the TradingView simulator, spoken to over a bare
WebSocket (docs/outside/tradingview.md B.8, B.13)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import websocket

from services.price_feed.tradingview.framing import (
    Hello,
    Message,
    decode,
    encode_message,
)
from simulators.tradingview.market import Market
from simulators.tradingview.quote_server import QuoteServer

MNQ = "CME_MINI:MNQ1!"
MNQ_SPEC = '={"adjustment":"splits","symbol":"CME_MINI:MNQ1!"}'
T0 = 1_764_000_000  # a minute boundary


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 5.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def market(clock) -> Market:
    market = Market(clock=clock)
    market.list(MNQ, "21034.25", "Micro E-mini Nasdaq-100 Futures", prev_close="21075.75")
    # three earlier minutes: 21000 → 21010, a minute without trades, then 21020 twice
    market.add_history(
        MNQ,
        [(T0 - 240, "21000"), (T0 - 200, "21010"), (T0 - 60, "21020"), (T0 - 30, "21018")],
    )
    return market


@pytest.fixture
def ws(market) -> Iterator[websocket.WebSocket]:
    server = QuoteServer(market, heartbeat_interval_s=30).start()
    conn = websocket.create_connection(server.url, timeout=2)
    assert isinstance(decode(conn.recv())[0], Hello)
    yield conn
    _unread.pop(id(conn), None)
    conn.close(timeout=0.2)
    conn.shutdown()
    server.stop()


def send(ws: websocket.WebSocket, method: str, *params: object) -> None:
    ws.send(encode_message(method, list(params)))


_unread: dict[int, list[Message]] = {}  # packets read from a socket but not yet asked for


def receive(ws: websocket.WebSocket, count: int) -> list[Message]:
    """The next `count` packets (heartbeats skipped), however the server batched them."""
    messages = _unread.setdefault(id(ws), [])
    while len(messages) < count:
        messages += [p for p in decode(ws.recv()) if isinstance(p, Message)]
    taken, messages[:] = messages[:count], messages[count:]
    return taken


def open_chart(ws: websocket.WebSocket, resolution: str = "1", bars: object = 300) -> list[Message]:
    send(ws, "chart_create_session", "cs_a", "")
    send(ws, "resolve_symbol", "cs_a", "sds_sym_1", MNQ_SPEC)
    send(ws, "create_series", "cs_a", "sds_1", "s1", "sds_sym_1", resolution, bars, "")
    return receive(ws, 4)


def test_a_chart_series_answers_the_symbol_then_its_bars_from_the_price_path(ws):
    resolved, loading, timescale, completed = open_chart(ws)

    assert resolved.method == "symbol_resolved" and resolved.params[:2] == ["cs_a", "sds_sym_1"]
    info = resolved.params[2]
    assert info["pro_name"] == MNQ and info["name"] == "MNQ1!" and info["type"] == "futures"
    assert (info["pricescale"], info["minmov"], info["minmove2"]) == (100, 25, 0)
    assert (loading.method, loading.params) == ("series_loading", ["cs_a", "sds_1", "s1"])
    assert timescale.method == "timescale_update"
    rows = timescale.params[1]["sds_1"]["s"]
    assert [(r["i"], r["v"]) for r in rows] == [
        (0, [T0 - 240, 21000, 21010, 21000, 21010, 2]),
        (1, [T0 - 60, 21020, 21020, 21018, 21018, 2]),  # no bar for the minutes without trades
        (2, [T0, 21034.25, 21034.25, 21034.25, 21034.25, 1]),
    ]
    assert completed.method == "series_completed"
    assert completed.params[:4] == ["cs_a", "sds_1", "delayed_streaming_600", "s1"]


def test_bar_count_keeps_the_newest_bars_and_daily_bars_fold_the_day(ws):
    *_, timescale, _ = open_chart(ws, "1D", 2)

    [day] = timescale.params[1]["sds_1"]["s"]
    assert day["i"] == 0 and day["v"][1:] == [21000, 21034.25, 21000, 21034.25, 5]


def test_each_trade_updates_the_last_bar_and_a_new_minute_opens_the_next_index(ws, market, clock):
    open_chart(ws)

    clock.now = T0 + 20
    market.set_price(MNQ, "21036.5")
    [same_bar] = receive(ws, 1)
    clock.now = T0 + 61
    market.set_price(MNQ, "21030")
    [next_bar] = receive(ws, 1)

    assert same_bar == Message(
        "du",
        ["cs_a", {"sds_1": {"s": [{"i": 2, "v": [T0, 21034.25, 21036.5, 21034.25, 21036.5, 2]}]}}],
    )
    assert next_bar.params[1]["sds_1"]["s"] == [
        {"i": 3, "v": [T0 + 60, 21030, 21030, 21030, 21030, 1]}
    ]


def test_modify_series_reloads_with_the_new_resolution_and_the_same_count(ws):
    open_chart(ws, "1", 2)
    send(ws, "modify_series", "cs_a", "sds_1", "s2", "sds_sym_1", "5", "")

    loading, timescale, completed = receive(ws, 3)
    assert loading.params == ["cs_a", "sds_1", "s2"]
    assert [r["v"][0] for r in timescale.params[1]["sds_1"]["s"]] == [T0 - 300, T0]
    assert completed.params[3] == "s2"


def test_an_unknown_symbol_and_a_series_on_it_are_errors(ws):
    send(ws, "chart_create_session", "cs_a", "")
    send(ws, "resolve_symbol", "cs_a", "sds_sym_1", '={"symbol":"CME_MINI:XYZ1!"}')
    send(ws, "create_series", "cs_a", "sds_1", "s1", "sds_sym_1", "1", 300, "")

    symbol_error, series_error = receive(ws, 2)
    assert symbol_error.params == ["cs_a", "sds_sym_1", "invalid symbol"]
    assert series_error.params == ["cs_a", "sds_1", "s1", "resolve error"]


def test_an_unknown_resolution_is_a_critical_error_of_the_session(ws):
    send(ws, "chart_create_session", "cs_a", "")
    send(ws, "resolve_symbol", "cs_a", "sds_sym_1", MNQ_SPEC)
    send(ws, "create_series", "cs_a", "sds_1", "s1", "sds_sym_1", "15m", 300, "")

    _, error = receive(ws, 2)
    assert error.method == "critical_error" and error.params[:2] == ["cs_a", "invalid resolution"]


def test_a_message_for_a_chart_session_never_created_is_a_protocol_error(ws):
    send(ws, "resolve_symbol", "cs_nope", "sds_sym_1", MNQ_SPEC)

    [error] = receive(ws, 1)
    assert error.method == "protocol_error"
    assert error.params[0].startswith('{unknown_session_id,<<"resolve_symbol">>')


def test_quotes_carry_the_sessions_open_high_low_from_the_price_path(ws, market, clock):
    send(ws, "quote_create_session", "qs_a")
    send(ws, "quote_set_fields", "qs_a", "lp", "open_price", "high_price", "low_price", "volume")
    send(ws, "quote_add_symbols", "qs_a", MNQ)
    values: dict[str, object] = {}
    while (message := receive(ws, 1)[0]).method == "qsd":
        values |= message.params[1]["v"]
    assert message.method == "quote_completed"
    assert values == {
        "lp": 21034.25,
        "open_price": 21000,
        "high_price": 21034.25,
        "low_price": 21000,
        "volume": 5,
    }

    clock.now += 1
    market.set_price(MNQ, Decimal("21040"))
    [delta] = receive(ws, 1)
    assert delta.params[1]["v"] == {"lp": 21040, "high_price": 21040, "volume": 6}
