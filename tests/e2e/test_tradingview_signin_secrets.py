"""The price feed signing in to TradingView by itself as processes do it, and neither the
password nor the authenticator key (nor what the sign-in gives) in any log or API answer."""

from __future__ import annotations

import requests
from sqlalchemy import update

from libs.common.storage import db
from libs.common.storage.embedded import free_port
from libs.common.storage.models import User
from simulators.tradingview.http import SiteServer
from simulators.tradingview.quote_server import QuoteServer, demo_market

TV_USER, TV_PASSWORD = "trader7@example.com", "tv-password-9e41c0d7"
TV_SECRET = "NB2W 45DF OIZA 4Y3J MJSX E2LT"  # as the app shows it
TV_SECRET_KEPT = TV_SECRET.replace(" ", "")


def test_the_feed_signs_in_with_the_stored_sign_in_and_no_secret_reaches_a_log_or_an_answer(
    stack, api, redis_client, sessions, eventually
):
    # Given a TradingView of our own with a two-factor account, and the services at DEBUG
    market = demo_market()
    market.add_user(TV_USER, TV_PASSWORD, TV_SECRET_KEPT, user_id=7)
    with SiteServer(market) as site, QuoteServer(market) as quotes:
        feed_port = free_port()
        stack.env.update(
            PRICE_SOURCE="tradingview",
            TRADINGVIEW_URL=site.url,
            TRADINGVIEW_SCANNER_URL=site.url,
            TRADINGVIEW_WS_URL=quotes.url,
            PRICE_WATCHLIST="MNQ",
            PRICE_FEED_PORT=str(feed_port),
            LOG_LEVEL="DEBUG",
        )
        stack.stop("ui")
        stack.start("ui")
        stack.wait_healthy("ui")
        stack.start("price-feed")
        with db.transaction(sessions) as s:
            s.execute(update(User).where(User.email == stack.email).values(is_admin=True))

        # When the operator stores the sign-in (no cookies at all)
        answers = [
            api.post(
                "/api/tradingview/credentials",
                {"username": TV_USER, "password": TV_PASSWORD, "totp_secret": TV_SECRET},
            )
        ]
        assert answers[0].status_code == 200, answers[0].text

        # Then the feed signs in by itself and streams real-time quotes
        eventually(
            lambda: any(
                f.get("source") == "tradingview" and "delayed" not in f
                for _, f in redis_client.xrevrange("jt:ticks", count=50)
            ),
            "a real-time TradingView tick",
            timeout=45,
        )
        assert site.signins == ["2FA_required", "signed_in"]
        view = eventually(
            lambda: (v := api.get("/api/tradingview/session")).json()["source"] == "sign-in" and v,
            "the session view to say the feed signed in",
        )
        answers += [view, api.get("/api/status")]
        answers.append(requests.get(f"http://127.0.0.1:{feed_port}/status", timeout=5))
        issued = [(a.sessionid, a.sessionid_sign or "", a.token) for a in market.accounts.values()]
        logs = {name: stack.log(name) for name in stack.processes}

    # And no log and no answer holds the password, the key, or the session it obtained
    secrets = {
        "TradingView password": TV_PASSWORD,
        "authenticator key": TV_SECRET_KEPT,
        "authenticator key as typed": TV_SECRET,
        **{f"issued value {n}": v for n, values in enumerate(issued) for v in values},
    }
    assert issued and logs["price-feed"].strip()
    texts = {**logs, **{f"answer {n}": a.text for n, a in enumerate(answers)}}
    leaks = [(what, where) for what, s in secrets.items() for where, t in texts.items() if s in t]
    assert leaks == []
    assert "tradingview signing in" in logs["price-feed"]  # the log says what happened, plainly
