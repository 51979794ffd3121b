"""The Tradovate REST client against the broker simulator, over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from libs.common.tradovate.client import (
    AuthFailed,
    BrokerUnavailable,
    PenaltyTicket,
    RateLimited,
    Rejected,
    TokenExpired,
    TradovateClient,
    oauth_exchange,
)
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue

USER, PASSWORD = "jdoe", "correct horse"
APP: dict[str, Any] = {
    "app_id": "JustTrades",
    "app_version": "1.0",
    "cid": 1234,
    "sec": "sim-api-secret",
}
OAUTH = {
    "client_id": "jt-oauth-client",
    "client_secret": "jt-oauth-secret",
    "redirect_uri": "http://ui.test/tradovate/callback",
}


class Clock:
    """A settable clock for the simulator, starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def catalogue() -> ContractCatalogue:
    c = ContractCatalogue()
    for name in ("MNQZ6", "MESZ6", "MNQH7", "ZNZ6"):
        c.add(name)
    return c


@pytest.fixture
def demo(catalogue) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(catalogue, users={USER: PASSWORD}) as sim:
        sim.set_price("MNQZ6", "21000.00")
        yield sim


@pytest.fixture
def live(catalogue) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(catalogue, users={USER: PASSWORD}, environment="live") as sim:
        yield sim


def login(sim: BrokerSimulator, **kw) -> TradovateClient:
    client = TradovateClient(sim.url, timeout_s=5, **kw)
    client.access_token_request(USER, PASSWORD, **APP, device_id="device-1")
    return client


@pytest.fixture
def client(demo) -> TradovateClient:
    return login(demo)


@pytest.fixture
def account(client) -> dict:
    return client.account_list()[0]


def place(client: TradovateClient, account: dict, action: str, qty: int = 1, **kw) -> int:
    return client.place_order(
        account["id"], account["name"], action, kw.pop("symbol", "MNQZ6"), qty, **kw
    )


def statuses(client: TradovateClient) -> dict[int, str]:
    return {o["id"]: o["ordStatus"] for o in client.order_list()}


def net_pos(client: TradovateClient, contract_id: int) -> int:
    return sum(p["netPos"] for p in client.position_list() if p["contractId"] == contract_id)


def authorize(sim: BrokerSimulator, state: str = "s-1") -> str:
    answer = requests.get(
        f"{sim.root_url}/oauth/authorize",
        allow_redirects=False,
        timeout=5,
        params={
            "response_type": "code",
            "client_id": OAUTH["client_id"],
            "redirect_uri": OAUTH["redirect_uri"],
            "state": state,
        },
    )
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


# -- credentials ---------------------------------------------------------------------------------


def test_credentials_login_returns_tokens_expiry_and_user(demo):
    client = TradovateClient(demo.url)
    token = client.access_token_request(USER, PASSWORD, **APP, device_id="device-1")
    assert token.access_token and token.md_access_token and client.token == token.access_token
    assert token.name == USER and token.user_id == demo.user_ids[USER]
    assert 5300 < token.expiration_time.timestamp() - time.time() <= 5400
    assert token.access_token not in repr(token) + repr(client)
    assert client.me()["userId"] == token.user_id


def test_bad_password_raises_auth_failed_with_the_error_text(demo):
    with pytest.raises(AuthFailed) as failed:
        TradovateClient(demo.url).access_token_request(USER, "wrong", **APP)
    assert failed.value.message == "Incorrect username or password. Please try again."


def test_unregistered_api_key_is_refused(demo):
    with pytest.raises(AuthFailed, match="not registered"):
        TradovateClient(demo.url).access_token_request(USER, PASSWORD, **{**APP, "sec": "nope"})


def test_repeated_bad_passwords_earn_a_captcha_ticket(demo):
    for _ in range(5):
        with pytest.raises(AuthFailed):
            TradovateClient(demo.url).access_token_request(USER, "wrong", **APP)
    with pytest.raises(PenaltyTicket) as penalty:
        TradovateClient(demo.url).access_token_request(USER, PASSWORD, **APP)
    assert penalty.value.captcha


