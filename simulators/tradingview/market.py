"""The simulated market shared by the quote socket, the home page and the scanner simulators: per
symbol its price path (every trade, oldest first) and the session's figures computed from it."""

from __future__ import annotations

import bisect
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict, Unpack

from simulators.tradingview.tokens import make_jwt, read_claims


@dataclass(frozen=True)
class Trade:
    """One point of a listing's price path."""

    time: float  # unix seconds
    price: Decimal
    size: int = 1


# The trades a listing keeps for charts: about a day of a random walk ticking every 2 s; older
# ones fall off (their bars go; the session's open, high and low stay).
MAX_PATH = 50_000


@dataclass
class Listing:
    """One symbol as TradingView names it (`CME_MINI:MNQ1!`) with its current quote.

    The simulator lives in one trading session: every trade it holds for the listing (history
    added with `Market.add_history` included) belongs to that session, so `open`, `high`, `low`
    and `volume` are the session's figures from the simulator's own price path. `prev_close`
    is the price the listing was created with unless given (sim choice)."""

    name: str
    price: Decimal
    lp_time: int  # unix seconds of the last trade
    description: str = ""
    pricescale: int = 100
    minmov: int = 25
    # TradingView's price-grid convention (the charting library's symbology): decimal prices
    # have `fractional` false and `minmove2` 0; bond-style 1/32 prices would set both.
    fractional: bool = False
    minmove2: int = 0
    delayed: bool = False  # served as delayed_streaming_600 even to an authenticated user
    prev_close: Decimal = Decimal(0)
    open: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    volume: int = 0
    path: list[Trade] = field(default_factory=list, repr=False)

    @property
    def tick(self) -> Decimal:
        return Decimal(self.minmov) / Decimal(self.pricescale)

    def record(self, trade: Trade) -> None:
        """Append a trade to the path (kept in time order, the newest MAX_PATH) and fold it into
        the session: the session's open, high and low stay those of every trade recorded."""
        bisect.insort(self.path, trade, key=lambda t: t.time)
        if self.volume == 0:
            self.high = self.low = trade.price
        if self.path[0] is trade:
            self.open = trade.price
        self.high, self.low = max(self.high, trade.price), min(self.low, trade.price)
        self.volume += trade.size
        if len(self.path) > MAX_PATH:  # a simulator left running must not grow without end
            del self.path[: len(self.path) - MAX_PATH]


@dataclass
class Account:
    """A user whose `sessionid` cookie the home page knows; it issues tokens for the socket."""

    sessionid: str
    token: str
    token_expires_at: int  # unix seconds
    sessionid_sign: str | None = None


@dataclass
class SignInUser:
    """A user who can sign in with a password (reference C.4): with `totp_secret` (base32) the
    sign-in takes the authenticator code as a second step, as for every webhook user."""

    username: str
    password: str
    user_id: int
    totp_secret: str | None = None
    email: str = ""


Listener = Callable[[Listing], None]


class ListingOptions(TypedDict, total=False):
    """What `Market.list` passes on to a `Listing` beyond its name, price and description."""

    pricescale: int
    minmov: int
    fractional: bool
    minmove2: int
    delayed: bool


