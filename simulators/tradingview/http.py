"""The HTTP side of the local TradingView: the home page that turns session cookies into an auth
token (docs/outside/tradingview.md C.6), the two-step password sign-in (C.4) and the scanner's
bulk and single-symbol endpoints (D.5), from one `Market`.

The sign-in follows what independent clients do on the wire (C.4): `POST /accounts/signin/`
with form fields `username`, `password`, `remember`; for an account with two-factor
authentication the answer is `{"error":"2FA_required","code":"2FA_required"}` with provisional
`sessionid`/`sessionid_sign` cookies, and `POST /accounts/two-factor/signin/totp/` with the form
field `code` and those cookies sets the full session cookies. What is not known about the real
site and is a choice of this simulator: the HTTP status and wording of a wrong password
(`200 {"error":"Invalid username or password","code":"invalid_credentials"}`), of a bad code
(401 is known; the body `{"error":"Invalid code","code":"invalid_code"}` is not), of a rate
limit (`429 {"error":"rate_limit","code":"rate_limit"}`; the real site has been seen answering
both the `rate_limit` code and a bare 429), of a captcha (`200 {"error":"recaptcha_required",
"code":"recaptcha_required"}`), how many attempts the limit allows, whether the two steps'
cookies differ (here they do), and the user fields of the success answer.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

import pyotp
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from simulators.local_servers import LocalHttpServer
from simulators.tradingview.market import Account, Listing, Market, SignInUser
from simulators.tradingview.tokens import read_claims

DELAYED = "delayed_streaming_600"
LOOP_PATH = "/loop/"
SIGNIN_PATH = "/accounts/signin/"
TOTP_PATH = "/accounts/two-factor/signin/totp/"
PROVISIONAL_TTL_S = 300  # how long the first step's cookies wait for the code (sim choice)


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


def _user_object(account: Account, username: str | None = None) -> dict[str, Any]:
    user_id = int((read_claims(account.token) or {}).get("user_id", 0))
    return {
        "id": user_id,
        "username": username or f"trader{user_id}",
        "date_joined": "2023-04-01T10:00:00Z",
        "session_hash": f"sh{user_id:08d}",
        "private_channel": f"pc{user_id:08d}",
        "auth_token": account.token,
        "is_pro": True,
    }


def _user_page(account: Account) -> str:
    return _page(f"window.user = {_compact(_user_object(account))};")


def _error(text: str, code: str, status: int = 200) -> Response:
    return _json({"error": text, "code": code}, status)


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
    (`home`, `scan`, `symbol`, `signin`, `totp`), `last_headers[route]` and `scan_bodies` show
    what clients sent. Sign-in: `captcha_required` makes every first step answer
    `recaptcha_required` while it is set; at most `signin_limit` sign-in requests (both steps)
    are answered per `signin_window_s`, the rest get 429; sessions it opens live
    `session_ttl_s`; `signins` lists the outcome of each step (`2FA_required`, `signed_in`,
    `invalid_code`, …).
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
        self.captcha_required = False
        self.signin_limit = 10
        self.signin_window_s = 600.0
        self.session_ttl_s = 4 * 3600
        self.signins: list[str] = []
        self._signin_times: list[float] = []
        # first step's cookies → (user, sessionid_sign, expiry in monotonic seconds)
        self._provisional: dict[str, tuple[SignInUser, str, float]] = {}

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
        if route in ("signin", "totp"):
            return self._sign_in_step(route, request)
        return self._symbol(request)

    @staticmethod
    def _route(request: Request) -> str | None:
        path = request.path
        if request.method == "GET" and path == "/symbol":
            return "symbol"
        if request.method == "POST" and path == SIGNIN_PATH:
            return "signin"
        if request.method == "POST" and path == TOTP_PATH:
            return "totp"
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

    # --- the two-step sign-in (C.4) --------------------------------------------------------

    def _sign_in_step(self, route: str, request: Request) -> Response:
        now = time.monotonic()
        with self._lock:
            self._signin_times = [t for t in self._signin_times if now - t < self.signin_window_s]
            limited = len(self._signin_times) >= self.signin_limit
            self._signin_times.append(now)
        if limited:
            answer, outcome = _error("rate_limit", "rate_limit", 429), "rate_limit"
        elif route == "signin":
            answer, outcome = self._password_step(request)
        else:
            answer, outcome = self._code_step(request)
        with self._lock:
            self.signins.append(outcome)
        return answer

    def _password_step(self, request: Request) -> tuple[Response, str]:
        if self.captcha_required:
            return _error("recaptcha_required", "recaptcha_required"), "recaptcha_required"
        user = self.market.find_user(request.form.get("username", ""))
        if user is None or not secrets.compare_digest(
            user.password.encode(), request.form.get("password", "").encode()
        ):
            answer = _error("Invalid username or password", "invalid_credentials")
            return answer, "invalid_credentials"
        if user.totp_secret is None:
            return self._signed_in(user), "signed_in"
        sessionid, sign = "p" + secrets.token_hex(16), "v3:" + secrets.token_urlsafe(24)
        with self._lock:
            self._provisional[sessionid] = (user, sign, time.monotonic() + PROVISIONAL_TTL_S)
        answer = _error("2FA_required", "2FA_required")
        self._set_cookies(answer, sessionid, sign)
        return answer, "2FA_required"

    def _code_step(self, request: Request) -> tuple[Response, str]:
        sessionid = request.cookies.get("sessionid", "")
        with self._lock:
            waiting = self._provisional.get(sessionid)
        if (
            waiting is None
            or waiting[2] < time.monotonic()
            or request.cookies.get("sessionid_sign") != waiting[1]
        ):
            return _error("Please sign in again", "session_expired", 400), "session_expired"
        user = waiting[0]
        code = request.form.get("code", "")
        totp = pyotp.TOTP(user.totp_secret or "")
        # RFC 6238 with one 30 s step either side, for clocks a little apart.
        at = datetime.fromtimestamp(self.market.clock(), UTC)
        if not totp.verify(code, for_time=at, valid_window=1):
            return _error("Invalid code", "invalid_code", 401), "invalid_code"
        with self._lock:
            self._provisional.pop(sessionid, None)
        return self._signed_in(user), "signed_in"

    def _signed_in(self, user: SignInUser) -> Response:
        account = self.market.open_session(user, self.session_ttl_s)
        answer = _json({"error": "", "user": _user_object(account, user.username)})
        self._set_cookies(answer, account.sessionid, account.sessionid_sign or "")
        return answer

    def _set_cookies(self, answer: Response, sessionid: str, sign: str) -> None:
        secure = self.ssl_context is not None
        for name, value in (("sessionid", sessionid), ("sessionid_sign", sign)):
            answer.set_cookie(name, value, httponly=True, secure=secure, samesite="Lax")

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
