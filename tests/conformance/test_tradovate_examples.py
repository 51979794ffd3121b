"""Tradovate's own example code against the simulator: the requests and frames that the official
trading-strategy example and the JavaScript API tutorials send, replayed byte for byte from their
documented shapes (plain `requests` and `websocket-client`, no Node), and what those programs then
read from the answers.

Two habits of that JavaScript matter here: every body goes through `JSON.stringify`, so the
tutorial's `authorize` carries the token in quotes and a request without a body carries the text
`undefined`; the strategy example also writes `${query}`, so a request without a query carries
`undefined` there too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
import websocket

from libs.common.futures.instruments import contract_spec
from simulators.tradovate.account_socket import AccountSocketServer
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue
from simulators.tradovate.market_data import MarketDataServer

USER, PASSWORD = "trader", "secret-password"
CID, SEC = 1234, "sim-api-secret"
SIM_APP = "JustTrades"  # the simulator's own; a user's registered app is any name
JS_UNDEFINED = "undefined"  # JSON.stringify(undefined) and `${undefined}`


@dataclass
class Tradovate:
    broker: BrokerSimulator
    account_ws: AccountSocketServer
    md: MarketDataServer
    contract: str  # e.g. MNQZ6

    @property
    def root(self) -> str:
        return self.contract[:-2]  # the tutorial's `name.slice(0, name.length - 2)`


@pytest.fixture
def tradovate() -> Iterator[Tradovate]:
    catalogue = ContractCatalogue.standard(datetime.now(UTC).date(), roots=("MNQ",), count=1)
    (contract,) = catalogue.contracts.values()
    with BrokerSimulator(catalogue, users={USER: PASSWORD}, cid=CID, sec=SEC) as broker:
        broker.set_price(contract.name, "21000.00")
        md = MarketDataServer(catalogue, broker.md_token_valid).start()
        with AccountSocketServer(broker) as account_ws:
            try:
                yield Tradovate(broker, account_ws, md, contract.name)
            finally:
                md.stop()


def access_token(t: Tradovate, app_id: str = SIM_APP) -> dict[str, Any]:
    """The examples' `auth/accesstokenrequest` body."""
    body = {
        "name": USER,
        "password": PASSWORD,
        "appId": app_id,
        "appVersion": "1.0",
        "cid": CID,
        "sec": SEC,
        "deviceId": "5b1e2c9a-0d7f-4c2e-9a51-6f0c3d2b8e17",
    }
    answer = requests.post(f"{t.broker.url}/auth/accesstokenrequest", json=body, timeout=5)
    assert answer.status_code == 200
    token: dict[str, Any] = answer.json()
    return token


