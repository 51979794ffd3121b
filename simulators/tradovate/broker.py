"""The simulated Tradovate REST API on 127.0.0.1 (tradovate.md §2–§5, §9): tokens and OAuth,
accounts, orders, positions, cash balances, reports and throttles, plus the lookups of
`ContractRestServer`. `serve` answers one operation whether it came over HTTP or over the account
WebSocket, which accepts every endpoint but the `auth/*` token ones (§5.1).

Sim choices: the OAuth consent page (`GET /oauth` or `/oauth/authorize`) shows no login form; it
redirects back at once with a code for `user=` (a sim-only parameter) or the first user. Any
`appId` is accepted with the right `cid` and `sec`: users name their own app when they register an
API key, and what Tradovate checks about the name is not published.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from simulators.tradovate import broker_ledger, broker_strategies
from simulators.tradovate.broker_access import (
    ANONYMOUS,
    LOCKED,
    Access,
    OAuthRefused,
    Penalty,
    Session,
)
from simulators.tradovate.broker_entities import (
    JSON,
    Account,
    OrderInvalid,
    OrderRefused,
    OrderSpec,
)
from simulators.tradovate.broker_state import Book, Listener
from simulators.tradovate.contracts import ContractCatalogue, ContractRestServer

# Entity → the field its `/deps?masterid=` filters on (§4: Account → Order, Order → Fill, …).
DEPS = {
    "account": "id",
    "accountriskstatus": "id",
    "order": "accountId",
    "position": "accountId",
    "orderversion": "orderId",
    "command": "orderId",
    "fill": "orderId",
    "orderstrategy": "accountId",
    "orderstrategylink": "orderStrategyId",
    "cashbalance": "accountId",
    "commandreport": "commandId",
    "executionreport": "commandId",
    "fillpair": "positionId",
}
COMMANDS = {
    "order/placeorder",
    "order/placeoso",
    "order/placeoco",
    "order/modifyorder",
    "order/cancelorder",
    "order/liquidateposition",
    "orderstrategy/startorderstrategy",
    "orderstrategy/interruptorderstrategy",
}
BAD_LOGIN = "Incorrect username or password. Please try again."


def _json(body: Any, status: int = 200) -> Response:
    def number(value: Any) -> float:
        if isinstance(value, Decimal):
            return float(value)  # Tradovate sends doubles; repr keeps 112.015625 exact
        raise TypeError(f"{type(value).__name__} is not JSON")

    return Response(json.dumps(body, default=number), status=status, mimetype="application/json")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _int(value: Any) -> int | None:
    try:
        return int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _price(body: JSON, field: str) -> Decimal | None:
    value = body.get(field)
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        return Decimal(str(value))
    except InvalidOperation:
        raise OrderInvalid(field, value, f"{field} must be a number") from None


def _raw(body: JSON, field: str) -> Any:
    """A field as the client sent it (None when missing); the book refuses what Tradovate would."""
    return body.get(field)


def _spec(body: JSON, qty: Any = None) -> OrderSpec:
    return OrderSpec(
        action=_raw(body, "action"),
        qty=body.get("orderQty", qty),
        order_type=_raw(body, "orderType"),
        price=_price(body, "price"),
        stop_price=_price(body, "stopPrice"),
        time_in_force=body.get("timeInForce"),
        cl_ord_id=body.get("clOrdId"),
        text=_raw(body, "text"),
    )


class BrokerSimulator(ContractRestServer):
    """One Tradovate environment (live or demo) with users, accounts and test hooks."""

    def __init__(
        self,
        catalogue: ContractCatalogue,
        *,
        users: dict[str, str],
        environment: str = "demo",
        port: int = 0,
        app_id: str = "JustTrades",
        cid: int = 1234,
        sec: str = "sim-api-secret",
        oauth_clients: dict[str, str] | None = None,
        require_device_id: bool | None = None,
        token_ttl_s: float = 5400.0,
        rate_limit_per_minute: int | None = None,
        lockout_per_minute: int | None = None,
        penalty_s: float = 5.0,
        lockout_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(catalogue, lambda token: self.access.token_valid(token), port=port)
        self.environment = environment
        self.app_id, self.cid, self.sec = app_id, cid, sec
        # Live refuses orders from unverified devices while demo does not (§2.6).
        live = environment == "live"
        self.require_device_id = live if require_device_id is None else require_device_id
        self.access = Access(
            users,
            clock=clock,
            token_ttl_s=token_ttl_s,
            oauth_clients=oauth_clients or {"jt-oauth-client": "jt-oauth-secret"},
            rate_limit_per_minute=rate_limit_per_minute,
            lockout_per_minute=lockout_per_minute,
            penalty_s=penalty_s,
            lockout_s=lockout_s,
        )
        self.book = Book(catalogue, clock)
        self.clock = clock
        self.user_ids = {name: 4_411_223 + i for i, name in enumerate(users)}
        for name in users:
            self.book.add_account(name, self.user_ids[name])
        self._lock = threading.RLock()
        self._delays: list[float] = []

    def __enter__(self) -> BrokerSimulator:
        self.start()
        return self

    @property
    def root_url(self) -> str:
        """The host without `/v1`, where the OAuth pages live."""
        return self.url.removesuffix("/v1")

    # -- test hooks ------------------------------------------------------------------------------

    def set_price(self, name: str, price: Decimal | str) -> None:
        """The contract's current price: market orders fill at it, resting ones it reaches fill."""
        with self._lock:
            self.book.set_price(name, Decimal(price))

    def add_account(self, user: str, name: str | None = None) -> Account:
        with self._lock:
            return self.book.add_account(user, self.user_ids[user], name)

    def set_risk_status(
        self, account_name: str, *, admin_action: str = "Normal", liquidate_only: bool = False
    ) -> None:
        with self._lock:
            account = self.book.account_named(account_name)
            stamp = _iso(self.clock())
            account.admin_action, account.admin_timestamp = admin_action, stamp
            account.liquidate_only = stamp if liquidate_only else None
            self.book.notify("accountRiskStatus", "Updated", account.risk_json(), account.id)

    @property
    def lock(self) -> threading.RLock:
        """Held while the book changes; listeners run under it, so a socket that snapshots and
        subscribes under it misses no change and sees none twice."""
        return self._lock

    def add_listener(self, listener: Listener) -> None:
        """`listener(entityType, eventType, entity, accountId)` on every entity change."""
        with self._lock:
            self.book.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self.book.listeners:
                self.book.listeners.remove(listener)

    def charge(self, account_name: str, amount: Decimal | str) -> None:
        """Book a charge (commissions, fees) against the account's cash and the trade date's
        realized PnL, and tell the sockets: the broker's figure then falls below what the fills
        alone realized. The simulator charges nothing by itself (broker_ledger.py)."""
        with self._lock:
            self.book.charge(self.book.account_named(account_name).id, Decimal(amount))

    def penalize_next(self, n: int = 1, p_time: float = 1.0, captcha: bool = False) -> None:
        """The next `n` requests get a p-ticket, whatever the counters say."""
        with self._lock:
            self.access.penalize_next(n, p_time, captcha)

    def lock_out(self, seconds: float, user: str | None = None) -> None:
        """HTTP 429 for `seconds` (extended by every request meanwhile), for one user or all."""
        with self._lock:
            self.access.lock_out(seconds, user)

    def reject_next(self, reason: str, text: str) -> None:
        """The next order command answers failureReason/failureText."""
        with self._lock:
            self.book.forced.append((reason, text))

    def delay_next(self, seconds: float) -> None:
        """The next order command is executed, then answered `seconds` later (client timeouts)."""
        with self._lock:
            self._delays.append(seconds)

    def expire_tokens(self, user: str | None = None) -> None:
        with self._lock:
            self.access.expire_tokens(user)

    @property
    def requests_per_user(self) -> dict[str, list[tuple[float, str]]]:
        """user (or "-" when anonymous) → [(epoch seconds, route)], every request counted."""
        with self._lock:
            return {user: list(log) for user, log in self.access.requests_per_user.items()}

    def max_requests_in_window(self, user: str, window_s: float = 60.0) -> int:
        with self._lock:
            return self.access.max_in_window(user, window_s)

    def md_token_valid(self, token: str) -> bool:
        """For the md socket's `tokens`: either token of a live session (§2.7)."""
        with self._lock:
            return self.access.md_token_valid(token)

    # -- HTTP ------------------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        path = request.path.lower()  # §4: paths are case-tolerant
        if path.rstrip("/") in ("/oauth", "/oauth/authorize"):
            with self._lock:
                return self._authorize(request.args)
        route = path.removeprefix("/v1").strip("/")  # the code exchange is served with and without
        try:
            body = self._body(request)
        except ValueError:
            return Response("", status=400)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            session = self.access.session_for(token.strip()) if scheme.lower() == "bearer" else None
        return self.serve(route, request.args, body, session, token.strip())

    def serve(
        self,
        route: str,
        args: MultiDict[str, str],
        body: JSON,
        session: Session | None,
        token: str = "",
    ) -> Response:
        """One operation (lower-case `entity/operation`) for `session`'s user, throttled."""
        ticket = body.pop("p-ticket", None) or args.get("p-ticket")
        with self._lock:
            key = session.user if session else ANONYMOUS
            if route == "auth/accesstokenrequest" and isinstance(body.get("name"), str):
                key = body["name"]
            verdict = self.access.admit(key, route, ticket)
            if verdict == LOCKED:
                return Response("", status=429)
            if isinstance(verdict, Penalty):
                return _json(verdict.body())
            response = self._route(route, args, body, session, token)
            delay = self._delays.pop(0) if self._delays and route in COMMANDS else 0.0
        if delay:
            time.sleep(delay)
        return response

    @staticmethod
    def _body(request: Request) -> JSON:
        if request.method != "POST":
            return {}
        if request.mimetype == "application/x-www-form-urlencoded":
            return request.form.to_dict()
        text = request.get_data(as_text=True)
        body = json.loads(text, parse_float=Decimal) if text.strip() else {}
        if not isinstance(body, dict):
            raise ValueError("the body is not an object")
        return body

    def _route(
        self, route: str, args: MultiDict[str, str], body: JSON, session: Session | None, token: str
    ) -> Response:
        if route == "auth/accesstokenrequest":
            return self._login(body)
        if route == "auth/oauthtoken":
            return self._oauth_token(body)
        if session is None:
            return Response("", status=401)
        user = session.user
        if route == "auth/renewaccesstoken":
            _, new_token, expiry = self.access.renew(token)
            return _json(self._token_body(user, new_token, expiry, session.md_token))
        if route == "auth/me":
            return _json(
                {
                    "userId": self.user_ids[user],
                    "name": user,
                    "fullName": user,
                    "email": f"{user}@example.com",
                    "emailVerified": True,
                    "isTrial": False,
                }
            )
        command = {
            "order/placeorder": self._place_order,
            "order/placeoso": self._place_oso,
            "order/placeoco": self._place_oco,
            "order/modifyorder": self._modify,
            "order/cancelorder": self._cancel,
            "order/liquidateposition": self._liquidate,
            "orderstrategy/startorderstrategy": self._start_strategy,
            "orderstrategy/interruptorderstrategy": self._interrupt_strategy,
        }.get(route)
        if command is not None:
            if self.require_device_id and not session.device_id:
                return Response("Access is denied", status=401)  # unverified device (§2.6, §8.3)
            try:
                return _json(command(user, body))
            except OrderRefused as refused:
                return _json({"failureReason": refused.reason, "failureText": refused.text})
            except OrderInvalid as invalid:
                return _json({"violations": invalid.violations})
            except broker_strategies.StrategyRefused as refused:
                return _json({"errorText": str(refused)})  # OrderStrategyStatusResponse (§5.8)
        if route == "cashbalance/getcashbalancesnapshot":  # POST body per spec, GET query by some
            return self._cash_snapshot(user, _int(body.get("accountId", args.get("accountId"))))
        entity, _, operation = route.partition("/")
        if entity in DEPS:
            return self._read(entity, operation, args, user)
        return self._lookup(route, args)  # contract, contractMaturity and product lookups

    # -- auth ------------------------------------------------------------------------------------

    def _login(self, body: JSON) -> Response:
        name, password = str(body.get("name", "")), str(body.get("password", ""))
        penalty = self.access.login_penalty(name)
        if penalty is not None:
            return _json(penalty.body())
        if not self.access.password_ok(name, password):
            return _json({"errorText": BAD_LOGIN})
        api_key = (str(body.get("cid")), body.get("sec"))
        if api_key != (str(self.cid), self.sec) or not isinstance(body.get("appId"), str):
            return _json({"errorText": "The app is not registered"})
        session, token, expiry = self.access.open_session(name, body.get("deviceId") or None)
        return _json(self._token_body(name, token, expiry, session.md_token))

    def _token_body(self, user: str, token: str, expiry: float, md_token: str) -> JSON:
        return {
            "accessToken": token,
            "mdAccessToken": md_token,
            "expirationTime": _iso(expiry),
            "passwordExpirationTime": _iso(self.clock() + 90 * 86400),
            "userStatus": "Active",
            "userId": self.user_ids[user],
            "name": user,
            "hasLive": self.environment == "live",
        }

    def _authorize(self, args: MultiDict[str, str]) -> Response:
        client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
        if args.get("response_type") != "code" or client_id not in self.access.oauth_clients:
            return Response("unknown client or response_type", status=400)
        user = args.get("user") or next(iter(self.user_ids), "")
        if not redirect_uri or user not in self.user_ids:
            return Response("no redirect_uri or unknown user", status=400)
        answer = {"code": self.access.issue_code(user, client_id, redirect_uri)}
        if args.get("state"):
            answer["state"] = args["state"]
        return redirect(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(answer)}")

    def _oauth_token(self, body: JSON) -> Response:
        try:  # §2.5: the tutorial posts a form, the spec JSON; both are accepted
            user = self.access.redeem_code({k: str(v) for k, v in body.items()})
        except OAuthRefused as refused:
            return _json({"error": refused.error, "error_description": refused.description}, 400)
        _, token, _ = self.access.open_session(user)
        return _json(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": int(self.access.token_ttl_s),
            }
        )

    # -- reads (§4, §5.2) ------------------------------------------------------------------------

    def _read(self, entity: str, operation: str, args: MultiDict[str, str], user: str) -> Response:
        rows = list(self.book.rows(entity, user))
        ids = {_int(i) for i in args.get("ids", "").split(",")}
        if operation == "list":
            return _json(rows)
        if operation == "item":
            row = next((r for r in rows if r["id"] == _int(args.get("id"))), None)
            return _json(row) if row is not None else Response("", status=404)
        if operation == "items":
            return _json([r for r in rows if r["id"] in ids])
        if operation == "deps":
            return _json([r for r in rows if r.get(DEPS[entity]) == _int(args.get("masterid"))])
        if operation == "ldeps":
            masters = {_int(i) for i in args.get("masterids", "").split(",")}
            return _json([r for r in rows if r.get(DEPS[entity]) in masters])
        if operation == "find" and entity == "account":
            row = next((r for r in rows if r["name"] == args.get("name")), None)
            return _json(row) if row is not None else Response("", status=404)
        return Response("", status=404)

    def _cash_snapshot(self, user: str, account_id: int | None) -> Response:
        account = self.book.accounts.get(account_id or 0)
        if account is None or account.user != user:
            return _json({"errorText": "Access is denied"})  # Sim choice: wording unverified
        balance = self.book.balance(account.id)
        return _json(broker_ledger.cash_snapshot(balance, self.book.open_pnl(account.id)))

    # -- order commands (§5.3–5.7) ---------------------------------------------------------------

    def _account(self, user: str, body: JSON) -> Account:
        spec = body.get("accountSpec")
        return self.book.resolve_account(
            user, _int(body.get("accountId")), spec if isinstance(spec, str) else None
        )

    def _place_order(self, user: str, body: JSON) -> JSON:
        order = self.book.place(
            self._account(user, body),
            _raw(body, "symbol"),
            _spec(body),
            bool(body.get("isAutomated")),
        )
        return {"orderId": order.id}

    def _place_oso(self, user: str, body: JSON) -> JSON:
        brackets = [body[k] for k in ("bracket1", "bracket2") if isinstance(body.get(k), dict)]
        if not isinstance(body.get("bracket1"), dict):
            raise OrderInvalid("bracket1", "", "bracket1 is required")
        orders = self.book.place_oso(
            self._account(user, body),
            _raw(body, "symbol"),
            _spec(body),
            [_spec(b, qty=0) for b in brackets],
            bool(body.get("isAutomated")),
        )
        result = {"orderId": orders[0].id, "oso1Id": orders[1].id}
        if len(orders) > 2:
            result["oso2Id"] = orders[2].id
        return result

    def _place_oco(self, user: str, body: JSON) -> JSON:
        if not isinstance(body.get("other"), dict):
            raise OrderInvalid("other", "", "other is required")
        first, other = self.book.place_oco(
            self._account(user, body),
            _raw(body, "symbol"),
            _spec(body),
            _spec(body["other"], qty=0),
            bool(body.get("isAutomated")),
        )
        return {"orderId": first.id, "ocoId": other.id}

    def _modify(self, user: str, body: JSON) -> JSON:
        order = self.book.owned_order(user, _int(body.get("orderId")))
        spec = _spec(body)
        command = self.book.modify(
            order,
            spec.qty,
            spec.order_type,
            spec.price,
            spec.stop_price,
            spec.time_in_force,
            spec.text,
        )
        return {"commandId": command}

    def _cancel(self, user: str, body: JSON) -> JSON:
        order = self.book.owned_order(user, _int(body.get("orderId")))
        return {"commandId": self.book.cancel(order)}

    def _liquidate(self, user: str, body: JSON) -> JSON:
        account = self.book.resolve_account(user, _int(body.get("accountId")), None)
        order = self.book.liquidate(account, _int(body.get("contractId")), bool(body.get("admin")))
        return {"orderId": order.id}

    def _start_strategy(self, user: str, body: JSON) -> JSON:
        try:
            strategy = broker_strategies.start(
                self.book,
                self._account(user, body),
                _raw(body, "symbol"),
                _raw(body, "action"),
                body,
                True,  # Sim choice: strategy orders count as automated (the bodies carry no flag)
            )
        except OrderRefused as refused:  # the entry's risk checks answer as the strategy's error
            raise broker_strategies.StrategyRefused(f"{refused.reason}: {refused.text}") from None
        except OrderInvalid as invalid:
            raise broker_strategies.StrategyRefused(str(invalid)) from None
        return {"orderStrategy": strategy.json()}

    def _interrupt_strategy(self, user: str, body: JSON) -> JSON:
        strategy = broker_strategies.interrupt(self.book, user, _int(body.get("orderStrategyId")))
        return {"orderStrategy": strategy.json()}