def test_renewal_gives_a_new_token_with_a_later_expiry(catalogue):
    clock = Clock()
    with BrokerSimulator(catalogue, users={USER: PASSWORD}, clock=clock) as sim:
        client = TradovateClient(sim.url)
        first = client.access_token_request(USER, PASSWORD, **APP)
        clock.now += 600
        renewed = client.renew_access_token()
        assert renewed.access_token != first.access_token
        later = renewed.expiration_time - first.expiration_time
        assert later.total_seconds() == pytest.approx(600)
        assert client.token == renewed.access_token and client.account_list()


def test_expired_token_raises_token_expired(demo, client):
    demo.expire_tokens()
    with pytest.raises(TokenExpired):
        client.account_list()
    with pytest.raises(AuthFailed):  # TokenExpired is an AuthFailed
        client.renew_access_token()


# -- OAuth ---------------------------------------------------------------------------------------


def test_authorize_redirects_back_with_a_code_and_the_state(demo):
    answer = requests.get(
        f"{demo.root_url}/oauth",
        allow_redirects=False,
        timeout=5,
        params={
            "response_type": "code",
            "client_id": OAUTH["client_id"],
            "redirect_uri": OAUTH["redirect_uri"],
            "state": "xyz",
        },
    )
    location = urlsplit(answer.headers["Location"])
    assert answer.status_code == 302
    assert f"{location.scheme}://{location.netloc}{location.path}" == OAUTH["redirect_uri"]
    assert parse_qs(location.query)["state"] == ["xyz"] and parse_qs(location.query)["code"]


def test_code_exchange_is_form_encoded_and_single_use(demo):
    sent: list[requests.PreparedRequest] = []
    http = requests.Session()
    http.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    code = authorize(demo)
    client = TradovateClient(demo.url, http=http)
    token = client.oauth_token(code, **OAUTH)
    assert sent[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent[0].body)["grant_type"] == ["authorization_code"]
    assert token.user_id is None and client.account_list()[0]["userId"] == demo.user_ids[USER]
    with pytest.raises(AuthFailed, match="used or expired"):
        TradovateClient(demo.url).oauth_token(code, **OAUTH)


def test_oauth_exchange_prefers_live(live, demo):
    token, environment = oauth_exchange(live.url, demo.url, authorize(live), **OAUTH)
    assert environment == "live" and TradovateClient(live.url, token.access_token).account_list()


def test_oauth_exchange_uses_demo_when_live_answers_429(live, demo):
    live.lock_out(60)
    token, environment = oauth_exchange(live.url, demo.url, authorize(demo), **OAUTH)
    assert environment == "demo" and TradovateClient(demo.url, token.access_token).account_list()


def test_oauth_exchange_uses_demo_when_live_refuses_the_code(live, demo):
    _, environment = oauth_exchange(live.url, demo.url, authorize(demo), **OAUTH)
    assert environment == "demo"


# -- accounts and contracts ----------------------------------------------------------------------


def test_account_list_gives_the_account_id_and_spec(demo, client):
    demo.add_account(USER, "APEX4412")
    accounts = client.account_list()
    assert [a["name"] for a in accounts] == [accounts[0]["name"], "APEX4412"]
    assert accounts[0]["name"].startswith("DEMO") and isinstance(accounts[0]["id"], int)
    assert all(a["userId"] == demo.user_ids[USER] for a in accounts)


def test_liquidate_only_account_shows_in_risk_status_and_refuses_entries(demo, client, account):
    place(client, account, "Buy", 2)
    demo.set_risk_status(
        account["name"], admin_action="LiquidateOnlyModeImmediately", liquidate_only=True
    )
    [risk] = client.account_risk_status_list()
    assert risk["id"] == account["id"] and risk["liquidateOnly"]
    with pytest.raises(Rejected) as refused:
        place(client, account, "Buy", 1)
    assert refused.value.failure_reason == "LiquidationOnly"
    place(client, account, "Sell", 2)  # closing is still allowed


def test_locked_account_refuses_every_order(demo, client, account):
    demo.set_risk_status(account["name"], admin_action="LockTradingImmediately")
    with pytest.raises(Rejected, match="TradingLocked"):
        place(client, account, "Sell", 1)


