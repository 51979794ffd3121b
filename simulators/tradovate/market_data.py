"""A local Tradovate market-data WebSocket (docs/outside/tradovate.md §6.1–6.3, §6.5), with test
hooks: quotes (`md/subscribeQuote`), the DOM (`md/subscribeDOM`) and bar charts (`md/getChart`,
`md/cancelChart`); what each says is built in `market_quotes`.

Sim choices: a subscription's answer carries an empty object as `d` (Tradovate's tutorial reads
the answer's body, whose contents are not documented), an unsubscription's answer none; getChart
answers `{historicalId, realtimeId}`, then sends the history as one `charts` packet under
`historicalId` with an `eoh` packet, then each change of the current bar under `realtimeId`; a
chart it does not serve (tick charts, volume or range bars) answers `{errorText}`; `md/cancelChart`
takes either id and answers 200 even for an id it does not know. Histograms are not simulated.

It keeps its own small codec on purpose: a framing bug in the client must not be mirrored here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from libs.common.futures.instruments import contract_spec
from simulators.local_servers import LocalWebSocketServer
from simulators.tradovate import market_quotes
from simulators.tradovate.contracts import Contract, ContractCatalogue, Tokens, token_accepted
from simulators.tradovate.market_quotes import ChartRefused, ChartSpec, Trade
from simulators.tradovate.wire import parse_request, token_of

log = logging.getLogger(__name__)

Entries = dict[str, dict[str, Any]]
TRADE_HISTORY = 100_000  # trades kept per contract for charts


def _number(value: Any) -> float:
    if isinstance(value, Decimal):
        return float(value)  # Tradovate sends JSON numbers; repr keeps 21012.25 exact
    raise TypeError(f"{type(value).__name__} is not JSON")


def _a(*messages: dict[str, Any]) -> str:
    return "a" + json.dumps(list(messages), separators=(",", ":"), default=_number)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Chart:
    """One getChart subscription of a peer."""

    contract_id: int
    spec: ChartSpec
    historical_id: int
    realtime_id: int


@dataclass(frozen=True)
class PeerInfo:
    """One live connection as the server sees it, for test assertions."""

    number: int
    authorized: bool
    subscriptions: frozenset[str]
    heartbeats_received: int


class _Peer:
    """One client connection: its authorization, quote subscriptions and clocks."""

    def __init__(self, server: MarketDataServer, connection: ServerConnection, number: int) -> None:
        self.server, self.connection, self.number = server, connection, number
        self.lock = threading.RLock()
        self.authorized = False
        self.subs: set[int] = set()  # contract ids
        self.doms: set[int] = set()  # contract ids
        self.charts: dict[int, Chart] = {}  # by historical and by realtime id
        self.heartbeats = 0
        self.opened = self.last_client = self.last_sent = time.monotonic()

    def send(self, text: str) -> None:
        with self.lock:
            try:
                self.connection.send(text)
                self.last_sent = time.monotonic()
            except (ConnectionClosed, OSError):
                pass

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        with contextlib.suppress(OSError):  # linger 0 makes close send RST, not FIN
            self.connection.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.connection.close_socket()

    def handle(self, text: str) -> None:
        if text == "[]":
            self.heartbeats += 1
            self.server._count("heartbeats_received")
            return
        request = parse_request(text)
        if request is None:
            return self.send(_a({"s": 400, "d": "Bad request"}))
        endpoint, rid, body = request.endpoint, request.id, request.body
        if endpoint == "authorize":
            return self._authorize(rid, token_of(body))
        if not self.authorized:
            return self.send(_a({"i": rid, "s": 401, "d": "Access is denied"}))
        if endpoint in ("md/subscribequote", "md/unsubscribequote"):
            return self._quote_request(endpoint == "md/subscribequote", rid, body)
        if endpoint in ("md/subscribedom", "md/unsubscribedom"):
            return self._dom_request(endpoint == "md/subscribedom", rid, body)
        if endpoint == "md/getchart":
            return self._get_chart(rid, body)
        if endpoint == "md/cancelchart":
            return self._cancel_chart(rid, body)
        self.send(_a({"i": rid, "s": 404, "d": f"Unknown operation {endpoint}"}))

    def _body(self, rid: int, text: str) -> dict[str, Any] | None:
        try:
            body = json.loads(text, parse_float=Decimal)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send(_a({"i": rid, "s": 400, "d": "Bad request body"}))
            return None
        return body

    def _contract(self, rid: int, body: dict[str, Any]) -> Contract | None:
        """The subscription's contract, or None once refused (unknown, or not entitled)."""
        symbol = body.get("symbol")
        contract = self.server.catalogue.resolve(symbol)
        if contract is None:
            self.send(_a({"i": rid, "s": 404, "d": f"Unknown symbol {symbol}"}))
        elif contract.name in self.server.denied:
            self.send(_a({"i": rid, "s": 403, "d": "No market data subscription"}))
            return None
        return contract

    def _authorize(self, rid: int, token: str) -> None:
        if not token_accepted(self.server.tokens, token):
            self.server._count("auth_failures")
            return self.send(_a({"i": rid, "s": 401, "d": "Access is denied"}))
        self.authorized = True
        self.server._count("authorized_connections")
        self.send(_a({"s": 200, "i": rid}))

    def _quote_request(self, subscribe: bool, rid: int, text: str) -> None:
        body = self._body(rid, text)
        if body is None:
            return
        if not subscribe:
            contract = self.server.catalogue.resolve(body.get("symbol"))
            if contract is None:
                return self.send(
                    _a({"i": rid, "s": 404, "d": f"Unknown symbol {body.get('symbol')}"})
                )
            with self.lock:
                self.subs.discard(contract.id)
            self.server._count("unsubscribe_requests")
            return self.send(_a({"i": rid, "s": 200}))
        contract = self._contract(rid, body)
        if contract is None:
            return
        with self.lock:
            self.subs.add(contract.id)
            self.server._count("subscribe_requests")
            self.send(_a({"i": rid, "s": 200, "d": {}}))
            snapshot = self.server.snapshot(contract)
            if snapshot:  # the current quote right away, as a fresh subscriber would see it
                self.send(_a(self.server.md_event([(contract, snapshot)])))

    def _dom_request(self, subscribe: bool, rid: int, text: str) -> None:
        body = self._body(rid, text)
        contract = self._contract(rid, body) if body is not None else None
        if contract is None:
            return
        with self.lock:
            if not subscribe:
                self.doms.discard(contract.id)
                return self.send(_a({"i": rid, "s": 200}))
            self.doms.add(contract.id)
            self.send(_a({"i": rid, "s": 200, "d": {}}))
            dom = self.server.dom(contract)
            if dom is not None:
                self.send(_a({"e": "md", "d": {"doms": [dom]}}))

    def _get_chart(self, rid: int, text: str) -> None:
        body = self._body(rid, text)
        contract = self._contract(rid, body) if body is not None else None
        if contract is None:
            return
        try:
            spec = market_quotes.chart_spec(body)
        except ChartRefused as refused:
            return self.send(_a({"i": rid, "s": 200, "d": {"errorText": str(refused)}}))
        chart = Chart(contract.id, spec, *self.server.chart_ids())
        with self.lock:
            self.charts[chart.historical_id] = self.charts[chart.realtime_id] = chart
            ids = {"historicalId": chart.historical_id, "realtimeId": chart.realtime_id}
            self.send(_a({"i": rid, "s": 200, "d": ids}))
            history = market_quotes.bars(self.server.trades_of(contract), spec)
            packets: list[dict[str, Any]] = []
            if history:
                td = market_quotes.trade_date(time.time())
                packets.append({"id": chart.historical_id, "td": td, "bars": history})
            packets.append({"id": chart.historical_id, "eoh": True})
            self.send(_a({"e": "chart", "d": {"charts": packets}}))

    def _cancel_chart(self, rid: int, text: str) -> None:
        body = self._body(rid, text)
        if body is None:
            return
        with self.lock:
            chart = self.charts.get(body.get("subscriptionId"))  # type: ignore[arg-type]
            if chart is not None:
                self.charts.pop(chart.historical_id, None)
                self.charts.pop(chart.realtime_id, None)
            self.send(_a({"i": rid, "s": 200}))

    def live_charts(self) -> list[Chart]:
        with self.lock:
            return list({c.realtime_id: c for c in self.charts.values()}.values())

    def info(self) -> PeerInfo:
        with self.lock:
            names = frozenset(c.name for i in self.subs if (c := self.server.catalogue.item(i)))
            return PeerInfo(self.number, self.authorized, names, self.heartbeats)


