"""The simulated market shared by the quote socket, the home page and the scanner simulators."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict, Unpack

from simulators.tradingview.tokens import make_jwt, read_claims


@dataclass
class Listing:
    """One symbol as TradingView names it (`CME_MINI:MNQ1!`) with its current quote."""

    name: str
    price: Decimal
    lp_time: int  # unix seconds of the last trade
    description: str = ""
    pricescale: int = 100
    minmov: int = 25
    delayed: bool = False  # served as delayed_streaming_600 even to an authenticated user


@dataclass
class Account:
    """A user whose `sessionid` cookie the home page knows; it issues tokens for the socket."""

    sessionid: str
    token: str
    token_expires_at: int  # unix seconds
    sessionid_sign: str | None = None


Listener = Callable[[Listing], None]


class ListingOptions(TypedDict, total=False):
    """What `Market.list` passes on to a `Listing` beyond its name, price and description."""

    pricescale: int
    minmov: int
    delayed: bool


@dataclass
class Market:
    listings: dict[str, Listing] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)  # by sessionid
    _listeners: list[Listener] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def list(
        self, name: str, price: str | Decimal, description: str = "", **kw: Unpack[ListingOptions]
    ) -> Listing:
        listing = Listing(name, Decimal(str(price)), int(time.time()), description, **kw)
        with self._lock:
            self.listings[name] = listing
        return listing

    def set_price(self, name: str, price: str | Decimal) -> None:
        """Move a symbol's last price; every subscriber of the symbol is told."""
        with self._lock:
            listing = self.listings[name]
            listing.price = Decimal(str(price))
            listing.lp_time = int(time.time())
            listeners = list(self._listeners)
        for listener in listeners:
            listener(listing)

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
        account = Account(sessionid, token, int(time.time()) + ttl_s, sessionid_sign)
        with self._lock:
            self.accounts[sessionid] = account
        return account

    def token_valid(self, token: str) -> bool:
        now = time.time()
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
            expires_at = int(time.time()) + ttl_s
            account.token = make_jwt(
                int(claims.get("user_id", 0)), expires_at, claims.get("plan", "pro")
            )
            account.token_expires_at = expires_at
            return account.token

    def end_session(self, sessionid: str) -> None:
        """The user signed out in the browser: the cookies stop naming an account."""
        with self._lock:
            self.accounts.pop(sessionid, None)
