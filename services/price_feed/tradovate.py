"""Tradovate market data as a price source: front contract per root, REST lookup, md WebSocket.

reference/tradovate.md §5.2 (contract/find), §6.1–6.3 (frames, heartbeats), §6.5 (quotes).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import requests
import websocket

from libs.common.futures.instruments import contract_spec, round_to_tick
from libs.common.streams import now_ms
from libs.common.tradovate.frames import (
    HEARTBEAT,
    Close,
    ContractLookup,
    Entries,
    Event,
    FrameError,
    Messages,
    Open,
    Response,
    build_request,
    merge_entries,
    parse_frame,
    read_contract_find,
    trade_price,
)
from services.price_feed.quotes import Emit, PriceSource, Quote

log = logging.getLogger("price_feed")

NO_TOKEN = "no Tradovate access token: link a Tradovate account"
QUOTA_REASONS = frozenset({"ConnectionQuotaReached", "IPQuotaReached"})
LOOKUP_TIMEOUT_S = 5.0
UNKNOWN_RETRY_S = 900.0  # a contract Tradovate did not know may be listed later; ask again then
_WAKE = object()  # put in the inbox to make the loop look at symbols (or at `stop`) at once
_CLOSED = object()  # put by a reader when its socket is gone

FrontContract = Callable[[str, date], str]
TokenProvider = Callable[[], str | None]


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential back-off with jitter, so many clients do not return in step."""
    return min(cap, base * 2**attempt) * rng.uniform(0.5, 1.0)


def _default_front_contract(root: str, on: date) -> str:
    # Imported late: rolls.py is written separately and only this default needs it.
    from libs.common.futures.rolls import front_contract

    return front_contract(root, on)


@dataclass
class _Session:
    """One md connection: what it subscribed, what it is waiting for, what it last saw."""

    ws: websocket.WebSocket
    generation: int
    opened: float
    last_frame: float
    last_heartbeat: float
    next_reconcile: float = 0.0
    authorized: bool = False
    quota: bool = False  # the server said ConnectionQuotaReached / IPQuotaReached
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))  # 0 is authorize
    subs: dict[str, tuple[str, int]] = field(default_factory=dict)  # name → (root, contractId)
    routes: dict[int, str] = field(default_factory=dict)  # contractId → root
    pending: dict[int, tuple[str, str]] = field(default_factory=dict)  # request id → (root, name)
    quotes: dict[int, Entries] = field(default_factory=dict)  # contractId → merged entries
    emitted: dict[int, Decimal] = field(default_factory=dict)  # contractId → last price sent
    refused: set[str] = field(default_factory=set)  # names the socket would not subscribe
    lookup_error: str | None = None  # the last transient contract/find problem


