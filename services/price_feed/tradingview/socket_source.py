"""The TradingView quote WebSocket as a price source (docs/outside/tradingview.md B.12).

One daemon thread per source connects, subscribes every wanted root, merges the quote deltas and
emits a Quote for each new last price; it reconnects with backoff and follows `set_symbols`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import string
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import websocket

from libs.common.backoff import backoff_delay
from libs.common.futures.instruments import contract_spec, round_to_tick
from services.price_feed.quotes import Emit, PriceSource, Quote
from services.price_feed.tradingview.framing import (
    FramingError,
    Heartbeat,
    Hello,
    Message,
    decode,
    encode_message,
)
from services.price_feed.tradingview.symbols import is_delayed_venue, tradingview_name

log = logging.getLogger(__name__)

ORIGIN = "https://www.tradingview.com"
# Since late 2025 a firewall in front of the socket turns away clients that do not look like a
# browser.
BROWSER_HEADERS = [
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Accept-Language: en-US,en;q=0.9",
    "Cache-Control: no-cache",
    "Pragma: no-cache",
]
ANONYMOUS = "unauthorized_user_token"
QUOTE_FIELDS = (
    "lp",
    "lp_time",
    "ch",
    "chp",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "volume",
    "open_price",
    "high_price",
    "low_price",
    "prev_close_price",
    "current_session",
    "update_mode",
    "original_name",
    "pro_name",
    "short_name",
    "exchange",
    "description",
    "type",
    "pricescale",
    "minmov",
    "currency_code",
    "timezone",
)
REFUSED_TOKEN = (
    "TradingView refused the auth token; streaming anonymously (delayed) until a new token arrives"
)
REFUSING_STATUSES = (403, 429)  # the firewall or the rate limit: wait long before trying again
_POLL_S = 0.2  # read timeout, so stop(), set_symbols and silence are noticed between packets
_STABLE_AFTER_S = 60.0  # a connection that streamed this long resets the backoff
_MAX_REJECTIONS = 3  # critical_errors per connection before we reconnect instead


class _Closed(Exception):
    """Ends one connection: why (for logs and status) and whether to back off for long."""

    def __init__(
        self, reason: str, *, refused: bool = False, error: str | None = None, at_once: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused
        self.error = error or reason
        self.at_once = at_once  # reconnect without backing off (we closed it on purpose)


@dataclass
class _Connection:
    """What lives and dies with one socket."""

    ws: websocket.WebSocket
    token: str | None  # None: anonymous
    auth_problem: str | None  # why we are anonymous against our will, if we are
    opened_at: float
    last_packet_at: float
    hello: bool = False
    data_flowing: bool = False
    rejections: int = 0  # critical_errors on our quote session
    qs: str = ""
    subscribed: dict[str, str] = field(default_factory=dict)  # TradingView name → root
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # name as echoed → fields


class TradingViewSocketSource(PriceSource):
    """Quotes from `wss://data.tradingview.com/socket.io/websocket` (or a simulator)."""

    name = "tradingview"

    def __init__(
        self,
        url: str,
        token_provider: Callable[[], str | None],
        *,
        heartbeat_timeout_s: float = 30.0,
        hello_timeout_s: float = 10.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        refused_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_token_refused: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self.url = url
        self._token_provider = token_provider
        # Tells whoever issued the token to fetch a new one rather than serve the cached one.
        self._on_token_refused = on_token_refused
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.hello_timeout_s = hello_timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.refused_backoff_s = refused_backoff_s
        self._clock = clock
        self._emit: Emit | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempt = 0
        self._ever_connected = False
        self._rejected_token: str | None = None  # sha256 of the token TradingView refused
        self._reconnect_requested = threading.Event()
        self._last_tick: dict[str, tuple[int | None, Decimal]] = {}  # root → (lp_time, lp) emitted
        self._rng = random.Random()

    # -- PriceSource -----------------------------------------------------------------------

    def start(self, emit: Emit) -> None:
        self._emit = emit
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tradingview-socket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.hello_timeout_s + 2)
            self._thread = None
        self._status.connected = False

    # -- connection loop -------------------------------------------------------------------

    def credentials_changed(self) -> None:
        self._reconnect_requested.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            refused = False
            try:
                self._connect_and_stream()
            except _Closed as closed:
                refused = closed.refused
                if closed.at_once:
                    self._status.connected = False
                    continue
                if not self._stop.is_set():
                    log.info("tradingview disconnected reason=%r", closed.reason)
                    self._status.error = closed.error
            except Exception as exc:  # a bug in one packet's handling must not end the feed
                log.exception("tradingview connection_failed error=%s", type(exc).__name__)
                self._status.error = f"unexpected error in the TradingView client: {exc}"
            self._status.connected = False
            if not self._stop.is_set():
                self._stop.wait(self._backoff_delay(refused))

    def _connect_and_stream(self) -> None:
        token, problem = self._choose_token()
        ws = self._open()
        now = self._clock()
        conn = _Connection(ws, token, problem, opened_at=now, last_packet_at=now)
        try:
            self._stream(conn)
        finally:
            _close_quietly(ws)
            if conn.hello and self._clock() - conn.opened_at >= _STABLE_AFTER_S:
                self._attempt = 0

    def _choose_token(self) -> tuple[str | None, str | None]:
        """The token for this connection and, when we must go anonymous, the reason."""
        try:
            token = self._token_provider()
        except Exception as exc:  # someone else's code reading cookies: anything can go wrong
            log.warning("tradingview token_unavailable error=%s", type(exc).__name__)
            self._status.error = f"could not get the TradingView auth token: {exc}"
            return None, self._status.error
        if not token:
            return None, None
        digest = hashlib.sha256(token.encode()).hexdigest()
        if digest == self._rejected_token:
            return None, REFUSED_TOKEN  # same token as the refused one: do not ask again
        self._rejected_token = None
        return token, None

    def _open(self) -> websocket.WebSocket:
        ws = websocket.WebSocket()
        try:
            ws.connect(
                self.url, origin=ORIGIN, header=BROWSER_HEADERS, timeout=self.hello_timeout_s
            )
        except websocket.WebSocketBadStatusException as exc:
            refused = exc.status_code in REFUSING_STATUSES
            raise _Closed(
                f"TradingView refused the upgrade with HTTP {exc.status_code}", refused=refused
            ) from None
        except (websocket.WebSocketException, OSError) as exc:
            raise _Closed(f"cannot connect to TradingView: {exc}") from None
        ws.settimeout(_POLL_S)
        if self._ever_connected:
            self._status.reconnects += 1
        self._ever_connected = True
        return ws

    def _stream(self, conn: _Connection) -> None:
        while not self._stop.is_set():
            self._check_liveness(conn)
            if conn.hello:
                self._sync_symbols(conn)
            message = self._receive(conn)
            if message is None:
                continue
            conn.last_packet_at = self._clock()
            try:
                packets = decode(message)
            except FramingError as exc:
                raise _Closed(f"malformed frame from TradingView: {exc}") from None
            for packet in packets:
                self._on_packet(conn, packet)

    def _check_liveness(self, conn: _Connection) -> None:
        if self._reconnect_requested.is_set():
            self._reconnect_requested.clear()
            self._rejected_token = None  # the new credentials deserve a try
            raise _Closed("reconnecting with new credentials", at_once=True)
        now = self._clock()
        if not conn.hello and now - conn.opened_at > self.hello_timeout_s:
            raise _Closed(f"no hello from TradingView within {self.hello_timeout_s:g} s")
        if now - conn.last_packet_at > self.heartbeat_timeout_s:
            raise _Closed(f"nothing from TradingView for {self.heartbeat_timeout_s:g} s")

    def _receive(self, conn: _Connection) -> str | None:
        """The next text message, None when the read timed out."""
        try:
            opcode, data = conn.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as exc:
            raise _Closed(f"connection to TradingView lost: {exc or type(exc).__name__}") from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
            raise _Closed(f"TradingView closed the connection (code {code})")
        if opcode != websocket.ABNF.OPCODE_TEXT:
            raise _Closed("TradingView sent a binary frame")
        return data.decode("utf-8") if isinstance(data, bytes) else data

    def _backoff_delay(self, refused: bool) -> float:
        delay = backoff_delay(self._attempt, self.backoff_base_s, self.backoff_max_s, self._rng)
        self._attempt += 1
        return max(delay, self.refused_backoff_s) if refused else delay

    # -- protocol --------------------------------------------------------------------------

    def _send(self, conn: _Connection, method: str, params: list[Any]) -> None:
        try:
            conn.ws.send(encode_message(method, params))
        except (websocket.WebSocketException, OSError) as exc:
            raise _Closed(f"cannot send to TradingView: {exc or type(exc).__name__}") from None

    def _on_packet(self, conn: _Connection, packet: Heartbeat | Hello | Message) -> None:
        if isinstance(packet, Heartbeat):
            try:  # the server only wants its own packet back, unchanged
                conn.ws.send(packet.raw)
            except (websocket.WebSocketException, OSError) as exc:
                raise _Closed(f"cannot echo a heartbeat: {exc}") from None
        elif isinstance(packet, Hello):
            if not conn.hello:
                self._set_up(conn)
        elif packet.method == "qsd":
            self._on_qsd(conn, packet.params)
        elif packet.method == "critical_error":
            if packet.params and packet.params[0] == conn.qs:
                self._on_critical_error(conn, packet.params[1:])
        elif packet.method == "protocol_error":
            self._on_protocol_error(conn, str(packet.params[0]) if packet.params else "")

    def _set_up(self, conn: _Connection) -> None:
        conn.hello = True
        self._send(conn, "set_auth_token", [conn.token or ANONYMOUS])
        self._send(conn, "set_locale", ["en", "US"])
        self._open_session(conn)
        self._status.connected = True
        if conn.token is None:
            self._status.authenticated = False
        log.info(
            "tradingview connected url=%s auth=%s session=%s symbols=%d",
            self.url,
            "token" if conn.token else "anonymous",
            conn.qs,
            len(conn.subscribed),
        )

    def _open_session(self, conn: _Connection) -> None:
        """A fresh quote session with every wanted symbol: after the hello and after a rejection."""
        conn.qs = "qs_" + "".join(self._rng.choices(string.ascii_letters + string.digits, k=12))
        conn.subscribed, conn.records = {}, {}
        self._send(conn, "quote_create_session", [conn.qs])
        self._send(conn, "quote_set_fields", [conn.qs, *QUOTE_FIELDS])
        self._sync_symbols(conn, force=True)

    def _sync_symbols(self, conn: _Connection, force: bool = False) -> None:
        wanted = {tradingview_name(root): root for root in self.symbols}
        added = sorted(wanted.keys() - conn.subscribed.keys())
        removed = sorted(conn.subscribed.keys() - wanted.keys())
        if not (added or removed or force):
            return
        if removed:
            self._send(conn, "quote_remove_symbols", [conn.qs, *removed])
            gone = {conn.subscribed[name] for name in removed}
            for name in removed:
                conn.records.pop(name, None)
            self._status.delayed_symbols = self._status.delayed_symbols - gone
            self._status.failed_symbols = self._status.failed_symbols - gone
        if added:
            self._send(conn, "quote_add_symbols", [conn.qs, *added])
        conn.subscribed = wanted
        # browsers resend the whole fast list after every change (replace semantics)
        self._send(conn, "quote_fast_symbols", [conn.qs, *sorted(wanted)])

    def _on_critical_error(self, conn: _Connection, detail: list[Any]) -> None:
        log.warning("tradingview critical_error session=%s detail=%s", conn.qs, detail)
        conn.rejections += 1
        if conn.rejections > _MAX_REJECTIONS:  # recreating in a tight loop helps nobody
            raise _Closed(f"TradingView keeps rejecting the quote session: {detail}")
        self._send(conn, "quote_delete_session", [conn.qs])
        self._open_session(conn)

    def _on_protocol_error(self, conn: _Connection, text: str) -> None:
        if text == "bad auth token" and conn.token is not None:
            self._rejected_token = hashlib.sha256(conn.token.encode()).hexdigest()
            self._status.authenticated = False
            log.warning("tradingview auth_token_refused fallback=anonymous")
            self._on_token_refused()
            raise _Closed("TradingView refused the auth token", error=REFUSED_TOKEN)
        raise _Closed(f"TradingView protocol_error: {text}")

    def _on_qsd(self, conn: _Connection, params: list[Any]) -> None:
        if len(params) < 2 or params[0] != conn.qs or not isinstance(params[1], dict):
            return  # a late packet of a deleted session, or a shape we do not know
        body = params[1]
        name = body.get("n")
        if not isinstance(name, str):
            return
        root = conn.subscribed.get(name)
        if root is None:
            return
        if body.get("s", "ok") != "ok":
            if root not in self._status.failed_symbols:
                log.warning(
                    "tradingview symbol_failed symbol=%s status=%s reason=%r",
                    name,
                    body.get("s"),
                    body.get("errmsg"),
                )
                self._status.failed_symbols = self._status.failed_symbols | {root}
            return
        values = body.get("v")
        if not isinstance(values, dict):
            return
        record = conn.records.setdefault(name, {})
        record.update(values)  # deltas carry only what changed; null overwrites too
        self._on_data(conn, root, record)
        if isinstance(values.get("lp"), int | Decimal):
            self._emit_tick(root, record)

    def _on_data(self, conn: _Connection, root: str, record: dict[str, Any]) -> None:
        if not conn.data_flowing:
            # no protocol_error so far and data arrives: whatever token we sent was accepted
            conn.data_flowing = True
            self._status.authenticated = conn.token is not None
            self._status.error = conn.auth_problem
        if root in self._status.failed_symbols:
            self._status.failed_symbols = self._status.failed_symbols - {root}
        delayed = _is_delayed(record)
        if delayed != (root in self._status.delayed_symbols):
            symbols = self._status.delayed_symbols
            self._status.delayed_symbols = symbols | {root} if delayed else symbols - {root}

    def _emit_tick(self, root: str, record: dict[str, Any]) -> None:
        lp = Decimal(str(record["lp"]))
        lp_time = (
            int(record["lp_time"]) if isinstance(record.get("lp_time"), int | Decimal) else None
        )
        last = self._last_tick.get(root)
        if last is not None:
            last_time, last_lp = last
            if lp_time is not None and last_time is not None:
                # a reconnect snapshot may be older than the last tick: never go back in time
                if lp_time < last_time or (lp_time == last_time and lp == last_lp):
                    return
            elif lp == last_lp:
                return
        self._last_tick[root] = (lp_time, lp)
        tick = _tick_size(root, record)
        price = round_to_tick(lp, tick) if tick else lp
        quote = Quote(root, price, int(time.time() * 1000), self.name, _is_delayed(record))
        if self._emit is not None:
            try:
                self._emit(quote)
            except Exception:  # the feed's problem; the socket keeps streaming
                log.exception("tradingview emit_failed symbol=%s", root)


def _is_delayed(record: dict[str, Any]) -> bool:
    mode = record.get("update_mode")
    original = record.get("original_name")
    return (mode is not None and mode != "streaming") or (
        isinstance(original, str) and is_delayed_venue(original)
    )


def _tick_size(root: str, record: dict[str, Any]) -> Decimal | None:
    """TradingView's own grid (minmov / pricescale) when it sent one, else the contract table's."""
    scale, minmov = record.get("pricescale"), record.get("minmov")
    if (
        isinstance(scale, int | Decimal)
        and isinstance(minmov, int | Decimal)
        and scale > 0 < minmov
    ):
        return Decimal(minmov) / Decimal(scale)
    spec = contract_spec(root)
    return spec.tick_size if spec.known else None


def _close_quietly(ws: websocket.WebSocket) -> None:
    with contextlib.suppress(Exception):  # already gone; nothing more to say to it
        ws.close(timeout=1)
    ws.shutdown()
