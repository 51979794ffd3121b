"""A full scenario with every secret a user hands us, then every log line searched for each."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from sqlalchemy import update

from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.rolls import front_contract
from libs.common.storage import db
from libs.common.storage.embedded import free_port
from libs.common.storage.models import User
from simulators.tradingview.http import SiteServer
from simulators.tradingview.quote_server import QuoteServer, demo_market
from simulators.tradingview.tokens import make_jwt
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue

BROKER_USER, BROKER_PASSWORD = "jdoe", "tradovate-password-4d1f"
APP_ID, CID, SEC = "JustTrades", 1234, "tradovate-api-secret-9c2e"
SESSIONID, SESSIONID_SIGN = "tvsession0d6c0e4f8a9b7c1d", "v3:tvsign5e2a7c9b1d3f"


def test_no_secret_of_a_full_scenario_reaches_any_log(
    stack, api, redis_client, sessions, eventually
):
    # Given a TradingView and a Tradovate of our own, and every service using them, logging at DEBUG
    market = demo_market()
    jwt = make_jwt(1, int(time.time()) + 3600)
    market.add_account(SESSIONID, jwt, 3600, SESSIONID_SIGN)
    front = front_contract("MNQ", trade_date(datetime.now(UTC)))
    with (
        SiteServer(market) as site,
        QuoteServer(market) as quotes,
        BrokerSimulator(
            ContractCatalogue.standard(datetime.now(UTC).date()),
            users={BROKER_USER: BROKER_PASSWORD},
            app_id=APP_ID,
            cid=CID,
            sec=SEC,
        ) as broker,
    ):
        broker.set_price(front, Decimal("21000"))
        stack.env.update(
            TRADOVATE_DEMO_URL=broker.url,
            TRADOVATE_LIVE_URL=broker.url,
            PRICE_SOURCE="tradingview",
            TRADINGVIEW_URL=site.url,
            TRADINGVIEW_SCANNER_URL=site.url,
            TRADINGVIEW_WS_URL=quotes.url,
            PRICE_WATCHLIST="MNQ",
            PRICE_FEED_PORT=str(free_port()),
            LOG_LEVEL="DEBUG",
        )
        for name in ("gateway", "engine", "ui", "executor"):  # every line a service can write
            stack.stop(name)
            stack.start(name)
            stack.wait_healthy(name)
        stack.start("price-feed")

        # When the user, the operator (who alone sets the feed's TradingView session), logs in
        # with a password in a browser session
        with db.transaction(sessions) as s:
            s.execute(update(User).where(User.email == stack.email).values(is_admin=True))
        browser = requests.Session()
        login = browser.post(
            stack.url("ui") + "/login", json={"email": stack.email, "password": stack.password}
        )
        assert login.status_code == 200, login.text
        csrf = {"X-CSRFToken": login.json()["csrf_token"]}
        # connects Tradovate with its password and API secret, and stores TradingView's cookies
        account = browser.post(
            stack.url("ui") + "/api/accounts",
            headers=csrf,
            json={
                "broker": "tradovate",
                "environment": "demo",
                "username": BROKER_USER,
                "password": BROKER_PASSWORD,
                "app_id": APP_ID,
                "cid": CID,
                "sec": SEC,
            },
        )
        assert account.status_code == 201, account.text
        stored = browser.post(
            stack.url("ui") + "/api/tradingview/session",
            headers=csrf,
            json={"sessionid": SESSIONID, "sessionid_sign": SESSIONID_SIGN},
        )
        assert stored.status_code in (200, 201), stored.text
        # and a webhook with the recorder's token places an order through a trader
        recorder = api.create_recorder(name="Secretive")
        subaccount = account.json()["subaccounts"][0]["id"]
        trader = api.post(
            "/api/traders", {"recorder_id": recorder["id"], "subaccount_id": subaccount}
        )
        assert trader.status_code == 201, trader.text
        webhook = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
        sent = requests.post(
            webhook, json={"action": "buy", "ticker": "MNQ1!", "price": 21000}, timeout=5
        )
        assert sent.status_code == 202, sent.text

        # Then the order reaches Tradovate and the feed streams real-time quotes with the cookies
        eventually(
            lambda: any(c.get("clOrdId") for c in broker.book.commands.values()),
            "the order at Tradovate",
            timeout=30,
        )
        eventually(
            lambda: any(
                f.get("source") == "tradingview" and "delayed" not in f
                for _, f in redis_client.xrevrange("jt:ticks", count=50)
            ),
            "a real-time TradingView tick",
            timeout=30,
        )
        with broker.lock:
            tradovate_tokens = [*broker.access._by_token, *broker.access._md_tokens]
        logs = {name: stack.log(name) for name in stack.processes}

    # And no log of any service holds any of the secrets used
    secrets = {
        "user password": stack.password,
        "API key": api.headers["Authorization"].removeprefix("Bearer "),
        "webhook token": recorder["webhook_token"],
        "Tradovate password": BROKER_PASSWORD,
        "Tradovate API secret": SEC,
        "TradingView sessionid": SESSIONID,
        "TradingView sessionid_sign": SESSIONID_SIGN,
        "TradingView auth token": jwt,
        "SECRET_KEY": stack.env["SECRET_KEY"],
        "ENCRYPTION_KEY": stack.env["ENCRYPTION_KEY"],
        "session cookie": browser.cookies["session"],
        **{f"Tradovate token {n}": token for n, token in enumerate(tradovate_tokens)},
        # The servers' passwords (embedded ones are generated; configured ones are whatever
        # DATABASE_URL/REDIS_URL carry), when the URLs have one.
        **{
            f"{name} password": password
            for name, url in (
                ("PostgreSQL", stack.env["DATABASE_URL"]),
                ("Redis", stack.env["REDIS_URL"]),
            )
            if (password := urlsplit(url).password)
        },
    }
    assert len(tradovate_tokens) >= 2  # an access token and a market-data token were issued
    assert all(
        logs[name].strip() for name in ("gateway", "engine", "ui", "executor", "price-feed")
    ), logs
    leaks = [
        (what, name)
        for what, secret in secrets.items()
        for name, text in logs.items()
        if secret in text
    ]
    assert leaks == []
