"""Tradovate market data as a price source: front contract per root, REST lookup, md WebSocket.

docs/outside/tradovate.md §5.2 (contract/find), §6.1–6.3 (frames, heartbeats), §6.5 (quotes).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import requests

from libs.common.futures.instruments import contract_spec, round_to_tick
from libs.common.streams import now_ms
from libs.common.tradovate.frames import (
    ContractLookup,
    Entries,
    Event,
    Response,
    merge_entries,
    read_contract_find,
    trade_price,
)
from libs.common.tradovate.socket_session import (
    CLOSED,
    QUOTA,
    SHUTDOWN,
    SILENT,
    STOPPED,
    UNREACHABLE,
    Connection,
    Dial,
    Ending,
    ReconnectingSocket,
    SocketTimings,
)
from services.price_feed.quotes import Emit, PriceSource, Quote

log = logging.getLogger("price_feed")

NO_TOKEN = "no Tradovate access token: link a Tradovate account"
LOOKUP_TIMEOUT_S = 5.0
UNKNOWN_RETRY_S = 900.0  # a contract Tradovate did not know may be listed later; ask again then

FrontContract = Callable[[str, date], str]
TokenProvider = Callable[[], str | None]


def _default_front_contract(root: str, on: date) -> str:
    # Imported late: rolls.py is written separately and only this default needs it.
    from libs.common.futures.rolls import front_contract

    return front_contract(root, on)


@dataclass
class _Subscriptions:
    """What one md connection subscribed, is waiting for and last saw."""

    next_reconcile: float = 0.0
    subs: dict[str, tuple[str, int]] = field(default_factory=dict)  # name → (root, contractId)
    routes: dict[int, str] = field(default_factory=dict)  # contractId → root
    pending: dict[int, tuple[str, str]] = field(default_factory=dict)  # request id → (root, name)
    quotes: dict[int, Entries] = field(default_factory=dict)  # contractId → merged entries
    emitted: dict[int, Decimal] = field(default_factory=dict)  # contractId → last price sent
    refused: set[str] = field(default_factory=set)  # names the socket would not subscribe
    lookup_error: str | None = None  # the last transient contract/find problem


def _status_error(ending: Ending) -> str | None:
    """What `/status` says about a connection that ended, None to leave the error as it is."""
    if ending.why == UNREACHABLE:
        return f"cannot reach Tradovate market data ({ending.detail})"
    if ending.why == CLOSED:
        if ending.detail:
            return f"Tradovate closed market data ({ending.detail})"
        return "Tradovate closed the market-data socket; reconnecting"
    if ending.why == SILENT:
        return "the Tradovate market-data socket went silent; reconnecting"
    if ending.why in (SHUTDOWN, QUOTA):
        return f"Tradovate is shutting the market-data socket down ({ending.detail})"
    return None


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
        self._sub = _Subscriptions()  # the current connection's
        self._symbols_changed = threading.Event()  # set_symbols: reconcile now, not when due
        self._dialed = 0
        self._stop = threading.Event()
        self._socket: ReconnectingSocket | None = None
        self._thread: threading.Thread | None = None
        self._emit: Emit = lambda quote: None

    # -- PriceSource ---------------------------------------------------------------------------

    def start(self, emit: Emit) -> None:
        self._emit = emit
        self._stop.clear()
        timings = SocketTimings(
            self.heartbeat_interval_s,
            self.silence_timeout_s,
            self.backoff_base_s,
            self.backoff_max_s,
            self.quota_backoff_s,
        )
        self._socket = ReconnectingSocket(
            self,
            timings,
            self._stop,
            name="tradovate md",
            reader_name="tradovate-md-reader",
            rng=self._rng,
            logger=log,
        )
        self._thread = threading.Thread(target=self._socket.run, daemon=True, name="tradovate-md")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._socket is not None:
            self._socket.wake()
        if self._thread is not None:
            self._thread.join(10)
        self._status.connected = False

    def set_symbols(self, symbols: set[str]) -> None:
        super().set_symbols(symbols)
        self._symbols_changed.set()
        if self._socket is not None:
            self._socket.wake()

    def failures(self) -> dict[str, str]:
        """Root → the plain sentence saying why it is in `failed_symbols`."""
        return dict(self._failures)

    # -- the socket session (SocketUser) -------------------------------------------------------

    def dial(self) -> Dial | str:
        token = self._token_provider()
        if not token:
            self._status.connected, self._status.authenticated = False, False
            self._status.error = NO_TOKEN
            return NO_TOKEN
        if self._dialed:
            self._status.reconnects += 1
        self._dialed += 1
        self._sub = _Subscriptions()
        return Dial(self.md_url, token)

    def authorized(self, conn: Connection) -> None:
        self._status.connected = self._status.authenticated = True
        self._status.error = None
        log.info("tradovate md authorized", extra={"kv": {"reconnects": self._status.reconnects}})

    def refused(self, conn: Connection, answer: Response) -> None:
        self._status.authenticated = False
        self._status.error = (
            f"Tradovate refused the market-data access token "
            f"({answer.s} {answer.d}); retrying with a fresh one"
        )

    def on_messages(self, conn: Connection, messages: list[Response | Event]) -> str | None:
        for message in messages:
            if isinstance(message, Response):
                self._on_response(message)
            elif message.e == "md" and isinstance(message.d, dict):
                for quote in message.d.get("quotes") or []:
                    if isinstance(quote, dict):
                        self._on_quote(quote)
        return None

    def next_due(self) -> float:
        return 0.0 if self._symbols_changed.is_set() else self._sub.next_reconcile

    def tick(self, conn: Connection, now: float) -> str | None:
        if self._symbols_changed.is_set() or now >= self._sub.next_reconcile:
            self._symbols_changed.clear()  # before: a change made meanwhile gets its own pass
            self._reconcile(conn)
            self._sub.next_reconcile = time.monotonic() + self.reconcile_interval_s
        return None

    def ended(self, ending: Ending) -> bool:
        self._status.connected = False
        error = _status_error(ending)
        if error is not None and ending.why != STOPPED:
            self._status.error = error
        return ending.authorized

    # -- frames --------------------------------------------------------------------------------

    def _on_response(self, response: Response) -> None:
        sub = self._sub
        pending = None if response.i is None else sub.pending.pop(response.i, None)
        if pending is not None and not response.ok:
            root, name = pending
            # Usually missing market-data entitlements (§6.5); ask again on the next connection.
            sub.refused.add(name)
            self._drop(name)
            self._fail(root, f"Tradovate refused quotes for {name} ({response.s} {response.d})")

    def _on_quote(self, quote: dict[str, Any]) -> None:
        sub = self._sub
        contract_id = quote.get("contractId")
        if not isinstance(contract_id, int) or contract_id not in sub.routes:
            return
        root = sub.routes[contract_id]
        entries = merge_entries(sub.quotes.get(contract_id), quote.get("entries"))
        sub.quotes[contract_id] = entries
        price = trade_price(entries)
        if price is None or price == sub.emitted.get(contract_id):
            return
        sub.emitted[contract_id] = price
        spec = contract_spec(root)
        if spec.known:  # normalises 21012.250 / 21012.25 to one text on the tick grid
            price = round_to_tick(price, spec.tick_size)
        try:
            self._emit(Quote(root, price, now_ms(), self.name, delayed=False))
        except Exception:  # a broken consumer must not kill the socket loop
            log.exception("tradovate quote not delivered", extra={"kv": {"symbol": root}})

    # -- subscriptions -------------------------------------------------------------------------

    def _reconcile(self, conn: Connection) -> None:
        """Make the subscriptions match the wanted roots' front contracts of today."""
        sess = self._sub
        wanted: dict[str, str] = {}
        today = self._clock_date()
        for root in sorted(self.symbols):
            try:
                wanted[root] = self._front_contract(root, today)
            except Exception as exc:  # an unknown root in rolls.py must not stop the others
                self._fail(root, f"no front contract for {root} ({exc})")
        for name, (root, _) in list(sess.subs.items()):
            if wanted.get(root) != name:
                conn.request("md/unsubscribeQuote", {"symbol": name})
                self._drop(name)
        for root in set(self._failures) - set(self.symbols):
            del self._failures[root]
        sess.refused &= set(wanted.values())  # a root asked for again gets another try
        for root, name in wanted.items():
            if name not in sess.subs and name not in sess.refused:
                self._subscribe(conn, root, name)
        self._publish_failures()

    def _subscribe(self, conn: Connection, root: str, name: str) -> None:
        sess = self._sub
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
        request_id = conn.request("md/subscribeQuote", {"symbol": name})
        sess.pending[request_id] = (root, name)
        log.info("tradovate md subscribe", extra={"kv": {"symbol": root, "contract": name}})

    def _drop(self, name: str) -> None:
        sess = self._sub
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