class TradovateMarketDataSource(PriceSource):
    """Quotes of each wanted root's front contract from Tradovate's market-data socket."""

    name = "tradovate"

    def __init__(
        self,
        md_url: str,
        rest_url: str,
        token_provider: TokenProvider,
        *,
        rest_token_provider: TokenProvider | None = None,
        front_contract: FrontContract | None = None,
        clock_date: Callable[[], date] = lambda: datetime.now(UTC).date(),
        heartbeat_interval_s: float = 2.5,
        silence_timeout_s: float = 15.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        quota_backoff_s: float = 300.0,
        reconcile_interval_s: float = 5.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.md_url = md_url
        self.rest_url = rest_url.rstrip("/")
        self._token_provider = token_provider
        # §2.7: the md socket may want mdAccessToken while REST wants accessToken.
        self._rest_token_provider = rest_token_provider or token_provider
        self._front_contract = front_contract or _default_front_contract
        self._clock_date = clock_date
        self.heartbeat_interval_s = heartbeat_interval_s
        self.silence_timeout_s = silence_timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.quota_backoff_s = quota_backoff_s
        self.reconcile_interval_s = reconcile_interval_s
        self._rng = random.Random(seed)
        self._http = requests.Session()
        self._contract_ids: dict[str, int] = {}  # name → contractId, for the life of the source
        self._unknown: dict[str, tuple[str, float]] = {}  # name → (reason, when it was asked)
        self._failures: dict[str, str] = {}  # root → why it cannot be served
        self._inbox: queue.Queue[tuple[int | None, object]] = queue.Queue()
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._emit: Emit = lambda quote: None

    # -- PriceSource ---------------------------------------------------------------------------

    def start(self, emit: Emit) -> None:
        self._emit = emit
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tradovate-md")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put((None, _WAKE))
        if self._thread is not None:
            self._thread.join(10)
        self._status.connected = False

    def set_symbols(self, symbols: set[str]) -> None:
        super().set_symbols(symbols)
        self._inbox.put((None, _WAKE))

    def failures(self) -> dict[str, str]:
        """Root → the plain sentence saying why it is in `failed_symbols`."""
        return dict(self._failures)

    # -- connection loop -----------------------------------------------------------------------

    def _run(self) -> None:
        attempt, sessions = 0, 0
        while not self._stop.is_set():
            quota = False
            token = self._token_provider()
            if not token:
                self._status.connected, self._status.authenticated = False, False
                self._status.error = NO_TOKEN
            else:
                if sessions:
                    self._status.reconnects += 1
                sessions += 1
                authorized, quota = self._connect(token)
                attempt = 0 if authorized else attempt
            if self._stop.is_set():
                break
            if quota:
                wait = self.quota_backoff_s * self._rng.uniform(1.0, 1.2)
            else:
                wait = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)
                attempt += 1
            log.info(
                "tradovate md reconnect", extra={"kv": {"in_s": round(wait, 2), "quota": quota}}
            )
            self._stop.wait(wait)

    def _connect(self, token: str) -> tuple[bool, bool]:
        """Run one connection to its end; (was it authorized, did the server cite a quota)."""
        try:
            ws = websocket.create_connection(
                self.md_url, timeout=min(10.0, self.silence_timeout_s), enable_multithread=True
            )
        except (OSError, websocket.WebSocketException) as exc:
            self._status.error = f"cannot reach Tradovate market data ({type(exc).__name__})"
            log.warning("tradovate md connect failed", extra={"kv": {"error": type(exc).__name__}})
            return False, False
        ws.settimeout(None)  # the reader blocks; silence is judged by the loop, which shuts it
        self._generation += 1
        now = time.monotonic()
        sess = _Session(ws, self._generation, now, now, now)
        threading.Thread(
            target=self._read, args=(ws, sess.generation), daemon=True, name="tradovate-md-reader"
        ).start()
        try:
            self._serve(sess, token)
        finally:
            self._status.connected = False
            self._close(ws)
        return sess.authorized, sess.quota

    def _read(self, ws: websocket.WebSocket, generation: int) -> None:
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self._inbox.put((generation, data.decode("utf-8", errors="replace")))
        except (OSError, websocket.WebSocketException, ValueError):
            pass
        self._inbox.put((generation, _CLOSED))

    @staticmethod
    def _close(ws: websocket.WebSocket) -> None:
        with contextlib.suppress(OSError, websocket.WebSocketException):
            ws.send_close()
        ws.shutdown()

    def _serve(self, sess: _Session, token: str) -> None:
        """Answer frames, send heartbeats, follow the symbols, until the connection must end."""
        while not self._stop.is_set():
            now = time.monotonic()
            due = min(
                sess.last_heartbeat + self.heartbeat_interval_s,
                sess.last_frame + self.silence_timeout_s,
                sess.next_reconcile if sess.authorized else now + 1.0,
            )
            try:
                generation, item = self._inbox.get(timeout=max(0.0, due - now))
            except queue.Empty:
                generation, item = None, None
            now = time.monotonic()
            if item is _WAKE:
                sess.next_reconcile = now
            elif item is not None and generation == sess.generation:
                if item is _CLOSED:
                    self._status.error = "Tradovate closed the market-data socket; reconnecting"
                    return
                sess.last_frame = now
                if not self._on_frame(sess, str(item), token):
                    return
            if now - sess.last_heartbeat >= self.heartbeat_interval_s:
                self._send(sess, HEARTBEAT)
                sess.last_heartbeat = now
            if now - sess.last_frame >= self.silence_timeout_s or (
                not sess.authorized and now - sess.opened >= self.silence_timeout_s
            ):
                self._status.error = "the Tradovate market-data socket went silent; reconnecting"
                log.warning("tradovate md silent", extra={"kv": {"s": self.silence_timeout_s}})
                return
            if sess.authorized and now >= sess.next_reconcile:
                self._reconcile(sess)
                sess.next_reconcile = time.monotonic() + self.reconcile_interval_s

    def _send(self, sess: _Session, text: str) -> None:
        # A failed send needs no handling here: the reader sees the socket go and ends the session.
        with contextlib.suppress(OSError, websocket.WebSocketException):
            sess.ws.send(text)

    # -- frames --------------------------------------------------------------------------------

    def _on_frame(self, sess: _Session, text: str, token: str) -> bool:
        """Handle one server frame; False when the connection has to end."""
        try:
            frame = parse_frame(text)
        except FrameError as exc:
            log.warning("tradovate md frame unreadable", extra={"kv": {"error": str(exc)}})
            return True
        if isinstance(frame, Open):
            self._send(sess, build_request("authorize", 0, "", token))
        elif isinstance(frame, Close):
            self._status.error = f"Tradovate closed market data ({frame.code} {frame.reason})"
            return False
        elif isinstance(frame, Messages):
            for message in frame.items:
                on = self._on_response if isinstance(message, Response) else self._on_event
                if not on(sess, message):  # type: ignore[arg-type]
                    return False
        return True

    def _on_response(self, sess: _Session, response: Response) -> bool:
        if response.i == 0 and not sess.authorized:
            if not response.ok:
                self._status.authenticated = False
                self._status.error = (
                    f"Tradovate refused the market-data access token "
                    f"({response.s} {response.d}); retrying with a fresh one"
                )
                log.warning("tradovate md authorize refused", extra={"kv": {"status": response.s}})
                return False
            sess.authorized = True
            self._status.connected = self._status.authenticated = True
            self._status.error = None
            log.info(
                "tradovate md authorized", extra={"kv": {"reconnects": self._status.reconnects}}
            )
            return True
        root, name = sess.pending.pop(response.i, (None, None))  # type: ignore[arg-type]
        if root is not None and name is not None and not response.ok:
            # Usually missing market-data entitlements (§6.5); ask again on the next connection.
            sess.refused.add(name)
            self._drop(sess, name)
            self._fail(root, f"Tradovate refused quotes for {name} ({response.s} {response.d})")
        return True

    def _on_event(self, sess: _Session, event: Event) -> bool:
        if event.e == "shutdown":
            d = event.d if isinstance(event.d, dict) else {}
            code = str(d.get("reasonCode", ""))
            sess.quota = code in QUOTA_REASONS
            self._status.error = f"Tradovate is shutting the market-data socket down ({code})"
            log.warning("tradovate md shutdown", extra={"kv": {"reason_code": code}})
            return False
        if event.e == "md" and isinstance(event.d, dict):
            for quote in event.d.get("quotes") or []:
                if isinstance(quote, dict):
                    self._on_quote(sess, quote)
        return True

    def _on_quote(self, sess: _Session, quote: dict[str, Any]) -> None:
        contract_id = quote.get("contractId")
        root = sess.routes.get(contract_id) if isinstance(contract_id, int) else None
        if root is None:
            return
        entries = merge_entries(sess.quotes.get(contract_id), quote.get("entries"))
        sess.quotes[contract_id] = entries
        price = trade_price(entries)
        if price is None or price == sess.emitted.get(contract_id):
            return
        sess.emitted[contract_id] = price
        spec = contract_spec(root)
        if spec.known:  # normalises 21012.250 / 21012.25 to one text on the tick grid
            price = round_to_tick(price, spec.tick_size)
        try:
            self._emit(Quote(root, price, now_ms(), self.name, delayed=False))
        except Exception:  # a broken consumer must not kill the socket loop
            log.exception("tradovate quote not delivered", extra={"kv": {"symbol": root}})

    # -- subscriptions -------------------------------------------------------------------------

    def _reconcile(self, sess: _Session) -> None:
        """Make the subscriptions match the wanted roots' front contracts of today."""
        wanted: dict[str, str] = {}
        today = self._clock_date()
        for root in sorted(self.symbols):
            try:
                wanted[root] = self._front_contract(root, today)
            except Exception as exc:  # an unknown root in rolls.py must not stop the others
                self._fail(root, f"no front contract for {root} ({exc})")
        for name, (root, _) in list(sess.subs.items()):
            if wanted.get(root) != name:
                request = build_request("md/unsubscribeQuote", next(sess.ids), "", {"symbol": name})
                self._send(sess, request)
                self._drop(sess, name)
        for root in set(self._failures) - set(self.symbols):
            del self._failures[root]
        sess.refused &= set(wanted.values())  # a root asked for again gets another try
        for root, name in wanted.items():
            if name not in sess.subs and name not in sess.refused:
                self._subscribe(sess, root, name)
        self._publish_failures()

    def _subscribe(self, sess: _Session, root: str, name: str) -> None:
        lookup = self._lookup(name)
        if lookup.failure:
            self._fail(root, lookup.failure)
            return
        if lookup.contract_id is None:
            self._status.error = sess.lookup_error = lookup.transient
            return
        if sess.lookup_error and self._status.error == sess.lookup_error:
            self._status.error = sess.lookup_error = None  # the hiccup is over
        self._failures.pop(root, None)
        sess.subs[name] = (root, lookup.contract_id)
        sess.routes[lookup.contract_id] = root
        request_id = next(sess.ids)
        sess.pending[request_id] = (root, name)
        self._send(sess, build_request("md/subscribeQuote", request_id, "", {"symbol": name}))
        log.info("tradovate md subscribe", extra={"kv": {"symbol": root, "contract": name}})

    def _drop(self, sess: _Session, name: str) -> None:
        _, contract_id = sess.subs.pop(name, (None, None))
        if contract_id is not None:
            sess.routes.pop(contract_id, None)
            sess.quotes.pop(contract_id, None)
            sess.emitted.pop(contract_id, None)

    def _fail(self, root: str, reason: str) -> None:
        self._failures[root] = reason
        self._status.error = reason
        self._publish_failures()
        log.warning("tradovate symbol failed", extra={"kv": {"symbol": root, "reason": reason}})

    def _publish_failures(self) -> None:
        self._status.failed_symbols = set(self._failures)

    def _lookup(self, name: str) -> ContractLookup:
        """contract/find, cached per name (ids do not change); refusals are re-asked rarely."""
        if name in self._contract_ids:
            return ContractLookup(contract_id=self._contract_ids[name])
        refused = self._unknown.get(name)
        if refused and time.monotonic() - refused[1] < UNKNOWN_RETRY_S:
            return ContractLookup(failure=refused[0])
        token = self._rest_token_provider()
        if not token:
            return ContractLookup(transient=NO_TOKEN)
        try:
            response = self._http.get(
                f"{self.rest_url}/contract/find",
                params={"name": name},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=LOOKUP_TIMEOUT_S,
            )
            body = response.json() if response.content else None
        except (requests.RequestException, ValueError) as exc:
            return ContractLookup(transient=f"contract lookup failed ({type(exc).__name__})")
        lookup = read_contract_find(name, response.status_code, body)
        if lookup.contract_id is not None:
            self._contract_ids[name] = lookup.contract_id
        elif lookup.failure:
            self._unknown[name] = (lookup.failure, time.monotonic())
        return lookup
