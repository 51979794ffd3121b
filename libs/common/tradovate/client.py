"""Tradovate REST client (docs/outside/tradovate.md §2–§5): tokens, accounts, contracts and orders.

It translates answers into typed errors and never sleeps, retries or logs a secret: pacing and
resends belong to the caller's shared limiter (a penalty or a lockout concerns every worker).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
STRATEGY_FAILED = ("ExecutionFailed", "NotEnoughLiquidity")


class TradovateError(Exception):
    """Anything Tradovate, or the way to it, refused or broke."""


class AuthFailed(TradovateError):
    """Credentials or an OAuth code were refused; `message` is Tradovate's own text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenExpired(AuthFailed):
    """HTTP 401 on a call with a token: expired, revoked, or lacking the permission (§2.2, §2.6)."""


class PenaltyTicket(TradovateError):
    """A p-ticket (§3.1): wait `wait_s`, then resend the identical request with `p_ticket`.

    With `captcha` true a program cannot complete the request; stop for about an hour.
    """

    def __init__(self, ticket: str, wait_s: float, captcha: bool) -> None:
        super().__init__(f"penalty: wait {wait_s}s" + (" (captcha)" if captcha else ""))
        self.ticket, self.wait_s, self.captcha = ticket, wait_s, captcha


class RateLimited(TradovateError):
    """HTTP 429/423 (§3.2): the user is (about to be) locked out; pause every call for the user."""

    def __init__(self, status: int) -> None:
        super().__init__(f"Tradovate answered HTTP {status}: pause all traffic for this user")
        self.status = status


class Rejected(TradovateError):
    """A business refusal in an HTTP 200 body: failureReason/failureText, violations, errorText."""

    def __init__(self, failure_reason: str, failure_text: str) -> None:
        super().__init__(f"{failure_reason}: {failure_text}")
        self.failure_reason, self.failure_text = failure_reason, failure_text


class NotFound(TradovateError):
    """HTTP 404: unknown endpoint or entity id, or an id of the other environment (§1)."""


class BrokerUnavailable(TradovateError):
    """No usable answer: connection error, timeout or HTTP 5xx.

    The outcome of a command is then unknown: it may have been executed. `maybe_sent` is False
    only when the connection was never made. Never resend an order blindly; look for it first
    (`find_order_by_cl_ord_id`).
    """

    def __init__(self, message: str, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and its authoritative expiry. OAuth answers carry no user id or name."""

    access_token: str = field(repr=False)
    md_access_token: str | None = field(repr=False)  # None when the answer had none (renewal)
    expiration_time: datetime
    user_id: int | None
    name: str | None


@dataclass(frozen=True)
class OsoResult:
    order_id: int
    oso1_id: int | None
    oso2_id: int | None


def encode_json(value: Any) -> str:
    """JSON text in which a Decimal is written with its exact digits, never through a float."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{encode_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_json(v) for v in value) + "]"
    return json.dumps(value)


def decode_json(text: str) -> Any:
    """Tradovate's JSON with every non-integer number as a Decimal (prices, values)."""
    return json.loads(text, parse_float=Decimal) if text.strip() else None


def _maybe_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return not isinstance(reason, NewConnectionError)


def _access_token(body: JSON) -> AccessToken:
    expires = datetime.fromisoformat(body["expirationTime"])
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)  # Tradovate means UTC
    return AccessToken(
        body["accessToken"],
        body.get("mdAccessToken"),
        expires,
        body.get("userId"),
        body.get("name"),
    )


def _penalty(body: Any) -> None:
    if isinstance(body, dict) and "p-ticket" in body:
        raise PenaltyTicket(
            str(body["p-ticket"]), float(body.get("p-time") or 0), bool(body.get("p-captcha"))
        )


def _order_result(body: Any) -> JSON:
    """A command's answer, or `Rejected` for the three 200-body refusal shapes (§4)."""
    if not isinstance(body, dict):
        raise TradovateError(f"unexpected answer {body!r}")
    if body.get("failureReason") not in (None, "Success") or body.get("failureText"):
        raise Rejected(
            str(body.get("failureReason") or "UnknownReason"), str(body.get("failureText") or "")
        )
    if body.get("violations"):
        text = "; ".join(
            str(v.get("description") or v.get("constraint") or v) for v in body["violations"]
        )
        raise Rejected("Violation", text)
    if body.get("errorText"):
        raise Rejected("Error", str(body["errorText"]))
    return body


