"""A local TradingView quote WebSocket (docs/outside/tradingview.md B.15) answering from a `Market`:
quote sessions here, chart sessions in `charts.py`.

Quote fields: of those a client may ask for (B.8; `@mathieuc/tradingview` asks for 48) it answers
the ones it can honestly compute for a futures listing — prices, the session's open/high/low/volume
and previous close from the market's price path, names, venue, type, currency, time zone and the
price grid (`pricescale`, `minmov`, `minmove2`, `fractional`). It never sends the others (logos,
`provider_id`, `country_code`, `format`, `language`, `status`, `is_tradable`, `rch`/`rtc`, the
stock fundamentals): their values for CME futures are not in the reference, and TradingView only
sends fields it has values for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from simulators.local_servers import LocalWebSocketServer
from simulators.tradingview import charts
from simulators.tradingview.frames import frame as _frame
from simulators.tradingview.frames import listing_name as _listing_name
from simulators.tradingview.frames import message as _msg
from simulators.tradingview.frames import payloads as _payloads
from simulators.tradingview.market import Listing, Market

log = logging.getLogger(__name__)

ANONYMOUS = "unauthorized_user_token"
REJECTED = ["invalid_parameters", "quote_add_symbols"]  # the old flags object's answer
TRADE_FIELDS = ("lp", "lp_time", "ch", "chp", "volume", "high_price", "low_price")  # rest: 2nd
DELAYED = "delayed_streaming_600"


@dataclass(frozen=True)
class ConnectionInfo:
    """What one live connection looks like from the server, for test assertions."""

    number: int
    auth: str  # anonymous | authenticated
    sessions: dict[str, frozenset[str]]  # qs → symbol strings it streams (dead sessions: empty)
    heartbeats_sent: int
    heartbeats_echoed: int


@dataclass
class _QuoteSession:
    fields: set[str] | None = None
    symbols: dict[str, str] = field(default_factory=dict)  # requested string → listing name
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # requested string → last values
    dead: bool = False  # after a critical_error: known, but no longer fed


class _Peer:
    """One client connection: its auth, quote sessions and heartbeat count."""

    def __init__(self, server: QuoteServer, connection: ServerConnection, number: int) -> None:
        self.server, self.connection, self.number = server, connection, number
        self.lock = threading.RLock()
        self.auth = "anonymous"  # sim choice: session messages before set_auth_token are anonymous
        self.sessions: dict[str, _QuoteSession] = {}
        self.charts = charts.ChartSessions(server.market, self.send, self._update_mode)
        self.heartbeats_sent = 0
        self.heartbeats_echoed = 0  # the highest number echoed back
        self.closed = threading.Event()

    def send(self, *packets: str) -> None:
        with self.lock, contextlib.suppress(ConnectionClosed, OSError):
            self.connection.send("".join(packets))

    def fail(self, text: str) -> None:
        """`protocol_error` then close, as TradingView does."""
        self.send(_msg("protocol_error", [text]))
        self.connection.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        sock = self.connection.socket
        with contextlib.suppress(OSError):  # linger 0: a reset, not an orderly FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close_socket()

    def handle(self, message: str | bytes) -> None:
        try:
            payloads = _payloads(message if isinstance(message, str) else "")
            packets = [p if p.startswith("~h~") else json.loads(p) for p in payloads]
        except ValueError:
            return self.fail("wrong data")
        with self.lock:
            for packet in packets:
                if isinstance(packet, str):
                    self._echo(packet)
                elif isinstance(packet, dict) and isinstance(packet.get("p", []), list):
                    if self._dispatch(str(packet.get("m")), packet.get("p", [])) is False:
                        return
                else:
                    return self.fail("wrong data")

    def _echo(self, payload: str) -> None:
        number = payload[3:]
        if number.isdigit() and int(number) <= self.heartbeats_sent:
            self.heartbeats_echoed = max(self.heartbeats_echoed, int(number))
            self.server._count_echo()

    def _dispatch(self, method: str, params: list[Any]) -> bool:
        """Answer one client message; False when the connection was closed over it."""
        if method == "set_auth_token":
            return self._set_auth_token(params[0] if params else None)
        if method == "quote_create_session" and params:
            self.sessions[str(params[0])] = _QuoteSession()
            return True
        if method in charts.METHODS:
            error = self.charts.handle(method, params)
            if error is not None:
                self.fail(error)
            return error is None
        if not method.startswith("quote_"):
            return True  # set_locale, set_data_quality, studies, replay: nothing changes here
        qs = params[0] if params else None
        if not isinstance(qs, str) or (session := self.sessions.get(qs)) is None:
            self.fail(f'{{unknown_session_id,<<"{method}">>,<<"{qs}">>}}')
            return False
        args = params[1:]
        if method == "quote_set_fields":
            session.fields = {str(f) for f in args}
        elif method == "quote_add_symbols":
            if not all(isinstance(a, str) for a in args):
                self.send(_msg("critical_error", [qs, *REJECTED]))
            else:
                for symbol in args:
                    self._add_symbol(qs, session, symbol)
        elif method == "quote_remove_symbols":
            for symbol in args:
                session.symbols.pop(symbol, None)
                session.sent.pop(symbol, None)
        elif method == "quote_delete_session":
            del self.sessions[qs]
        return True  # quote_fast_symbols, quote_hibernate_all: every symbol streams anyway

    def _set_auth_token(self, token: Any) -> bool:
        if token == ANONYMOUS:
            self.auth = "anonymous"
        elif isinstance(token, str) and self.server.market.token_valid(token):
            self.auth = "authenticated"
        else:
            self.fail("bad auth token")
            return False
        return True

    def _add_symbol(self, qs: str, session: _QuoteSession, symbol: str) -> None:
        listing = self.server.market.get(_listing_name(symbol))
        if listing is None:
            self.send(
                _msg("qsd", [qs, {"n": symbol, "s": "error", "errmsg": "invalid symbol", "v": {}}])
            )
            return
        session.symbols[symbol] = listing.name
        values = self._values(session, listing)
        session.sent[symbol] = values
        qsd = [qs, {"n": symbol, "s": "ok", "v": values}]
        completed = _msg("quote_completed", [qs, symbol])
        if "lp_time" in values and self.server.rng.random() < 0.5:
            # B.12: a small first qsd, then the rest; the client must not take the first as whole
            rest = {k: v for k, v in values.items() if k != "lp_time"}
            self.send(
                _msg("qsd", [qs, {"n": symbol, "s": "ok", "v": {"lp_time": values["lp_time"]}}])
            )
            self.send(_msg("qsd", [qs, {"n": symbol, "s": "ok", "v": rest}]), completed)
        else:
            self.send(_msg("qsd", qsd), completed)

    def _update_mode(self, listing: Listing) -> str:
        return DELAYED if listing.delayed or self.auth != "authenticated" else "streaming"

    def _values(self, session: _QuoteSession, listing: Listing) -> dict[str, Any]:
        values = self.server.quote_values(listing, self.auth == "authenticated")
        if session.fields is None:
            return values
        return {k: v for k, v in values.items() if k in session.fields}

    def on_listing(self, listing: Listing) -> None:
        """Send each subscribed session the fields that changed, trade and book in two packets,
        and each live chart series its last bar."""
        with self.lock:
            self.charts.on_listing(listing)
            for qs, session in self.sessions.items():
                for symbol, name in session.symbols.items():
                    if name != listing.name or session.dead:
                        continue
                    values, last = self._values(session, listing), session.sent.get(symbol, {})
                    changed = {k: v for k, v in values.items() if last.get(k) != v}
                    if "lp" in changed or "lp_time" in changed:
                        changed |= {k: values[k] for k in ("lp", "lp_time") if k in values}
                    session.sent[symbol] = values
                    trade = {k: v for k, v in changed.items() if k in TRADE_FIELDS}
                    book = {k: v for k, v in changed.items() if k not in TRADE_FIELDS}
                    packets = [
                        _msg("qsd", [qs, {"n": symbol, "s": "ok", "v": part}])
                        for part in (trade, book)
                        if part
                    ]
                    if packets:
                        self.send(*packets)

    def info(self) -> ConnectionInfo:
        with self.lock:
            sessions = {
                qs: frozenset() if s.dead else frozenset(s.symbols)
                for qs, s in self.sessions.items()
            }
            return ConnectionInfo(
                self.number, self.auth, sessions, self.heartbeats_sent, self.heartbeats_echoed
            )


class QuoteServer(LocalWebSocketServer):
    """`wss://data.tradingview.com/socket.io/websocket` on 127.0.0.1, with hooks for tests."""

    _unsubscribe: Callable[[], None]  # from the market, while started

    def __init__(
        self,
        market: Market,
        *,
        heartbeat_interval_s: float = 10.0,
        max_missed_heartbeats: int = 3,
        require_origin: str | None = None,
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        super().__init__(port)
        self.market = market
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_missed_heartbeats = max_missed_heartbeats
        self.require_origin = require_origin
        self.rng = random.Random(seed)
        self.connections_accepted = 0
        self.heartbeat_echoes = 0
        self.upgrades_refused = 0
        self._lock = threading.Lock()
        self._peers: dict[int, _Peer] = {}
        self._refuse: list[int] = []  # HTTP statuses for the next upgrades
        self._heartbeats_on = threading.Event()
        self._heartbeats_on.set()
        self._unsubscribe = lambda: None

    # -- lifecycle -------------------------------------------------------------------------

    thread_name = "tv-quote-server"
    path = "/socket.io/websocket"

    def start(self) -> QuoteServer:
        super().start()
        self._unsubscribe = self.market.subscribe(self._on_listing)
        return self

    def stop(self) -> None:
        self._unsubscribe()
        super().stop()

    # -- test hooks ------------------------------------------------------------------------

    def drop_all(self, abrupt: bool = False) -> None:
        for peer in self._live_peers():
            if abrupt:
                peer.abort()
            else:
                peer.connection.close()

    def stop_heartbeats(self) -> None:
        self._heartbeats_on.clear()

    def resume_heartbeats(self) -> None:
        self._heartbeats_on.set()

    def send_malformed(self) -> None:
        for peer in self._live_peers():
            peer.send('~m~99~m~{"m":"qsd","p":["qs_')

    def send_critical_error(self) -> None:
        """Reject every quote session; they stay known but are no longer fed (B.11)."""
        for peer in self._live_peers():
            with peer.lock:
                for qs, session in peer.sessions.items():
                    session.dead = True
                    peer.send(_msg("critical_error", [qs, *REJECTED]))

    def refuse_next_upgrades(self, n: int, status: int = 429) -> None:
        with self._lock:
            self._refuse.extend([status] * n)

    def connections(self) -> list[ConnectionInfo]:
        return [peer.info() for peer in self._live_peers()]

    def subscribed_symbols(self) -> set[str]:
        """Every symbol string some live session streams."""
        return {s for info in self.connections() for syms in info.sessions.values() for s in syms}

    # -- internals -------------------------------------------------------------------------

    def quote_values(self, listing: Listing, authenticated: bool) -> dict[str, Any]:
        exchange, _, short = listing.name.partition(":")
        prev, tick = listing.prev_close, listing.tick
        ch = listing.price - prev
        delayed_venue = exchange if exchange.endswith(("_DL", "_DLY")) else f"{exchange}_DL"
        delayed = listing.delayed or not authenticated
        return {
            "lp": listing.price,
            "lp_time": listing.lp_time,
            "ch": ch,
            "chp": (ch / prev * 100).quantize(Decimal("0.01")) if prev else Decimal(0),
            "bid": listing.price - tick,
            "ask": listing.price,
            "bid_size": 1 + int(listing.price / tick) % 9,
            "ask_size": 1 + int(listing.price / tick) % 7,
            "volume": listing.volume,
            "open_price": listing.open,
            "high_price": listing.high,
            "low_price": listing.low,
            "prev_close_price": prev,
            "current_session": "market",
            "update_mode": DELAYED if delayed else "streaming",
            # anonymous users are served from the delayed venue; pro_name keeps the asked name
            "original_name": listing.name if authenticated else f"{delayed_venue}:{short}",
            "pro_name": listing.name,
            "short_name": short,
            "exchange": exchange.split("_")[0],
            "description": listing.description,
            "local_description": listing.description,  # the simulator speaks only English
            "type": "futures",
            "pricescale": listing.pricescale,
            "minmov": listing.minmov,
            "minmove2": listing.minmove2,
            "fractional": listing.fractional,
            "currency_code": "USD",
            "timezone": "America/Chicago",
        }

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        with self._lock:
            refusal = self._refuse.pop(0) if self._refuse else None
            self.upgrades_refused += refusal is not None
        if refusal is not None:
            return connection.respond(refusal, "Refused by the simulator\n")
        if self.require_origin and request.headers.get("Origin") != self.require_origin:
            return connection.respond(403, "Forbidden origin\n")
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections_accepted += 1
            peer = _Peer(self, connection, self.connections_accepted)
            self._peers[peer.number] = peer
        try:
            peer.send(_frame(json.dumps(self._hello(), separators=(",", ":"))))
            threading.Thread(target=self._beat, args=(peer,), daemon=True).start()
            for message in connection:
                peer.handle(message)
        except ConnectionClosed:
            pass
        finally:
            peer.closed.set()
            with self._lock:
                self._peers.pop(peer.number, None)

    def _hello(self) -> dict[str, Any]:
        now = time.time()
        return {
            "session_id": f"<0.{self.connections_accepted}.4410>_sim-charts-1@sim-compute-1",
            "timestamp": int(now),
            "timestampMs": int(now * 1000),
            "release": "sim_release_1",
            "studies_metadata_hash": "5e0c0ffee0ddba11",
            "auth_scheme_vsn": 2,
            "protocol": "json",
            "via": f"127.0.0.1:{self._port}",
            "javastudies": ["3.66"],
        }

    def _beat(self, peer: _Peer) -> None:
        while not peer.closed.wait(self.heartbeat_interval_s):
            if not self._heartbeats_on.is_set():
                continue
            with peer.lock:
                missed = peer.heartbeats_sent - peer.heartbeats_echoed
                if missed < self.max_missed_heartbeats:
                    peer.heartbeats_sent += 1
                    peer.send(_frame(f"~h~{peer.heartbeats_sent}"))
                    continue
            log.info("tv_sim closing connection=%s missed_heartbeats=%s", peer.number, missed)
            peer.connection.close()
            return

    def _count_echo(self) -> None:
        with self._lock:
            self.heartbeat_echoes += 1

    def _on_listing(self, listing: Listing) -> None:
        for peer in self._live_peers():
            peer.on_listing(listing)

    def _live_peers(self) -> list[_Peer]:
        with self._lock:
            return list(self._peers.values())


DEMO_LISTINGS = {  # name → (price, description, pricescale, minmov)
    "CME_MINI:MNQ1!": ("21034.25", "Micro E-mini Nasdaq-100 Futures", 100, 25),
    "CME_MINI:NQ1!": ("21034.25", "E-mini Nasdaq-100 Futures", 100, 25),
    "CME_MINI:ES1!": ("6012.50", "E-mini S&P 500 Futures", 100, 25),
    "CME_MINI:MES1!": ("6012.50", "Micro E-mini S&P 500 Futures", 100, 25),
    "NYMEX:CL1!": ("71.42", "Crude Oil Futures", 100, 1),
    "COMEX:GC1!": ("2412.30", "Gold Futures", 10, 1),
}


def demo_market(token: str | None = None, history_s: int = 0) -> Market:
    """The demo listings; with `history_s`, that much random-walk history before now (a trade
    every 30 s) so charts have bars to show."""
    market = Market()
    rng = random.Random(1)
    for name, (price, description, pricescale, minmov) in DEMO_LISTINGS.items():
        listing = market.list(name, price, description, pricescale=pricescale, minmov=minmov)
        path, level, now = [], listing.price, time.time()
        for ago in range(history_s - history_s % 30, 0, -30):
            level -= listing.tick * rng.randint(-3, 3)
            path.append((now - ago, level))
        market.add_history(name, path)
    if token:
        market.add_account("demo-session", token)
    return market


def random_walk(market: Market, stop: threading.Event, every_s: float = 0.5) -> None:
    """Move one random listing by a few ticks every `every_s` seconds."""
    rng = random.Random()
    while not stop.wait(every_s):
        listing = market.get(rng.choice(list(DEMO_LISTINGS)))
        if listing is not None:
            tick = Decimal(listing.minmov) / Decimal(listing.pricescale)
            market.set_price(listing.name, listing.price + tick * rng.randint(-3, 3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local TradingView quote WebSocket")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between heartbeats")
    parser.add_argument("--token", help="an auth token the server accepts as real time")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    market = demo_market(args.token, history_s=6 * 3600)
    server = QuoteServer(market, heartbeat_interval_s=args.heartbeat, port=args.port).start()
    print(f"TradingView quote simulator on {server.url}", flush=True)
    stop = threading.Event()
    try:
        random_walk(market, stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
