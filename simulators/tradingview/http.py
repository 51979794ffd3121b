"""The HTTP side of the local TradingView: the home page that turns session cookies into an auth
token (docs/outside/tradingview.md C.6) and the scanner's bulk and single-symbol endpoints (D.5),
from one
`Market`."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from simulators.local_servers import LocalHttpServer
from simulators.tradingview.market import Account, Listing, Market
from simulators.tradingview.tokens import read_claims

DELAYED = "delayed_streaming_600"
LOOP_PATH = "/loop/"


def _update_mode(listing: Listing, authenticated: bool) -> str:
    return "streaming" if authenticated and not listing.delayed else DELAYED


# What each column the simulator knows answers for a listing; anything else is "Unknown field".
COLUMNS: dict[str, Callable[[Listing, bool], Any]] = {
    "close": lambda listing, _: float(listing.price),
    "update_mode": _update_mode,
    "update_time": lambda listing, _: listing.lp_time,
    "update-time": lambda listing, _: listing.lp_time,
    "last_bar_update_time": lambda listing, _: listing.lp_time,
    "description": lambda listing, _: listing.description,
    "pricescale": lambda listing, _: listing.pricescale,
    "minmov": lambda listing, _: listing.minmov,
    "name": lambda listing, _: listing.name.rpartition(":")[2],
    "exchange": lambda listing, _: listing.name.rpartition(":")[0],
    "type": lambda listing, _: "futures",
    "currency": lambda listing, _: "USD",
}


def _compact(value: Any) -> str:
    # The real page embeds compact JSON (`"auth_token":"eyJ…"`, C.2): clients find the token with
    # a pattern that allows no space after the colon, so the simulator must not add one.
    return json.dumps(value, separators=(",", ":"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


def _user_page(account: Account) -> str:
    user_id = int((read_claims(account.token) or {}).get("user_id", 0))
    user = {
        "id": user_id,
        "username": f"trader{user_id}",
        "date_joined": "2023-04-01T10:00:00Z",
        "session_hash": f"sh{user_id:08d}",
        "private_channel": f"pc{user_id:08d}",
        "auth_token": account.token,
        "is_pro": True,
    }
    return _page(f"window.user = {_compact(user)};")


def _anonymous_page(marker: bool) -> str:
    # The site has served both forms to signed-out visitors; clients must handle either.
    if marker:
        user = {"is_authenticated": False, "auth_token": "unauthorized_user_token"}
        return _page(f"window.user = {_compact(user)};")
    return _page('window.user = {"is_authenticated": false};')


def _page(script: str) -> str:
    return (
        "<!DOCTYPE html><html><head><title>TradingView</title>"
        '<script>window.initData = {"theme":"dark"};</script>'
        f"<script>{script}</script></head><body>charts</body></html>"
    )


class SiteServer(LocalHttpServer):
    """www.tradingview.com and scanner.tradingview.com in one local server on a free port.

    Test hooks: `fail_next` queues error answers, `requests` counts requests per route
    (`home`, `scan`, `symbol`), `last_headers[route]` and `scan_bodies` show what clients sent.
    """

    def __init__(
        self,
        market: Market,
        *,
        redirect_to_region: str | None = None,
        redirect_loop: bool = False,
        anonymous_marker: bool = True,
        unknown_columns: Iterable[str] = (),
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.market = market
        self.redirect_to_region = redirect_to_region
        self.redirect_loop = redirect_loop
        self.anonymous_marker = anonymous_marker
        # Columns to refuse although the simulator knows them, as a scanner that dropped a field.
        self.unknown_columns = set(unknown_columns)
        self.requests: Counter[str] = Counter()
        self.last_headers: dict[str, Headers] = {}
        self.scan_bodies: list[dict[str, Any]] = []
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()

    thread_name = "tv-site-server"

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.server_port}"

    def fail_next(self, n: int, status: int = 500, *, route: str | None = None) -> None:
        """Answer the next `n` requests (of `route`, or any) with `status` and an empty body."""
        with self._lock:
            self._failures.extend([(status, route)] * n)

    def count(self, route: str) -> int:
        with self._lock:
            return self.requests[route]

    # --- dispatch -------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        return self._dispatch(request)(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        route = self._route(request)
        if route is None:
            return Response("not found", 404)
        with self._lock:
            self.requests[route] += 1
            self.last_headers[route] = Headers(request.headers)
            failure = self._take_failure(route)
        if failure is not None:
            return Response("", failure)
        if route == "home":
            return self._home(request)
        if route == "scan":
            return self._scan(request)
        return self._symbol(request)

    @staticmethod
    def _route(request: Request) -> str | None:
        path = request.path
        if request.method == "GET" and path == "/symbol":
            return "symbol"
        if request.method == "POST" and path.endswith("/scan") and path.count("/") == 2:
            return "scan"
        region_page = path.count("/") == 2 and path.endswith("/")  # `/fr/`
        if request.method == "GET" and (path == "/" or region_page):
            return "home"
        return None

    def _take_failure(self, route: str) -> int | None:
        for i, (status, only) in enumerate(self._failures):
            if only is None or only == route:
                del self._failures[i]
                return status
        return None

    def _knows(self, column: str) -> bool:
        return column in COLUMNS and column not in self.unknown_columns

    def _account(self, request: Request) -> Account | None:
        account = self.market.accounts.get(request.cookies.get("sessionid", ""))
        if account is None:
            return None
        if (
            account.sessionid_sign
            and request.cookies.get("sessionid_sign") != account.sessionid_sign
        ):
            return None
        return account

    # --- www.tradingview.com --------------------------------------------------------------

    def _home(self, request: Request) -> Response:
        if self.redirect_loop:
            # Alternate absolute and relative locations so clients must resolve both.
            target = f"{self.url}{LOOP_PATH}" if request.path == "/" else "/"
            return Response("", 302, headers={"Location": target})
        if request.path == "/" and self.redirect_to_region:
            return Response("", 302, headers={"Location": f"{self.url}/{self.redirect_to_region}/"})
        account = self._account(request)
        html = _user_page(account) if account else _anonymous_page(self.anonymous_marker)
        return Response(html, 200, content_type="text/html; charset=utf-8")

    # --- scanner.tradingview.com ----------------------------------------------------------

    def _scan(self, request: Request) -> Response:
        # The real scanner reads the body as JSON whatever the Content-Type says.
        try:
            body = json.loads(request.get_data(as_text=True))
            tickers = list(body["symbols"]["tickers"])
            columns = list(body.get("columns") or [])
        except (ValueError, KeyError, TypeError):
            return _json({"totalCount": 0, "error": "Malformed request", "data": None}, 400)
        with self._lock:
            self.scan_bodies.append(body)
        unknown = next((c for c in columns if not self._knows(c)), None)
        if unknown is not None:
            return _json(
                {"totalCount": 0, "error": f'Unknown field "{unknown}"', "data": None}, 400
            )
        authenticated = self._account(request) is not None
        data = []
        for ticker in tickers:
            listing = self.market.get(ticker)
            if listing is not None:
                data.append(
                    {"s": ticker, "d": [COLUMNS[c](listing, authenticated) for c in columns]}
                )
        return _json({"totalCount": len(data), "data": data})

    def _symbol(self, request: Request) -> Response:
        fields = [f for f in request.args.get("fields", "").split(",") if f]
        unknown = next((f for f in fields if not self._knows(f)), None)
        if unknown is not None:
            return _json({"error": f'Unknown field "{unknown}"'}, 400)
        listing = self.market.get(request.args.get("symbol", ""))
        if listing is None:
            # D.2: without no_404=true an unknown symbol is a 404.
            if request.args.get("no_404") == "true":
                return _json({})
            return _json({"error": "not found"}, 404)
        authenticated = self._account(request) is not None
        return _json({f: COLUMNS[f](listing, authenticated) for f in fields})