def rest_get(t: Tradovate, token: str, path: str, **query: Any) -> Any:
    answer = requests.get(
        f"{t.broker.url}{path}",
        params=query,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 200, (path, answer.status_code, answer.text)
    return answer.json()


def rest_post(t: Tradovate, token: str, path: str, body: dict[str, Any]) -> Any:
    answer = requests.post(
        f"{t.broker.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 200, (path, answer.status_code, answer.text)
    return answer.json()


class Socket:
    """One socket as the examples drive it: frames in, `a[...]` items collected."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=2)
        assert self.ws.recv() == "o"
        self.items: list[dict[str, Any]] = []

    def send(self, url: str, rid: int, query: str | None, body: str) -> None:
        """`${url}\\n${id}\\n${query}\\n${JSON.stringify(body)}`, `body` already stringified."""
        self.ws.send(f"{url}\n{rid}\n{JS_UNDEFINED if query is None else query}\n{body}")

    def request(self, url: str, rid: int, body: Any = None, query: str | None = None) -> Any:
        """A request as the strategy example writes it; the answer to it."""
        self.send(url, rid, query, JS_UNDEFINED if body is None else json.dumps(body))
        return self.answer(rid)

    def answer(self, rid: int) -> dict[str, Any]:
        return self.wait(lambda item: item.get("i") == rid)

    def wait(self, found: Any, within_s: float = 10.0) -> dict[str, Any]:
        """The first message `found` accepts, from those kept or those arriving in time."""
        deadline = time.monotonic() + within_s
        while True:
            for item in self.items:
                if found(item):
                    self.items.remove(item)
                    return item
            if time.monotonic() > deadline:
                raise AssertionError(f"no such message arrived within {within_s} s")
            try:
                frame = str(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if frame == "h":
                self.ws.send("[]")  # the examples' heartbeat
            if frame.startswith("a"):
                self.items.extend(json.loads(frame[1:]))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def sockets() -> Iterator[list[Socket]]:
    opened: list[Socket] = []
    yield opened
    for sock in opened:
        sock.close()


def account_socket(t: Tradovate, sockets: list[Socket], token: str) -> Socket:
    """The strategy example's account socket: `authorize\\n0\\n\\n${token}`, the token raw."""
    sock = Socket(t.account_ws.url)
    sockets.append(sock)
    sock.ws.send(f"authorize\n0\n\n{token}")
    assert sock.answer(0)["s"] == 200
    return sock


def md_socket(t: Tradovate, sockets: list[Socket], md_token: str) -> Socket:
    sock = Socket(t.md.url)
    sockets.append(sock)
    sock.ws.send(f"authorize\n0\n\n{md_token}")
    assert sock.answer(0)["s"] == 200
    return sock


def the_account(t: Tradovate, token: str) -> dict[str, Any]:
    accounts: list[dict[str, Any]] = rest_get(t, token, "/account/list")
    return accounts[0]


# -- access --------------------------------------------------------------------------------------


def test_a_user_registered_app_id_gets_a_token(tradovate):
    token = access_token(tradovate, app_id="My Crossover Robot")
    assert "errorText" not in token
    assert token["accessToken"] and token["mdAccessToken"] and token["userId"]


def test_the_tutorial_authorizes_with_the_token_json_quoted(tradovate, sockets):
    token = access_token(tradovate)["accessToken"]
    sock = Socket(tradovate.account_ws.url)
    sockets.append(sock)
    # The tutorial's TradovateSocket counts ids from 0 and JSON-stringifies the token.
    sock.send("authorize", 0, "", json.dumps(token))
    assert sock.answer(0) == {"s": 200, "i": 0}
    sock.send("account/list", 1, "", JS_UNDEFINED)
    assert [a["id"] for a in sock.answer(1)["d"]] == [the_account(tradovate, token)["id"]]


# -- user sync and the PnL the examples compute from it -----------------------------------------


def test_the_sync_snapshot_carries_what_the_pnl_code_reads(tradovate, sockets):
    token = access_token(tradovate)
    account = the_account(tradovate, token["accessToken"])
    order = {
        "accountSpec": account["name"],
        "accountId": account["id"],
        "action": "Buy",
        "symbol": tradovate.contract,
        "orderQty": 2,
        "orderType": "Market",
        "isAutomated": True,
    }
    assert "orderId" in rest_post(tradovate, token["accessToken"], "/order/placeOrder", order)
    sock = account_socket(tradovate, sockets, token["accessToken"])
    snapshot = sock.request("user/syncrequest", 1, {"users": [token["userId"]]})["d"]

    # The crossover strategy's onUserSync, then calculatePnL, on the snapshot's arrays.
    (contract,) = [c for c in snapshot["contracts"] if c["name"] == tradovate.contract]
    product = next(p for p in snapshot["products"] if contract["name"].startswith(p["name"]))
    position = next(p for p in snapshot["positions"] if p["contractId"] == contract["id"])
    realized = snapshot["cashBalances"][0]["realizedPnL"]
    price = Decimal("21010.00")
    buy = position.get("netPrice") or position.get("prevPrice")
    pnl = (price - Decimal(str(buy))) * Decimal(str(product["valuePerPoint"])) * position["netPos"]
    assert pnl == 10 * contract_spec("MNQ").point_value * 2 and realized == 0
    maturity_ids = {m["id"] for m in snapshot["contractMaturities"]}
    assert contract["contractMaturityId"] in maturity_ids
    assert {"fillPairs", "commandReports", "executionReports"} <= set(snapshot)


def test_account_events_report_executions_commands_cash_and_fill_pairs(tradovate, sockets):
    token = access_token(tradovate)
    account = the_account(tradovate, token["accessToken"])
    sock = account_socket(tradovate, sockets, token["accessToken"])
    assert "users" in sock.request("user/syncrequest", 1, {"users": [token["userId"]]})["d"]
    for action in ("Buy", "Sell"):
        if action == "Sell":
            tradovate.broker.set_price(tradovate.contract, "21005.00")
        body = {
            "accountSpec": account["name"],
            "accountId": account["id"],
            "action": action,
            "symbol": tradovate.contract,
            "orderQty": 1,
            "orderType": "Market",
            "isAutomated": True,
        }
        assert "orderId" in rest_post(tradovate, token["accessToken"], "/order/placeorder", body)

    def props(kind: str, **fields: Any) -> dict[str, Any]:
        event = sock.wait(
            lambda m: (
                m.get("e") == "props"
                and m["d"]["entityType"] == kind
                and all(m["d"]["entity"].get(k) == v for k, v in fields.items())
            )
        )
        entity: dict[str, Any] = event["d"]["entity"]
        return entity

    trade = props("executionReport", execType="Trade", action="Sell")
    assert (trade["lastQty"], trade["lastPx"], trade["ordStatus"]) == (1, 21005.0, "Filled")
    assert props("commandReport")["commandStatus"]
    pair = props("fillPair")
    assert (pair["qty"], pair["buyPrice"], pair["sellPrice"]) == (1, 21000.0, 21005.0)
    cash = props("cashBalance", accountId=account["id"])
    assert Decimal(str(cash["realizedPnL"])) == 5 * contract_spec("MNQ").point_value


# -- orders over the account socket (the strategy example sends every order there) ---------------


def placed(tradovate: Tradovate, sockets: list[Socket]) -> tuple[Socket, dict[str, Any]]:
    token = access_token(tradovate)
    account = the_account(tradovate, token["accessToken"])
    return account_socket(tradovate, sockets, token["accessToken"]), account


def test_place_order_over_the_socket(tradovate, sockets):
    sock, account = placed(tradovate, sockets)
    answer = sock.request(
        "order/placeOrder",
        1,
        {
            "accountSpec": account["name"],
            "accountId": account["id"],
            "action": "Buy",
            "symbol": tradovate.contract,
            "orderQty": 1,
            "orderType": "Market",
            "isAutomated": True,
        },
    )
    assert answer["s"] == 200 and isinstance(answer["d"]["orderId"], int)


def test_place_oco_over_the_socket(tradovate, sockets):
    sock, account = placed(tradovate, sockets)
    answer = sock.request(
        "order/placeOCO",
        1,
        {
            "accountSpec": account["name"],
            "accountId": account["id"],
            "action": "Sell",
            "symbol": tradovate.contract,
            "orderQty": 1,
            "orderType": "Limit",
            "price": 21010.0,
            "isAutomated": True,
            "other": {"action": "Sell", "orderType": "Stop", "stopPrice": 20990.0},
        },
    )
    assert answer["s"] == 200 and {"orderId", "ocoId"} <= set(answer["d"])


def test_product_find_over_the_socket(tradovate, sockets):
    sock, _ = placed(tradovate, sockets)
    answer = sock.request("product/find", 1, query=f"name={tradovate.root}")
    assert answer["s"] == 200
    assert answer["d"]["name"] == "MNQ"
    assert Decimal(str(answer["d"]["valuePerPoint"])) == contract_spec("MNQ").point_value


def start_order_strategy_body(account: dict[str, Any], symbol: str) -> dict[str, Any]:
    """The strategy example's body: bracket params as a JSON string (orderStrategyTypeId 2)."""
    params = {
        "entryVersion": {"orderQty": 1, "orderType": "Market"},
        "brackets": [{"qty": 1, "profitTarget": 5.0, "stopLoss": -2.5, "trailingStop": False}],
    }
    return {
        "accountId": account["id"],
        "accountSpec": account["name"],
        "symbol": symbol,
        "action": "Buy",
        "orderStrategyTypeId": 2,
        "params": json.dumps(params),
    }


def test_start_order_strategy_over_the_socket(tradovate, sockets):
    sock, account = placed(tradovate, sockets)
    body = start_order_strategy_body(account, tradovate.contract)
    answer = sock.request("orderStrategy/startOrderStrategy", 1, body)
    assert answer["s"] == 200
    strategy = answer["d"]["orderStrategy"]
    assert strategy["status"] == "ActiveStrategy" and strategy["params"] == body["params"]


def test_start_order_strategy_over_rest(tradovate):
    token = access_token(tradovate)["accessToken"]
    account = the_account(tradovate, token)
    body = start_order_strategy_body(account, tradovate.contract)
    answer = rest_post(tradovate, token, "/orderStrategy/startOrderStrategy", body)
    assert answer["orderStrategy"]["status"] == "ActiveStrategy"


def test_reports_fill_pairs_and_cash_balances_are_listed(tradovate):
    token = access_token(tradovate)["accessToken"]
    account = the_account(tradovate, token)
    order = {"accountId": account["id"], "symbol": tradovate.contract, "orderQty": 1}
    rest_post(
        tradovate, token, "/order/placeorder", {**order, "action": "Buy", "orderType": "Market"}
    )
    tradovate.broker.set_price(tradovate.contract, "20997.50")
    rest_post(
        tradovate, token, "/order/placeorder", {**order, "action": "Sell", "orderType": "Market"}
    )

    loss = Decimal("-2.5") * contract_spec("MNQ").point_value
    (cash,) = rest_get(tradovate, token, "/cashBalance/list")
    assert cash["accountId"] == account["id"] and Decimal(str(cash["realizedPnL"])) == loss
    snapshot = rest_post(
        tradovate, token, "/cashBalance/getCashBalanceSnapshot", {"accountId": account["id"]}
    )
    assert Decimal(str(snapshot["realizedPnL"])) == loss and "totalCashValue" in snapshot
    trades = [
        r for r in rest_get(tradovate, token, "/executionReport/list") if r["execType"] == "Trade"
    ]
    assert sorted(r["lastPx"] for r in trades) == [20997.5, 21000.0]
    commands = rest_get(tradovate, token, "/command/list")
    reports = rest_get(tradovate, token, "/commandReport/list")
    assert {r["commandId"] for r in reports} == {c["id"] for c in commands}
    (pair,) = rest_get(tradovate, token, "/fillPair/list")
    assert (pair["buyPrice"], pair["sellPrice"], pair["qty"]) == (21000.0, 20997.5, 1)


# -- market data -----------------------------------------------------------------------------------


def test_the_quote_subscription_answer_has_a_body(tradovate, sockets):
    token = access_token(tradovate)
    sock = md_socket(tradovate, sockets, token["mdAccessToken"])
    answer = sock.request("md/subscribeQuote", 1, {"symbol": tradovate.contract})
    # The tutorial's subscribe() reads `response.d['p-ticket']` before anything else.
    assert answer["s"] == 200 and isinstance(answer.get("d"), dict)
    assert "p-ticket" not in answer["d"]


def test_quote_events_carry_the_documented_entries(tradovate, sockets):
    token = access_token(tradovate)
    sock = md_socket(tradovate, sockets, token["mdAccessToken"])
    # The tutorial routes quotes by the contractId that REST contract/find gave it.
    contract = rest_get(tradovate, token["accessToken"], "/contract/find", name=tradovate.contract)
    assert sock.request("md/subscribeQuote", 1, {"symbol": tradovate.contract})["s"] == 200
    tradovate.md.set_trade(tradovate.contract, "21000.25")
    event = sock.wait(lambda m: m.get("e") == "md" and m["d"].get("quotes"))
    (quote,) = [q for q in event["d"]["quotes"] if q["contractId"] == contract["id"]]
    entries = quote["entries"]
    assert {
        "Bid",
        "Offer",
        "Trade",
        "TotalTradeVolume",
        "OpenInterest",
        "HighPrice",
        "LowPrice",
        "OpeningPrice",
        "SettlementPrice",
    } <= set(entries)
    assert entries["Trade"]["price"] == 21000.25
    assert entries["Bid"]["price"] <= entries["Trade"]["price"] <= entries["Offer"]["price"]


def test_dom_subscription_sends_books_of_the_contract(tradovate, sockets):
    token = access_token(tradovate)
    sock = md_socket(tradovate, sockets, token["mdAccessToken"])
    contract = rest_get(tradovate, token["accessToken"], "/contract/find", name=tradovate.contract)
    answer = sock.request("md/subscribeDOM", 1, {"symbol": tradovate.contract})
    assert answer["s"] == 200 and isinstance(answer["d"], dict)
    tradovate.md.set_book(tradovate.contract, "21000.00", "21000.25")
    event = sock.wait(lambda m: m.get("e") == "md" and m["d"].get("doms"))
    (dom,) = [d for d in event["d"]["doms"] if d["contractId"] == contract["id"]]
    assert dom["bids"][0]["price"] == 21000.0 and dom["offers"][0]["price"] == 21000.25
    assert all(level["size"] > 0 for level in dom["bids"] + dom["offers"])


def test_get_chart_sends_bars_then_live_updates_until_cancelled(tradovate, sockets):
    token = access_token(tradovate)
    for price in ("21000.00", "21002.00", "20999.00", "21001.00"):
        tradovate.md.set_trade(tradovate.contract, price)
    sock = md_socket(tradovate, sockets, token["mdAccessToken"])
    body = {
        "symbol": tradovate.contract,
        "chartDescription": {
            "underlyingType": "MinuteBar",
            "elementSize": 1,
            "elementSizeUnit": "UnderlyingUnits",
            "withHistogram": False,
        },
        "timeRange": {"asMuchAsElements": 20},
    }
    answer = sock.request("md/getChart", 1, body)
    assert answer["s"] == 200
    historical, realtime = answer["d"]["historicalId"], answer["d"]["realtimeId"]

    def charts(chart_id: int) -> list[dict[str, Any]]:
        """The packets of one chart id in the next chart event that has any."""
        event = sock.wait(
            lambda m: m.get("e") == "chart" and any(c["id"] == chart_id for c in m["d"]["charts"])
        )
        return [c for c in event["d"]["charts"] if c["id"] == chart_id]

    packets = charts(historical)
    while not any(p.get("eoh") for p in packets):  # history may take several packets
        packets += charts(historical)
    bars = [bar for packet in packets for bar in packet.get("bars", [])]
    assert bars, "the history packets have bars"
    high = max(b["high"] for b in bars)
    low = min(b["low"] for b in bars)
    assert (bars[0]["open"], high, low, bars[-1]["close"]) == (21000.0, 21002.0, 20999.0, 21001.0)
    assert {"upVolume", "downVolume", "bidVolume", "offerVolume"} <= set(bars[-1])
    assert all(isinstance(p["td"], int) for p in packets if "bars" in p)
    tradovate.md.set_trade(tradovate.contract, "21003.00")
    assert charts(realtime)[0]["bars"][-1]["close"] == 21003.0
    # The tutorial cancels with the historicalId (the partner docs say realtimeId; both work).
    assert sock.request("md/cancelChart", 2, {"subscriptionId": historical})["s"] == 200
