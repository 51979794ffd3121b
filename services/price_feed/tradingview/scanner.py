"""The scanner polling fallback (docs/outside/tradingview.md D): every wanted root in one `POST
/<market>/scan` per
interval, a quote only when `close` moved, exponential back-off while the scanner refuses."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import requests

from libs.common.backoff import capped_exponential
from libs.common.streams import now_ms
from services.price_feed.quotes import Emit, PriceSource, Quote
from services.price_feed.tradingview.auth import BROWSER_USER_AGENT, SessionCookies
from services.price_feed.tradingview.symbols import is_delayed_venue, root_of, tradingview_name

log = logging.getLogger("price_feed")

SITE_ORIGIN = "https://www.tradingview.com"
FULL_COLUMNS = ["close", "update_mode", "update_time"]
CLOSE_ONLY = ["close"]


class ScanFailed(Exception):
    """One poll got no usable answer; the message is the plain sentence for `status.error`."""


@dataclass(frozen=True)
class ScanRow:
    root: str
    close: Decimal
    delayed: bool | None  # None when the answer does not say (close-only columns)


class ScannerSource(PriceSource):
    """Polls the scanner for the last price of every wanted root while the socket is down."""

    name = "scanner"

    def __init__(
        self,
        base_url: str,
        cookie_provider: Callable[[], SessionCookies | None] = lambda: None,
        *,
        interval_s: float = 2.0,
        market: str = "futures",
        http: requests.Session | None = None,
        max_backoff_s: float = 60.0,
        timeout_s: float = 5.0,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.cookie_provider = cookie_provider
        self.interval_s = interval_s
        self.market = market
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.columns = list(FULL_COLUMNS)
        self.polls = 0  # requests sent, for tests and metrics
        self._http = http or requests.Session()
        self._last_close: dict[str, Decimal] = {}
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, emit: Emit) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(emit,), daemon=True, name="scanner-source"
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            # A poll in flight ends within its timeout; the thread is a daemon either way.
            self._thread.join(self.timeout_s + 1)
        self._thread = None
        self._status.connected = False

    def _run(self, emit: Emit) -> None:
        while not self._stop.is_set():
            try:
                wait = self.poll(emit)
            except Exception:  # a bug in one round must not end the fallback for good
                log.exception("scanner poll crashed")
                wait = self._failed("the scanner poll failed unexpectedly")
            if self._stop.wait(wait):
                return

    def poll(self, emit: Emit) -> float:
        """One round: ask, emit what moved, and say how long to wait before the next round."""
        roots = self.symbols
        if not roots:
            return self.interval_s
        cookies = self._cookies()
        try:
            rows = self._scan(roots, cookies)
        except ScanFailed as exc:
            return self._failed(str(exc))
        self._succeeded(roots, rows, cookies is not None)
        for row in rows:
            if self._last_close.get(row.root) != row.close:
                self._last_close[row.root] = row.close
                delayed = row.delayed if row.delayed is not None else cookies is None
                emit(Quote(row.root, row.close, now_ms(), self.name, delayed))
        return self.interval_s

    # --- one request ----------------------------------------------------------------------

    def _cookies(self) -> SessionCookies | None:
        try:
            return self.cookie_provider()
        except Exception as exc:  # polling anonymously beats not polling at all
            log.warning(
                "tradingview cookies unreadable", extra={"kv": {"error": type(exc).__name__}}
            )
            return None

    def _scan(self, roots: set[str], cookies: SessionCookies | None) -> list[ScanRow]:
        names = {tradingview_name(root): root for root in sorted(roots)}
        body = {
            "symbols": {"tickers": list(names), "query": {"types": []}},
            "columns": self.columns,
        }
        headers = {
            "Origin": SITE_ORIGIN,
            "Referer": SITE_ORIGIN + "/",
            "User-Agent": BROWSER_USER_AGENT,
            "Content-Type": "application/json",
        }
        if cookies is not None:
            headers["Cookie"] = cookies.header()
        self.polls += 1
        try:
            response = self._http.post(
                f"{self.base_url}/{self.market}/scan",
                data=json.dumps(body),
                headers=headers,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            reason = f"the TradingView scanner cannot be reached ({type(exc).__name__})"
            raise ScanFailed(reason) from None
        refused = response.status_code == 400 and "Unknown field" in response.text
        if refused and self.columns != CLOSE_ONLY:
            # D.3: the one column that matters is `close`; keep asking for just that from now on.
            kv = {"columns": ",".join(self.columns)}
            log.warning("scanner refused columns; using close only", extra={"kv": kv})
            self.columns = list(CLOSE_ONLY)
            return self._scan(roots, cookies)
        if response.status_code == 429:
            raise ScanFailed("the TradingView scanner is rate limiting (HTTP 429)")
        if response.status_code != 200:
            raise ScanFailed(f"the TradingView scanner answered HTTP {response.status_code}")
        return self._rows(response.text, names)

    def _rows(self, text: str, names: dict[str, str]) -> list[ScanRow]:
        try:
            data = json.loads(text, parse_float=Decimal)["data"] if text.strip() else None
        except (ValueError, KeyError, TypeError):
            raise ScanFailed(
                "the TradingView scanner sent an answer that is not scan data"
            ) from None
        if not isinstance(data, list):
            raise ScanFailed("the TradingView scanner sent an empty answer")
        rows = []
        for item in data:
            row = self._row(item, names)
            if row is not None:
                rows.append(row)
        return rows

    def _row(self, item: object, names: dict[str, str]) -> ScanRow | None:
        if not isinstance(item, dict) or not isinstance(item.get("d"), list):
            return None
        name = str(item.get("s", ""))
        root = names.get(name) or root_of(name)
        values = dict(zip(self.columns, item["d"], strict=False))
        try:
            close = Decimal(str(values.get("close")))
        except InvalidOperation:
            return None  # null close: nothing traded or not entitled; nothing to emit
        if not close.is_finite() or root not in names.values():
            return None
        mode = values.get("update_mode")
        delayed = None if mode is None else mode != "streaming"
        if is_delayed_venue(name):
            delayed = True
        return ScanRow(root, close, delayed)

    # --- status ---------------------------------------------------------------------------

    def _failed(self, reason: str) -> float:
        self._failures += 1
        self._status.connected = False
        self._status.error = reason
        wait = capped_exponential(self._failures, self.interval_s, self.max_backoff_s)
        log.warning("scanner poll failed", extra={"kv": {"error": reason, "retry_in_s": wait}})
        return wait

    def _succeeded(self, roots: set[str], rows: list[ScanRow], sent_cookies: bool) -> None:
        if self._failures:
            self._status.reconnects += 1
        self._failures = 0
        served = {row.root for row in rows}
        # Forget roots no longer wanted so a later re-subscription starts with a fresh quote.
        self._last_close = {r: p for r, p in self._last_close.items() if r in roots}
        # Without an update_mode column, anonymous answers are taken as delayed (D.4).
        delayed = {r.root for r in rows if r.delayed or (r.delayed is None and not sent_cookies)}
        status = self._status
        status.connected = True
        status.error = None
        status.delayed_symbols = delayed
        status.failed_symbols = roots - served
        if not sent_cookies:
            status.authenticated = False
        elif any(row.delayed is None for row in rows):
            status.authenticated = None  # close-only answers do not say which entitlement applied
        else:
            status.authenticated = not delayed