def test_contract_find_and_suggest(client, catalogue):
    assert client.contract_find("MNQZ6")["id"] == catalogue.find("MNQZ6").id
    assert client.contract_find("MNQ") is None  # a bare root is a 404
    assert client.contract_find("MNQZ9") is None
    assert [c["name"] for c in client.contract_suggest("MNQ", 5)] == ["MNQZ6", "MNQH7"]


# -- orders --------------------------------------------------------------------------------------


def test_market_order_fills_at_the_set_price_and_opens_a_position(demo, client, account, catalogue):
    demo.set_price("MNQZ6", "21012.25")
    order_id = place(client, account, "Buy", 2)
    [fill] = client.fill_list()
    assert (fill["orderId"], fill["qty"], fill["price"]) == (order_id, 2, Decimal("21012.25"))
    [position] = client.position_list()
    assert position["contractId"] == catalogue.find("MNQZ6").id
    assert (position["netPos"], position["netPrice"]) == (2, Decimal("21012.25"))
    assert statuses(client)[order_id] == "Filled"


def test_oso_brackets_wait_for_the_entry_then_form_an_oco(demo, client, account):
    result = client.place_oso(
        account["id"],
        account["name"],
        "Buy",
        "MNQZ6",
        1,
        {"action": "Sell", "orderType": "Limit", "price": Decimal("21020")},
        {"action": "Sell", "orderType": "Stop", "stopPrice": Decimal("20980")},
        order_type="Limit",
        price=Decimal("20995"),
    )
    tp, sl = result.oso1_id, result.oso2_id
    assert statuses(client) == {result.order_id: "Working", tp: "Suspended", sl: "Suspended"}
    demo.set_price("MNQZ6", "20995")
    assert statuses(client) == {result.order_id: "Filled", tp: "Working", sl: "Working"}
    orders = {o["id"]: o for o in client.order_list()}
    assert orders[tp]["ocoId"] == sl and orders[sl]["ocoId"] == tp
    assert orders[tp]["parentId"] == result.order_id


def test_take_profit_fill_cancels_the_stop_loss(demo, client, account, catalogue):
    result = client.place_oso(
        account["id"],
        account["name"],
        "Buy",
        "MNQZ6",
        2,
        {"action": "Sell", "orderType": "Limit", "price": Decimal("21010")},
        {"action": "Sell", "orderType": "Stop", "stopPrice": Decimal("20990")},
    )
    demo.set_price("MNQZ6", "21010.50")
    state = statuses(client)
    assert (state[result.oso1_id], state[result.oso2_id]) == ("Filled", "Canceled")
    assert net_pos(client, catalogue.find("MNQZ6").id) == 0
    exit_fill = next(f for f in client.fill_list() if f["orderId"] == result.oso1_id)
    assert (exit_fill["qty"], exit_fill["price"]) == (2, Decimal("21010"))


def test_oco_fill_of_one_cancels_the_other(demo, client, account):
    place(client, account, "Buy", 1)
    order_id, oco_id = client.place_oco(
        account["id"],
        account["name"],
        "Sell",
        "MNQZ6",
        1,
        {"action": "Sell", "orderType": "Stop", "stopPrice": Decimal("20990")},
        price=Decimal("21010"),
    )
    assert {statuses(client)[i] for i in (order_id, oco_id)} == {"Working"}
    demo.set_price("MNQZ6", "20989.75")
    assert (statuses(client)[order_id], statuses(client)[oco_id]) == ("Canceled", "Filled")


def test_modify_moves_a_resting_limit_and_cancel_removes_one(demo, client, account):
    order_id = place(
        client, account, "Buy", 1, order_type="Limit", price=Decimal("20950"), time_in_force="GTC"
    )
    command_id = client.modify_order(
        order_id, 3, "Limit", price=Decimal("20990"), time_in_force="GTC"
    )
    latest = client.order_version_deps(order_id)[-1]
    assert (latest["id"], latest["orderQty"], latest["price"]) == (command_id, 3, Decimal("20990"))
    demo.set_price("MNQZ6", "20990")
    assert statuses(client)[order_id] == "Filled"
    other = place(client, account, "Sell", 1, order_type="Limit", price=Decimal("21100"))
    assert isinstance(client.cancel_order(other), int)
    assert statuses(client)[other] == "Canceled"
    with pytest.raises(Rejected, match="TooLate"):
        client.cancel_order(other)