@dataclass
class Market:
    listings: dict[str, Listing] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)  # by sessionid
    users: dict[str, SignInUser] = field(default_factory=dict)  # by username (and e-mail)
    clock: Callable[[], float] = time.time  # when trades happen; tests may pass their own
    _listeners: list[Listener] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list(
        self,
        name: str,
        price: str | Decimal,
        description: str = "",
        prev_close: str | Decimal | None = None,
        **kw: Unpack[ListingOptions],
    ) -> Listing:
        """List a symbol; its first trade is at `price`, now."""
        now = self.clock()
        first = Decimal(str(price))
        listing = Listing(name, first, int(now), description, **kw)
        listing.prev_close = first if prev_close is None else Decimal(str(prev_close))
        listing.record(Trade(now, first))
        with self._lock:
            self.listings[name] = listing
        return listing

    def set_price(self, name: str, price: str | Decimal, size: int = 1) -> None:
        """A trade: move a symbol's last price; every subscriber of the symbol is told."""
        now = self.clock()
        with self._lock:
            listing = self.listings[name]
            listing.price = Decimal(str(price))
            listing.lp_time = int(now)
            listing.record(Trade(now, listing.price, size))
            listeners = list(self._listeners)
        for listener in listeners:
            listener(listing)

    def add_history(self, name: str, trades: Iterable[tuple[float, str | Decimal]]) -> None:
        """Trades from before the simulator started, (unix time, price) each, for charts to show.

        They join the session's figures but never move the last price; nobody is told."""
        with self._lock:
            listing = self.listings[name]
            for at, price in trades:
                listing.record(Trade(at, Decimal(str(price))))

    def trades(self, name: str, since: float = 0.0) -> Sequence[Trade]:
        """The listing's trades at or after `since` (unix seconds), oldest first."""
        with self._lock:
            listing = self.listings.get(name)
            if listing is None:
                return []
            start = bisect.bisect_left(listing.path, since, key=lambda t: t.time)
            return listing.path[start:]

    def set_delayed(self, name: str, delayed: bool) -> None:
        with self._lock:
            self.listings[name].delayed = delayed
            listing = self.listings[name]
            listeners = list(self._listeners)
        for listener in listeners:
            listener(listing)

    def get(self, name: str) -> Listing | None:
        with self._lock:
            return self.listings.get(name)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def add_account(
        self, sessionid: str, token: str, ttl_s: int = 4 * 3600, sessionid_sign: str | None = None
    ) -> Account:
        account = Account(sessionid, token, int(self.clock()) + ttl_s, sessionid_sign)
        with self._lock:
            self.accounts[sessionid] = account
        return account

    def token_valid(self, token: str) -> bool:
        now = self.clock()
        with self._lock:
            return any(
                a.token == token and a.token_expires_at > now for a in self.accounts.values()
            )

    def expire_token(self, token: str) -> None:
        with self._lock:
            for account in self.accounts.values():
                if account.token == token:
                    account.token_expires_at = 0

    def rotate_token(self, sessionid: str, ttl_s: int = 4 * 3600) -> str:
        """Issue the account a fresh token (same user and plan) that the home page serves from now
        on, as the real site does from time to time; the old token stops being accepted."""
        with self._lock:
            account = self.accounts[sessionid]
            claims = read_claims(account.token) or {}
            expires_at = int(self.clock()) + ttl_s
            account.token = make_jwt(
                int(claims.get("user_id", 0)), expires_at, claims.get("plan", "pro")
            )
            account.token_expires_at = expires_at
            return account.token

    def add_user(
        self,
        username: str,
        password: str,
        totp_secret: str | None = None,
        *,
        user_id: int = 1,
        email: str = "",
    ) -> SignInUser:
        """A user who signs in with `password` (and, when `totp_secret` is given, the current
        code of that authenticator key); either the username or the e-mail names them."""
        user = SignInUser(username, password, user_id, totp_secret, email)
        with self._lock:
            self.users[username] = user
            if email:
                self.users[email] = user
        return user

    def find_user(self, name: str) -> SignInUser | None:
        with self._lock:
            return self.users.get(name)

    def open_session(self, user: SignInUser, ttl_s: int = 4 * 3600) -> Account:
        """A signed-in browser session of `user`: new cookies and a token for the socket."""
        expires_at = int(self.clock()) + ttl_s
        token = make_jwt(user.user_id, expires_at)
        sessionid = "s" + secrets.token_hex(16)
        return self.add_account(sessionid, token, ttl_s, "v3:" + secrets.token_urlsafe(24))

    def sessions_of(self, user_id: int) -> tuple[Account, ...]:
        """The live sessions (cookies the home page knows) of a user."""
        with self._lock:
            return tuple(
                a
                for a in self.accounts.values()
                if int((read_claims(a.token) or {}).get("user_id", -1)) == user_id
            )

    def end_session(self, sessionid: str) -> None:
        """The user signed out in the browser: the cookies stop naming an account."""
        with self._lock:
            self.accounts.pop(sessionid, None)