def _strategy(body: JSON) -> JSON:
    """The OrderStrategy of an `OrderStrategyStatusResponse`; a failed start is `Rejected`."""
    strategy = body.get("orderStrategy")
    if not isinstance(strategy, dict) or "id" not in strategy:
        raise TradovateError(f"no orderStrategy in the answer {body!r}")
    if strategy.get("status") in STRATEGY_FAILED:
        raise Rejected(str(strategy["status"]), str(strategy.get("failureMessage") or ""))
    return strategy


def _version(
    order_type: str, price: Decimal | None, stop_price: Decimal | None, time_in_force: str | None
) -> JSON:
    fields = {
        "orderType": order_type,
        "price": price,
        "stopPrice": stop_price,
        "timeInForce": time_in_force,
    }
    return {k: v for k, v in fields.items() if v is not None}


class TradovateClient:
    """One Tradovate environment (a REST base ending in `/v1`) and, once known, one bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        http: requests.Session | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._http = http or requests.Session()

    def __repr__(self) -> str:
        return f"TradovateClient({self.base_url!r}, token={'set' if self.token else None})"

    # -- transport -------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: JSON | None = None,
        params: JSON | None = None,
        form: JSON | None = None,
        bearer: bool = True,
    ) -> requests.Response:
        headers = {"Accept": "application/json"}
        if bearer and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data: str | JSON | None = form
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = encode_json(body)
        try:
            response = self._http.request(
                method,
                f"{self.base_url}{path}",
                params=params,
                data=data,
                headers=headers,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            kv = {"path": path, "error": type(exc).__name__}
            log.warning("tradovate request failed", extra={"kv": kv})
            raise BrokerUnavailable(f"{path}: {type(exc).__name__}", _maybe_sent(exc)) from exc
        log.debug("tradovate", extra={"kv": {"path": path, "status": response.status_code}})
        if response.status_code in (423, 429):
            raise RateLimited(response.status_code)
        if response.status_code >= 500:
            raise BrokerUnavailable(f"{path}: HTTP {response.status_code}")
        return response

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = self._send(method, path, **kw)
        if response.status_code == 401:
            raise TokenExpired(f"{path}: HTTP 401 (token expired, revoked or not permitted)")
        if response.status_code == 404:
            raise NotFound(f"{path}: HTTP 404")
        if response.status_code != 200:
            raise TradovateError(f"{path}: HTTP {response.status_code}")
        try:
            body = decode_json(response.text)
        except ValueError as exc:
            raise TradovateError(f"{path}: the answer is not JSON") from exc
        _penalty(body)
        return body

    def _read(self, path: str, params: JSON | None = None) -> Any:
        body = self._call("GET", path, params=params)
        if isinstance(body, dict) and body.get("errorText"):
            raise TradovateError(f"{path}: {body['errorText']}")
        return body

    def _command(self, path: str, body: JSON, p_ticket: str | None) -> JSON:
        if p_ticket:
            body = {**body, "p-ticket": p_ticket}
        return _order_result(self._call("POST", path, body=body))

    # -- auth (§2) -------------------------------------------------------------------------------

    def access_token_request(
        self,
        name: str,
        password: str,
        app_id: str,
        app_version: str,
        cid: int | str,  # an integer for Tradovate; a non-numeric one goes as given, to be refused
        sec: str,
        device_id: str | None = None,
        *,
        p_ticket: str | None = None,
    ) -> AccessToken:
        """Log in with credentials and an API key; the client keeps the new token."""
        body: JSON = {
            "name": name,
            "password": password,
            "appId": app_id,
            "appVersion": app_version,
            "cid": cid,
            "sec": sec,
        }
        if device_id:
            body["deviceId"] = device_id
        if p_ticket:
            body["p-ticket"] = p_ticket
        return self._keep(self._call("POST", "/auth/accesstokenrequest", body=body, bearer=False))

    def renew_access_token(self) -> AccessToken:
        """A fresh token for the same session; the previous one must still be valid (§2.3)."""
        return self._keep(self._call("GET", "/auth/renewaccesstoken"))

    def _keep(self, body: Any) -> AccessToken:
        if not isinstance(body, dict) or body.get("errorText") or not body.get("accessToken"):
            text = body.get("errorText") if isinstance(body, dict) else None
            raise AuthFailed(str(text or "no access token in the answer"))
        token = _access_token(body)
        self.token = token.access_token
        return token

    def me(self) -> JSON:
        body: JSON = self._read("/auth/me")
        return body

    def oauth_token(
        self, code: str, client_id: str, client_secret: str, redirect_uri: str
    ) -> AccessToken:
        """Exchange a single-use OAuth code, form-encoded as the tutorial does (§2.5), at
        `base_url/auth/oauthtoken` (give a base without `/v1` for the tutorial's URL)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        response = self._send("POST", "/auth/oauthtoken", form=form, bearer=False)
        try:
            body = decode_json(response.text)
        except ValueError:
            body = None
        _penalty(body)
        if not isinstance(body, dict) or body.get("error") or not body.get("access_token"):
            body = body if isinstance(body, dict) else {}
            detail = body.get("error_description") or body.get("error")
            raise AuthFailed(str(detail or f"OAuth exchange: HTTP {response.status_code}"))
        expires = datetime.now(UTC) + timedelta(seconds=float(body.get("expires_in") or 0))
        self.token = body["access_token"]
        return AccessToken(body["access_token"], None, expires, None, None)

    # -- accounts and contracts (§5.2) -----------------------------------------------------------

    def account_list(self) -> list[JSON]:
        """Accounts: `id` is the accountId of orders, `name` their accountSpec."""
        return self._read("/account/list") or []

    def account_risk_status_list(self) -> list[JSON]:
        return self._read("/accountRiskStatus/list") or []

    def contract_find(self, name: str) -> JSON | None:
        """The dated contract named `name` (`MNQZ6`), or None (a bare root answers 404, §7)."""
        try:
            body = self._call("GET", "/contract/find", params={"name": name})
        except NotFound:
            return None
        return body if isinstance(body, dict) and "id" in body else None

    def contract_item(self, contract_id: int) -> JSON | None:
        try:
            body: JSON | None = self._read("/contract/item", {"id": contract_id})
        except NotFound:
            return None
        return body

    def contract_suggest(self, text: str, limit: int = 10) -> list[JSON]:
        return self._read("/contract/suggest", {"t": text, "l": limit}) or []

    # -- orders (§5.3–5.7) -----------------------------------------------------------------------

    def place_order(
        self,
        account_id: int,
        account_spec: str,
        action: str,
        symbol: str,
        qty: int,
        order_type: str = "Market",
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        cl_ord_id: str | None = None,
        time_in_force: str | None = None,
        text: str | None = None,
        p_ticket: str | None = None,
    ) -> int:
        """Send one order; the id means accepted, not filled (§5.3). `text` (≤ 64 characters)
        stays on the order's version, where `order_version_ldeps` reads it back."""
        body = self._entry(
            account_id,
            account_spec,
            action,
            symbol,
            qty,
            order_type,
            price,
            stop_price,
            cl_ord_id,
            time_in_force,
            text,
        )
        return int(self._command("/order/placeorder", body, p_ticket)["orderId"])

    def place_oso(
        self,
        account_id: int,
        account_spec: str,
        action: str,
        symbol: str,
        qty: int,
        bracket1: JSON,
        bracket2: JSON | None = None,
        order_type: str = "Market",
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        cl_ord_id: str | None = None,
        time_in_force: str | None = None,
        text: str | None = None,
        p_ticket: str | None = None,
    ) -> OsoResult:
        """An entry plus brackets (Tradovate field names: action, orderType, price, stopPrice,
        timeInForce, clOrdId, text); they work once the entry fills, as an OCO when two (§5.4)."""
        body = self._entry(
            account_id,
            account_spec,
            action,
            symbol,
            qty,
            order_type,
            price,
            stop_price,
            cl_ord_id,
            time_in_force,
            text,
        )
        body["bracket1"] = bracket1
        if bracket2 is not None:
            body["bracket2"] = bracket2
        result = self._command("/order/placeoso", body, p_ticket)
        return OsoResult(int(result["orderId"]), result.get("oso1Id"), result.get("oso2Id"))

    def place_oco(
        self,
        account_id: int,
        account_spec: str,
        action: str,
        symbol: str,
        qty: int,
        other: JSON,
        order_type: str = "Limit",
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        cl_ord_id: str | None = None,
        time_in_force: str | None = None,
        text: str | None = None,
        p_ticket: str | None = None,
    ) -> tuple[int, int]:
        """Two orders where a fill of one cancels the other (§5.5): (orderId, ocoId)."""
        body = self._entry(
            account_id,
            account_spec,
            action,
            symbol,
            qty,
            order_type,
            price,
            stop_price,
            cl_ord_id,
            time_in_force,
            text,
        )
        body["other"] = other
        result = self._command("/order/placeoco", body, p_ticket)
        return int(result["orderId"]), int(result["ocoId"])

    @staticmethod
    def _entry(
        account_id: int,
        account_spec: str,
        action: str,
        symbol: str,
        qty: int,
        order_type: str,
        price: Decimal | None,
        stop_price: Decimal | None,
        cl_ord_id: str | None,
        time_in_force: str | None,
        text: str | None = None,
    ) -> JSON:
        # Both account fields (§8.7) and isAutomated, an exchange rule for bots (§8.8).
        body: JSON = {
            "accountSpec": account_spec,
            "accountId": account_id,
            "action": action,
            "symbol": symbol,
            "orderQty": qty,
            "isAutomated": True,
        }
        body.update(_version(order_type, price, stop_price, time_in_force))
        if cl_ord_id:
            body["clOrdId"] = cl_ord_id
        if text:
            body["text"] = text
        return body

    def modify_order(
        self,
        order_id: int,
        qty: int,
        order_type: str,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        time_in_force: str | None = None,
        text: str | None = None,
        p_ticket: str | None = None,
    ) -> int:
        """The order's full intended state (§5.6): keep its time in force and its `text` (the new
        version is all a reader sees). Returns commandId."""
        body: JSON = {
            "orderId": order_id,
            "orderQty": qty,
            "isAutomated": True,
            **_version(order_type, price, stop_price, time_in_force),
        }
        if text:
            body["text"] = text
        return int(self._command("/order/modifyorder", body, p_ticket)["commandId"])

    def cancel_order(self, order_id: int, p_ticket: str | None = None) -> int:
        body = {"orderId": order_id, "isAutomated": True}
        return int(self._command("/order/cancelorder", body, p_ticket)["commandId"])

    def liquidate_position(
        self, account_id: int, contract_id: int, p_ticket: str | None = None
    ) -> int:
        """Cancel the contract's working orders and close the position (§5.7): the closing order."""
        body = {
            "accountId": account_id,
            "contractId": contract_id,
            "admin": False,
            "isAutomated": True,
        }
        return int(self._command("/order/liquidateposition", body, p_ticket)["orderId"])

    # -- order strategies (§5.8) -----------------------------------------------------------------

    def start_order_strategy(
        self,
        account_id: int,
        account_spec: str,
        action: str,
        symbol: str,
        entry_version: JSON,
        brackets: list[JSON],
        uuid: str | None = None,
        p_ticket: str | None = None,
    ) -> JSON:
        """The built-in bracket strategy: an entry (`orderQty`, `orderType`, `price?`,
        `timeInForce`), then per bracket (`qty`, `profitTarget`, `stopLoss?`, `trailingStop`: signed
        price offsets from the entry's fill) a target and a stop. `params` travels as a JSON string.
        Returns the OrderStrategy; `uuid` is how it is found again (`find_order_strategy`)."""
        body: JSON = {
            "accountId": account_id,
            "accountSpec": account_spec,
            "symbol": symbol,
            "action": action,
            "orderStrategyTypeId": 2,
            "params": encode_json({"entryVersion": entry_version, "brackets": brackets}),
        }
        if uuid:
            body["uuid"] = uuid
        return _strategy(self._command("/orderStrategy/startorderstrategy", body, p_ticket))

    def interrupt_order_strategy(self, strategy_id: int, p_ticket: str | None = None) -> JSON:
        body = {"orderStrategyId": strategy_id}
        return _strategy(self._command("/orderStrategy/interruptorderstrategy", body, p_ticket))

    def order_strategy_deps(self, account_id: int) -> list[JSON]:
        return self._read("/orderStrategy/deps", {"masterid": account_id}) or []

    def order_strategy_link_deps(self, strategy_id: int) -> list[JSON]:
        """The strategy's orders (`orderId`, `label`), the entry first."""
        return self._read("/orderStrategyLink/deps", {"masterid": strategy_id}) or []

    def order_strategy_link_ldeps(self, strategy_ids: list[int]) -> list[JSON]:
        """The orders of several strategies in one request (§4 `ldeps`)."""
        masters = ",".join(str(i) for i in strategy_ids)
        return self._read("/orderStrategyLink/ldeps", {"masterids": masters}) or []

    def find_order_strategy(self, account_id: int, uuid: str) -> JSON | None:
        """The account's strategy started with `uuid`, or None: asked after a start whose outcome
        is unknown, before starting it again."""
        return next(
            (s for s in self.order_strategy_deps(account_id) if s.get("uuid") == uuid), None
        )

    # -- order state -----------------------------------------------------------------------------

    def order_list(self) -> list[JSON]:
        return self._read("/order/list") or []

    def order_deps(self, account_id: int) -> list[JSON]:
        return self._read("/order/deps", {"masterid": account_id}) or []

    def order_version_deps(self, order_id: int) -> list[JSON]:
        """Price, qty and type of an order live on its versions, newest last (§5.2)."""
        return self._read("/orderVersion/deps", {"masterid": order_id}) or []

    def order_version_ldeps(self, order_ids: list[int]) -> list[JSON]:
        """The versions of several orders in one request (§4 `ldeps`)."""
        masters = ",".join(str(i) for i in order_ids)
        return self._read("/orderVersion/ldeps", {"masterids": masters}) or []

    def command_list(self) -> list[JSON]:
        return self._read("/command/list") or []

    def position_list(self) -> list[JSON]:
        """Positions, flat rows (`netPos` 0) included (§8.18)."""
        return self._read("/position/list") or []

    def fill_list(self) -> list[JSON]:
        return self._read("/fill/list") or []

    def find_order_by_cl_ord_id(self, account_id: int, cl_ord_id: str) -> JSON | None:
        """The account's order sent with `cl_ord_id`, or None: what to ask after a send whose
        outcome is unknown, before sending again (§8.6). clOrdId is stored on the Command."""
        order_ids = [
            c["orderId"]
            for c in self.command_list()
            if c.get("clOrdId") == cl_ord_id and c.get("commandType", "New") == "New"
        ]
        if not order_ids:
            return None
        orders = {o["id"]: o for o in self.order_deps(account_id)}
        return next((orders[i] for i in order_ids if i in orders), None)


def oauth_exchange(
    live_url: str,
    demo_url: str,
    code: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    *,
    http: requests.Session | None = None,
    timeout_s: float = 10.0,
) -> tuple[AccessToken, str]:
    """Exchange an OAuth code on the live host, then on demo when live answers 429 or fails.

    Returns the token and the environment that accepted it ("live" or "demo"). Sequential, never
    in parallel: the code is single-use (§2.5).
    """
    try:
        client = TradovateClient(live_url, http=http, timeout_s=timeout_s)
        return client.oauth_token(code, client_id, client_secret, redirect_uri), "live"
    except TradovateError as exc:
        live_error = exc
        log.info("oauth falls back to demo", extra={"kv": {"live_error": type(exc).__name__}})
    client = TradovateClient(demo_url, http=http, timeout_s=timeout_s)
    try:
        return client.oauth_token(code, client_id, client_secret, redirect_uri), "demo"
    except TradovateError as demo_error:
        raise demo_error from live_error