def test_liquidate_position_flattens_and_cancels_working_orders(demo, client, account, catalogue):
    contract_id = catalogue.find("MNQZ6").id
    place(client, account, "Buy", 3)
    stop = place(client, account, "Sell", 3, order_type="Stop", stop_price=Decimal("20900"))
    other_contract = place(
        client, account, "Buy", 1, symbol="MESZ6", order_type="Limit", price=Decimal("6000")
    )
    demo.set_price("MNQZ6", "21005.50")
    closing = client.liquidate_position(account["id"], contract_id)
    state = statuses(client)
    assert (state[stop], state[closing], state[other_contract]) == ("Canceled", "Filled", "Working")
    assert net_pos(client, contract_id) == 0
    closing_fill = next(f for f in client.fill_list() if f["orderId"] == closing)
    assert closing_fill["price"] == Decimal("21005.50")


# -- refusals ------------------------------------------------------------------------------------


def test_unknown_symbol_is_rejected_with_reason_and_text(client, account):
    with pytest.raises(Rejected) as refused:
        place(client, account, "Buy", 1, symbol="MNQ1!")
    assert (refused.value.failure_reason, refused.value.failure_text) == (
        "UnknownReason",
        "Access is denied",
    )


def test_zero_quantity_is_a_violation(client, account):
    with pytest.raises(Rejected) as refused:
        place(client, account, "Buy", 0)
    assert refused.value.failure_reason == "Violation" and "orderQty" in refused.value.failure_text


def test_off_tick_price_is_an_invalid_price(client, account):
    with pytest.raises(Rejected, match="InvalidPrice"):
        place(client, account, "Buy", 1, order_type="Limit", price=Decimal("21000.10"))


def test_reject_next_comes_back_as_rejected(demo, client, account):
    demo.reject_next("MaxPosLimitReached", "Max position limit reached")
    with pytest.raises(Rejected) as refused:
        place(client, account, "Buy", 1)
    assert refused.value.failure_reason == "MaxPosLimitReached"
    assert client.order_list() == []


def test_live_refuses_orders_from_a_session_without_device_id(live, catalogue):
    live.set_price("MNQZ6", "21000")
    client = TradovateClient(live.url)
    client.access_token_request(USER, PASSWORD, **APP)  # no deviceId
    account = client.account_list()[0]
    with pytest.raises(TokenExpired):
        place(client, account, "Buy", 1)


# -- throttles -----------------------------------------------------------------------------------


def test_penalty_ticket_resend_after_p_time_succeeds_and_early_resend_is_penalized(
    demo, client, account
):
    demo.penalize_next(1, p_time=0.3)
    with pytest.raises(PenaltyTicket) as first:
        place(client, account, "Buy", 1, cl_ord_id="jt-1")
    assert (first.value.wait_s, first.value.captcha) == (0.3, False)
    with pytest.raises(PenaltyTicket) as again:  # too early: a new ticket, a new wait
        place(client, account, "Buy", 1, cl_ord_id="jt-1", p_ticket=first.value.ticket)
    time.sleep(again.value.wait_s + 0.05)
    order_id = place(client, account, "Buy", 1, cl_ord_id="jt-1", p_ticket=again.value.ticket)
    assert [o["id"] for o in client.order_list()] == [order_id]


def test_too_many_requests_a_minute_earn_a_ticket_then_a_lockout(catalogue):
    with BrokerSimulator(
        catalogue, users={USER: PASSWORD}, rate_limit_per_minute=4, lockout_per_minute=6
    ) as sim:
        client = login(sim)  # request 1
        for _ in range(3):  # requests 2–4
            client.account_list()
        with pytest.raises(PenaltyTicket):
            client.account_list()
        with pytest.raises(PenaltyTicket):
            client.account_list()
        with pytest.raises(RateLimited) as locked:
            client.account_list()
        assert locked.value.status == 429
        assert sim.max_requests_in_window(USER) == 7
        assert [path for _, path in sim.requests_per_user[USER]][:2] == [
            "auth/accesstokenrequest",
            "account/list",
        ]