class MarketDataServer(LocalWebSocketServer):
    """`wss://md.tradovateapi.com/v1/websocket` on 127.0.0.1, with hooks for tests."""

    thread_name = "tradovate-md-server"

    def __init__(
        self,
        catalogue: ContractCatalogue,
        tokens: Tokens,
        *,
        heartbeat_interval_s: float = 2.5,
        idle_timeout_s: float = 15.0,
        auth_timeout_s: float | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.catalogue = catalogue
        self.tokens = tokens  # a set the test may change later, or a callable
        self.heartbeat_interval_s = heartbeat_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.auth_timeout_s = auth_timeout_s if auth_timeout_s is not None else idle_timeout_s
        self.denied: set[str] = set()  # contract names refused for lack of entitlements (§6.5)
        self.heartbeats_on = True
        self.connections_accepted = 0
        self.authorized_connections = 0
        self.auth_failures = 0
        self.heartbeats_received = 0
        self.subscribe_requests = 0
        self.unsubscribe_requests = 0
        self.idle_closes = 0
        self._lock = threading.Lock()
        self._peers: dict[int, _Peer] = {}
        self._books: dict[int, Entries] = {}  # contract id → every entry last sent
        self._trades: dict[int, list[Trade]] = {}  # contract id → what set_trade printed
        self._chart_ids = 8_000

    # -- lifecycle -------------------------------------------------------------------------------

    # -- test hooks ------------------------------------------------------------------------------

    def set_trade(self, name: str, price: Decimal | str, size: int = 1) -> None:
        """A trade print: the event carries the whole quote after it (`market_quotes`)."""
        self.set_trades({name: price}, size)

    def set_book(
        self,
        name: str,
        bid: Decimal | str,
        offer: Decimal | str,
        bid_size: int = 5,
        offer_size: int = 4,
    ) -> None:
        """A book change: the event carries the whole quote, with no Trade before the first."""
        contract = self._contract(name)
        with self._lock:
            book = self._books.setdefault(contract.id, {})
            book["Bid"] = {"price": Decimal(bid), "size": bid_size}
            book["Offer"] = {"price": Decimal(offer), "size": offer_size}
        self._publish([contract])

    def set_trades(self, prices: Mapping[str, Decimal | str], size: int = 1) -> None:
        """Trades of several contracts in one `quotes` array."""
        contracts = [self._contract(name) for name in prices]
        now = time.time()
        with self._lock:
            for contract in contracts:
                price = Decimal(prices[contract.name])
                tick = contract_spec(contract.root).tick_size
                book = self._books.get(contract.id, {})
                self._books[contract.id] = market_quotes.after_trade(book, price, size, tick)
                history = self._trades.setdefault(contract.id, [])
                history.append(Trade(now, price, size))
                del history[:-TRADE_HISTORY]  # a long-running sim keeps a bounded past
        self._publish(contracts, now)

    def _publish(self, contracts: list[Contract], traded_at: float | None = None) -> None:
        """The whole quote, the DOM and, after a trade, the current bar, to who subscribed."""
        quotes = [(c, self.snapshot(c)) for c in contracts]
        doms = {c.id: self.dom(c) for c in contracts}
        for peer in self._live_peers():
            with peer.lock:
                mine = [(c, e) for c, e in quotes if c.id in peer.subs]
                if mine:
                    peer.send(_a(self.md_event(mine)))
                books = [d for i, d in doms.items() if i in peer.doms and d is not None]
                if books:
                    peer.send(_a({"e": "md", "d": {"doms": books}}))
            if traded_at is not None:
                self._chart_updates(peer, {c.id: c for c in contracts}, traded_at)

    def _chart_updates(self, peer: _Peer, traded: dict[int, Contract], at: float) -> None:
        packets = []
        for chart in peer.live_charts():
            if chart.contract_id in traded:
                bar = market_quotes.bar_of(
                    self.trades_of(traded[chart.contract_id]), chart.spec, at
                )
                if bar is not None:
                    td = market_quotes.trade_date(at)
                    packets.append({"id": chart.realtime_id, "td": td, "bars": [bar]})
        if packets:
            peer.send(_a({"e": "chart", "d": {"charts": packets}}))

    def send_entries(self, updates: dict[str, Entries]) -> None:
        """One md event with exactly these (partial) entries, to each peer subscribed to any."""
        quotes = []
        for name, entries in updates.items():
            contract = self._contract(name)
            with self._lock:
                book = self._books.setdefault(contract.id, {})
                for entry, fields in entries.items():
                    book.setdefault(entry, {}).update(fields)
            quotes.append((contract, entries))
        for peer in self._live_peers():
            with peer.lock:
                mine = [(c, e) for c, e in quotes if c.id in peer.subs]
                if mine:
                    peer.send(_a(self.md_event(mine)))

    def send_shutdown(self, reason_code: str, reason: str = "", close: bool = True) -> None:
        """The `shutdown` event (§6.1), then the server closes the sockets as Tradovate does."""
        event = {"e": "shutdown", "d": {"reasonCode": reason_code, "reason": reason}}
        for peer in self._live_peers():
            peer.send(_a(event))
            if close:
                peer.connection.close()

    def drop_all(self, abrupt: bool = False, close_frame: tuple[int, str] | None = None) -> None:
        """Close every socket: cleanly, with a `c[code,"reason"]` frame first, or by TCP reset."""
        for peer in self._live_peers():
            if close_frame:
                peer.send("c" + json.dumps(list(close_frame)))
            peer.abort() if abrupt else peer.connection.close()

    def connections(self) -> list[PeerInfo]:
        return [peer.info() for peer in self._live_peers()]

    def subscriptions(self) -> set[str]:
        """Contract names some live connection is subscribed to."""
        return {name for info in self.connections() for name in info.subscriptions}

    # -- shared with peers -----------------------------------------------------------------------

    def snapshot(self, contract: Contract) -> Entries:
        with self._lock:
            return {k: dict(v) for k, v in self._books.get(contract.id, {}).items()}

    def dom(self, contract: Contract) -> dict[str, Any] | None:
        tick = contract_spec(contract.root).tick_size
        return market_quotes.dom_json(contract.id, self.snapshot(contract), tick, _stamp())

    def trades_of(self, contract: Contract) -> list[Trade]:
        with self._lock:
            return list(self._trades.get(contract.id, []))

    def chart_ids(self) -> tuple[int, int]:
        """A historicalId and a realtimeId, unique on this server."""
        with self._lock:
            self._chart_ids += 2
            return self._chart_ids - 1, self._chart_ids

    @staticmethod
    def md_event(quotes: list[tuple[Contract, Entries]]) -> dict[str, Any]:
        stamp = _stamp()
        return {
            "e": "md",
            "d": {
                "quotes": [
                    {"timestamp": stamp, "contractId": c.id, "entries": e} for c, e in quotes
                ]
            },
        }

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _contract(self, name: str) -> Contract:
        contract = self.catalogue.find(name)
        if contract is None:
            raise KeyError(f"{name} is not in the catalogue")
        return contract

    def _live_peers(self) -> list[_Peer]:
        with self._lock:
            return list(self._peers.values())

    # -- connections -----------------------------------------------------------------------------

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections_accepted += 1
            peer = self._peers[self.connections_accepted] = _Peer(
                self, connection, self.connections_accepted
            )
        try:
            peer.send("o")
            self._serve(peer)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._peers.pop(peer.number, None)

    def _serve(self, peer: _Peer) -> None:
        while True:
            now = time.monotonic()
            close_at = peer.last_client + self.idle_timeout_s
            if not peer.authorized:
                close_at = min(close_at, peer.opened + self.auth_timeout_s)
            due = close_at
            if self.heartbeats_on:
                due = min(due, peer.last_sent + self.heartbeat_interval_s)
            try:
                message = peer.connection.recv(timeout=max(0.0, due - now))
            except TimeoutError:
                now = time.monotonic()
                if now >= close_at:
                    # Tradovate drops sockets that stop sending `[]` or never authorize (§6.2–6.3).
                    self._count("idle_closes")
                    peer.send('c[1000,"Inactivity"]')
                    peer.connection.close()
                    return
                if self.heartbeats_on and now >= peer.last_sent + self.heartbeat_interval_s:
                    peer.send("h")
                continue
            peer.last_client = time.monotonic()
            if isinstance(message, str):
                peer.handle(message)