def test_lockout_answers_429_until_the_user_stays_quiet(demo, client):
    demo.lock_out(0.3)
    time.sleep(0.15)
    with pytest.raises(RateLimited) as locked:
        client.position_list()
    assert locked.value.status == 429
    time.sleep(0.2)  # past the first lockout, but the request above extended it
    with pytest.raises(RateLimited):
        client.position_list()
    time.sleep(0.35)
    assert client.position_list() == []


# -- unknown outcomes ----------------------------------------------------------------------------


def test_find_order_by_cl_ord_id(client, account):
    order_id = place(client, account, "Buy", 1, cl_ord_id="jt-abc")
    place(client, account, "Sell", 1, cl_ord_id="jt-def")
    assert client.find_order_by_cl_ord_id(account["id"], "jt-abc")["id"] == order_id
    assert client.find_order_by_cl_ord_id(account["id"], "jt-unknown") is None


def test_timeout_after_send_is_unavailable_and_the_order_can_be_found(demo, account):
    client = login(demo)
    client.timeout_s = 0.3
    demo.delay_next(1.0)
    with pytest.raises(BrokerUnavailable) as unknown:
        place(client, account, "Buy", 1, cl_ord_id="jt-slow")
    assert unknown.value.maybe_sent
    assert client.find_order_by_cl_ord_id(account["id"], "jt-slow")["ordStatus"] == "Filled"


def test_refused_connection_is_unavailable_and_not_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BrokerUnavailable) as unknown:
        TradovateClient(f"http://127.0.0.1:{port}/v1", "t").account_list()
    assert not unknown.value.maybe_sent


def test_decimal_prices_survive_round_trips_exactly(demo, client, account):
    demo.set_price("ZNZ6", "112.03125")
    order_id = place(
        client, account, "Buy", 1, symbol="ZNZ6", order_type="Limit", price=Decimal("112.015625")
    )
    assert client.order_version_deps(order_id)[-1]["price"] == Decimal("112.015625")
    demo.set_price("ZNZ6", "112")
    fill = next(f for f in client.fill_list() if f["orderId"] == order_id)
    assert fill["price"] == Decimal("112.015625")
    assert next(p for p in client.position_list())["netPrice"] == Decimal("112.015625")


# --- order strategies (§5.8) and moving a stop -------------------------------------------------


def start_strategy(client: TradovateClient, account: dict, brackets: list[dict], **kw) -> dict:
    qty = sum(b["qty"] for b in brackets)
    entry = {"orderQty": qty, "orderType": "Market", "timeInForce": "Day"}
    return client.start_order_strategy(
        account["id"], account["name"], kw.pop("action", "Buy"), "MNQZ6", entry, brackets, **kw
    )


def strategy_orders(client: TradovateClient, strategy_id: int) -> dict[str, list[dict]]:
    """label → the strategy's orders with their latest version, in the order they were placed."""
    links = client.order_strategy_link_deps(strategy_id)
    versions = {v["orderId"]: v for v in client.order_version_ldeps([k["orderId"] for k in links])}
    orders = {o["id"]: o for o in client.order_list()}
    out: dict[str, list[dict]] = {}
    for link in sorted(links, key=lambda k: k["orderId"]):
        order = orders[link["orderId"]]
        row = {"id": order["id"], "status": order["ordStatus"], "action": order["action"]}
        out.setdefault(link["label"], []).append({**versions[link["orderId"]], **row})
    return out


def test_strategy_brackets_sit_at_offsets_from_the_actual_fill(demo, client, account, catalogue):
    demo.set_price("MNQZ6", "21001.25")  # the fill, not the price the offsets were meant from
    brackets = [
        {"qty": 1, "profitTarget": Decimal("5"), "stopLoss": Decimal("-10"), "trailingStop": False},
        {"qty": 2, "profitTarget": Decimal("12.5"), "stopLoss": Decimal("-10")},
    ]
    strategy = start_strategy(client, account, brackets, uuid="jt-strategy-1")
    assert strategy["status"] == "ActiveStrategy" and strategy["uuid"] == "jt-strategy-1"
    orders = strategy_orders(client, strategy["id"])
    assert [o["status"] for o in orders["Entry"]] == ["Filled"]
    targets = [(o["orderQty"], o["price"], o["timeInForce"]) for o in orders["Target"]]
    stops = [(o["orderQty"], o["stopPrice"], o["status"]) for o in orders["Stop"]]
    assert targets == [(1, Decimal("21006.25"), "GTC"), (2, Decimal("21013.75"), "GTC")]
    assert stops == [(1, Decimal("20991.25"), "Working"), (2, Decimal("20991.25"), "Working")]
    assert net_pos(client, catalogue.find("MNQZ6").id) == 3
    assert client.find_order_strategy(account["id"], "jt-strategy-1")["id"] == strategy["id"]
    assert client.find_order_strategy(account["id"], "jt-other") is None


def test_a_target_fill_cancels_its_own_stop_and_the_strategy_ends_with_its_orders(
    demo, client, account, catalogue
):
    brackets = [
        {"qty": 1, "profitTarget": Decimal("5"), "stopLoss": Decimal("-10")},
        {"qty": 1, "profitTarget": Decimal("10"), "stopLoss": Decimal("-10")},
    ]
    strategy = start_strategy(client, account, brackets, uuid="jt-strategy-2")
    demo.set_price("MNQZ6", "21005")
    orders = strategy_orders(client, strategy["id"])
    assert [o["status"] for o in orders["Target"]] == ["Filled", "Working"]
    assert [o["status"] for o in orders["Stop"]] == ["Canceled", "Working"]
    assert net_pos(client, catalogue.find("MNQZ6").id) == 1
    # the remaining stop, moved to break-even, triggers there and not at its old level
    stop = orders["Stop"][1]
    client.modify_order(stop["id"], 1, "Stop", stop_price=Decimal("21000"), time_in_force="GTC")
    demo.set_price("MNQZ6", "21000")
    assert statuses(client)[stop["id"]] == "Filled"
    assert net_pos(client, catalogue.find("MNQZ6").id) == 0
    [row] = client.order_strategy_deps(account["id"])
    assert row["status"] == "ExecutionFinished"


def test_a_short_strategy_puts_targets_below_and_stops_above(demo, client, account):
    brackets = [{"qty": 1, "profitTarget": Decimal("-5"), "stopLoss": Decimal("7.5")}]
    strategy = start_strategy(client, account, brackets, action="Sell")
    orders = strategy_orders(client, strategy["id"])
    assert (orders["Target"][0]["action"], orders["Target"][0]["price"]) == (
        "Buy",
        Decimal("20995"),
    )
    assert orders["Stop"][0]["stopPrice"] == Decimal("21007.5")


def test_interrupting_a_strategy_cancels_its_working_orders(demo, client, account):
    brackets = [{"qty": 1, "profitTarget": Decimal("5"), "stopLoss": Decimal("-10")}]
    strategy = start_strategy(client, account, brackets)
    stopped = client.interrupt_order_strategy(strategy["id"])
    assert stopped["status"] == "ExecutionInterrupted"
    orders = strategy_orders(client, strategy["id"])
    assert {o["status"] for o in orders["Target"] + orders["Stop"]} == {"Canceled"}


def test_a_strategy_whose_brackets_miss_the_entry_size_is_refused(client, account):
    entry = {"orderQty": 3, "orderType": "Market", "timeInForce": "Day"}
    brackets = [{"qty": 1, "profitTarget": Decimal("5"), "stopLoss": Decimal("-10")}]
    with pytest.raises(Rejected, match="add up"):
        client.start_order_strategy(account["id"], account["name"], "Buy", "MNQZ6", entry, brackets)
    assert client.order_strategy_deps(account["id"]) == []


def test_modify_answered_another_command_pending_is_a_rejection_the_caller_can_retry(
    demo, client, account
):
    stop = place(client, account, "Sell", 1, order_type="Stop", stop_price=Decimal("20900"))
    demo.reject_next("AnotherCommandPending", "A command on this order is still pending")
    with pytest.raises(Rejected) as refused:
        client.modify_order(stop, 1, "Stop", stop_price=Decimal("20950"))
    assert refused.value.failure_reason == "AnotherCommandPending"
    client.modify_order(stop, 1, "Stop", stop_price=Decimal("20950"))
    assert client.order_version_deps(stop)[-1]["stopPrice"] == Decimal("20950")
