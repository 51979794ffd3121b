"""Connecting Tradovate accounts through the UI API, against two broker simulators over HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, text, update

from libs.common.security import SecretBox
from libs.common.storage.models import Account, Subaccount
from libs.common.tradovate.accounts import TokenKeeper, open_credentials
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue

USER, PASSWORD = "jdoe", "correct horse battery staple"
API_KEY = {"app_id": "JustTrades", "app_version": "1.0", "cid": 1234, "sec": "sim-api-secret"}
OAUTH_CLIENT, OAUTH_SECRET = "jt-oauth-client", "jt-oauth-secret"
UI = "http://ui.test"


@pytest.fixture
def catalogue() -> ContractCatalogue:
    c = ContractCatalogue()
    c.add("MNQZ6")
    return c


@pytest.fixture
def demo(catalogue) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(catalogue, users={USER: PASSWORD}) as sim:
        yield sim


@pytest.fixture
def live(catalogue) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(catalogue, users={USER: PASSWORD}, environment="live") as sim:
        yield sim


@pytest.fixture
def settings(settings, demo, live):
    """The UI pointed at the simulators; Tradovate's one consent page is the demo simulator's."""
    return replace(
        settings,
        tradovate_demo_url=demo.url,
        tradovate_live_url=live.url,
        tradovate_oauth_url=f"{demo.root_url}/oauth",
        tradovate_oauth_client_id=OAUTH_CLIENT,
        tradovate_oauth_client_secret=OAUTH_SECRET,
        ui_public_url=UI,
    )


def connect(client, key, environment="demo", **fields):
    body = {
        "broker": "tradovate",
        "environment": environment,
        "username": USER,
        "password": PASSWORD,
        **API_KEY,
        **fields,
    }
    return client.post("/api/accounts", json=body, headers=key)


def account_rows(sessions) -> list[Account]:
    with sessions() as s:
        return s.scalars(select(Account)).all()


def requests_to(sim: BrokerSimulator, route: str) -> int:
    """Requests of every user, anonymous ones too (an expired token names nobody)."""
    return sum(1 for log in sim.requests_per_user.values() for _, r in log if r == route)


def browser_login(client) -> None:
    r = client.post("/login", json={"email": "alice@example.com", "password": "alice pass"})
    assert r.status_code == 200


# -- connecting with API credentials -------------------------------------------------------------


def test_credentials_connect_answers_the_simulators_subaccounts(client, alice, demo):
    r = connect(client, alice[1], name="My demo")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["broker"] == "tradovate" and body["environment"] == "demo"
    assert (body["auth_method"], body["name"], body["status"]) == (
        "credentials",
        "My demo",
        "connected",
    )
    expected = [(a.name, a.id) for a in demo.book.accounts_of(USER)]
    assert [(s["name"], s["broker_account_id"]) for s in body["subaccounts"]] == expected
    assert body["subaccounts"][0]["risk_status"] == "normal"
    listed = client.get("/api/accounts", headers=alice[1]).get_json()["accounts"]
    assert [a["id"] for a in listed] == [body["id"]]


def test_secrets_are_encrypted_at_rest_never_answered_and_never_logged(
    client, alice, demo, settings, engine, sessions, caplog
):
    caplog.set_level(logging.DEBUG)
    r = connect(client, alice[1], environment="demo")
    assert r.status_code == 201
    assert r.get_json()["name"] == f"{USER}@demo"
    (account,) = account_rows(sessions)
    box = SecretBox(settings.encryption_key)
    token = box.decrypt(account.access_token_encrypted)
    assert demo.access.token_valid(token)  # the stored token is the broker's live one
    creds = open_credentials(box, account)
    assert (creds.username, creds.password, creds.sec) == (USER, PASSWORD, API_KEY["sec"])
    with engine.connect() as conn:
        raw = repr(conn.execute(text("SELECT * FROM accounts")).all())
    for secret in (PASSWORD, token, API_KEY["sec"]):
        assert secret not in raw
        assert secret not in r.get_data(as_text=True)
    connect(client, alice[1], password="wrong password")
    assert caplog.records, "the login was logged"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage() and PASSWORD not in repr(record.__dict__)
        assert "wrong password" not in repr(record.__dict__)


def test_bad_password_is_refused_with_tradovates_words_and_stores_nothing(client, alice, sessions):
    r = connect(client, alice[1], password="not it")
    assert r.status_code == 422
    assert r.get_json() == {
        "ok": False,
        "error": "Tradovate refused the credentials: Incorrect "
        "username or password. Please try again.",
    }
    assert account_rows(sessions) == []


def test_a_locked_out_user_gets_503_and_nothing_is_stored(client, alice, live, sessions):
    live.lock_out(3600, user=USER)
    r = connect(client, alice[1], environment="live")
    assert r.status_code == 503
    assert r.get_json()["error"] == (
        "Tradovate has locked this user out for a while (HTTP 429); try again in an hour."
    )
    assert account_rows(sessions) == []


def test_a_penalty_ticket_says_how_long_to_wait(client, alice, demo, sessions):
    demo.penalize_next(1, p_time=15)
    r = connect(client, alice[1])
    assert r.status_code == 503
    assert "wait 15 seconds before another login" in r.get_json()["error"]
    assert account_rows(sessions) == []


def test_an_unreachable_broker_is_a_502(client, alice, settings, app, sessions):
    app.extensions["justtrades"] = replace(
        app.extensions["justtrades"],
        settings=replace(settings, tradovate_demo_url="http://127.0.0.1:9/v1"),
    )
    r = connect(client, alice[1])
    assert r.status_code == 502
    assert r.get_json()["error"].startswith("Tradovate did not answer: ")
    assert account_rows(sessions) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cid": None}, "cid must be the API key's numeric id."),
        ({"environment": "paper"}, 'environment must be "demo" or "live".'),
        (
            {"password": ""},
            "password must be your Tradovate password (or the API key's dedicated password).",
        ),
    ],
)
def test_a_wrong_field_is_named_and_the_password_never_echoed(client, alice, change, message):
    r = connect(client, alice[1], **change)
    assert r.status_code == 422
    assert r.get_json()["error"] == message


def test_connecting_the_same_user_again_renews_that_account_and_keeps_its_device(
    client, alice, sessions, settings
):
    first = connect(client, alice[1]).get_json()
    again = connect(client, alice[1])
    assert again.status_code == 200
    assert again.get_json()["id"] == first["id"]
    ids = [s["id"] for s in first["subaccounts"]]
    assert [s["id"] for s in again.get_json()["subaccounts"]] == ids
    (account,) = account_rows(sessions)
    assert open_credentials(SecretBox(settings.encryption_key), account).device_id


# -- refreshing ----------------------------------------------------------------------------------


def test_refresh_finds_a_new_account_and_risk_statuses(client, alice, demo):
    account = connect(client, alice[1]).get_json()
    first = account["subaccounts"][0]["name"]
    extra = demo.add_account(USER, "DEMO-EXTRA")
    locked = demo.add_account(USER, "DEMO-LOCKED")
    demo.set_risk_status(first, liquidate_only=True)
    demo.set_risk_status(locked.name, admin_action="LockTradingImmediately")
    r = client.post(f"/api/accounts/{account['id']}/refresh", headers=alice[1])
    assert r.status_code == 200, r.get_json()
    subs = {s["name"]: s for s in r.get_json()["subaccounts"]}
    assert subs[first]["risk_status"] == "liquidate_only"
    assert subs["DEMO-EXTRA"]["broker_account_id"] == extra.id
    assert subs["DEMO-EXTRA"]["risk_status"] == "normal"
    assert subs["DEMO-LOCKED"]["risk_status"] == "locked"


def test_refresh_after_the_broker_ended_the_session_logs_in_again(client, alice, demo):
    account = connect(client, alice[1]).get_json()
    demo.expire_tokens()
    r = client.post(f"/api/accounts/{account['id']}/refresh", headers=alice[1])
    assert r.status_code == 200, r.get_json()
    assert requests_to(demo, "auth/accesstokenrequest") == 2
    assert r.get_json()["status"] == "connected"
    expires = datetime.fromisoformat(r.get_json()["token_expires_at"])
    assert expires > datetime.now(UTC) + timedelta(hours=1)


def test_refresh_of_an_expired_oauth_account_asks_to_reconnect(client, alice, demo, sessions):
    account = connect(client, alice[1]).get_json()
    with sessions.begin() as s:  # as an OAuth account has it: a token, no credentials
        s.execute(update(Account).values(auth_method="oauth", credentials_encrypted=None))
    demo.expire_tokens()
    r = client.post(f"/api/accounts/{account['id']}/refresh", headers=alice[1])
    assert r.status_code == 409
    reconnect = "The Tradovate authorization has expired; connect the account again."
    assert r.get_json()["error"] == reconnect
    after = client.get(f"/api/accounts/{account['id']}", headers=alice[1]).get_json()
    assert after["status"] == "error"
    assert after["status_message"] == reconnect[:1].lower() + reconnect[1:-1]


def test_another_users_account_is_not_found(client, alice, bob):
    account = connect(client, alice[1]).get_json()
    for method, path in (("get", ""), ("post", "/refresh"), ("delete", "")):
        r = getattr(client, method)(f"/api/accounts/{account['id']}{path}", headers=bob[1])
        assert r.status_code == 404, (method, path)
    assert client.get(f"/api/accounts/{account['id']}", headers=alice[1]).status_code == 200


# -- the token keeper ----------------------------------------------------------------------------


def expiring_soon(sessions, account_id: int) -> None:
    with sessions.begin() as s:
        s.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(token_expires_at=datetime.now(UTC) + timedelta(minutes=2))
        )


def test_two_owners_near_expiry_renew_the_token_exactly_once(
    client, alice, demo, settings, sessions, redis_client
):
    account_id = connect(client, alice[1]).get_json()["id"]
    expiring_soon(sessions, account_id)
    start, tokens = threading.Barrier(2), []

    def owner() -> None:
        with sessions() as s:
            account = s.get(Account, account_id)
            start.wait()
            tokens.append(TokenKeeper(settings, redis_client, sessions=sessions).token(s, account))

    threads = [threading.Thread(target=owner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert requests_to(demo, "auth/renewaccesstoken") == 1
    assert len(tokens) == 2 and tokens[0] == tokens[1] and demo.access.token_valid(tokens[0])


def test_keeper_logs_in_again_with_stored_credentials_when_tokens_were_expired(
    client, alice, demo, settings, sessions, redis_client
):
    account_id = connect(client, alice[1]).get_json()["id"]
    expiring_soon(sessions, account_id)
    demo.expire_tokens()
    keeper = TokenKeeper(settings, redis_client, sessions=sessions)
    with sessions() as s:
        token = keeper.token(s, s.get(Account, account_id))
    assert demo.access.token_valid(token)
    assert requests_to(demo, "auth/renewaccesstoken") == 1  # refused: the session had ended
    assert requests_to(demo, "auth/accesstokenrequest") == 2


# -- OAuth ---------------------------------------------------------------------------------------


def test_oauth_start_redirects_to_the_consent_page_with_a_state(client, alice, demo):
    browser_login(client)
    r = client.get("/oauth/tradovate/start?environment=live")
    assert r.status_code == 302
    url = urlsplit(r.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{demo.root_url}/oauth"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == OAUTH_CLIENT
    assert query["redirect_uri"] == f"{UI}/oauth/tradovate/callback"
    assert len(query["state"]) >= 20


def test_oauth_start_needs_a_login_and_a_configured_client(client, alice, app, settings):
    r = client.get("/oauth/tradovate/start?environment=demo")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    browser_login(client)
    app.extensions["justtrades"] = replace(
        app.extensions["justtrades"], settings=replace(settings, tradovate_oauth_client_id="")
    )
    r = client.get("/oauth/tradovate/start")
    assert r.status_code == 400
    assert "TRADOVATE_OAUTH_CLIENT_ID and TRADOVATE_OAUTH_CLIENT_SECRET" in r.get_json()["error"]


def test_oauth_callback_with_a_wrong_state_is_refused(client, alice, sessions):
    browser_login(client)
    client.get("/oauth/tradovate/start")
    r = client.get("/oauth/tradovate/callback?code=abc&state=not-the-one")
    assert r.status_code == 400
    stale = "The sign-in link is stale or not yours; start again."
    assert r.get_json() == {"ok": False, "error": stale}
    assert account_rows(sessions) == []


def test_oauth_with_live_locked_out_connects_the_demo_account(client, alice, demo, live, sessions):
    browser_login(client)
    consent = client.get("/oauth/tradovate/start?environment=live").headers["Location"]
    # The consent page (no form in the simulator) sends the browser back at once.
    back = requests.get(consent, allow_redirects=False, timeout=5)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}" == UI
    live.lock_out(3600)
    r = client.get(f"{callback.path}?{callback.query}")
    assert r.status_code == 302, r.get_json()
    assert requests_to(live, "auth/oauthtoken") == 1  # live was asked first
    landing = urlsplit(r.headers["Location"])
    assert landing.path == "/accounts"  # the Accounts page, which shows the new account
    account_id = int(parse_qs(landing.query)["connected"][0])
    account = client.get(f"/api/accounts/{account_id}").get_json()
    assert (account["environment"], account["auth_method"]) == ("demo", "oauth")
    assert account["name"] == f"{USER}@demo"
    expected = [a.id for a in demo.book.accounts_of(USER)]
    assert [s["broker_account_id"] for s in account["subaccounts"]] == expected
    (row,) = account_rows(sessions)
    assert row.broker_user_id == demo.user_ids[USER] and row.credentials_encrypted is None
    replayed = client.get(f"{callback.path}?{callback.query}")
    assert replayed.status_code == 400  # the state was single-use
    with sessions() as s:
        assert len(s.scalars(select(Subaccount)).all()) == 1


def test_an_oauth_callback_replayed_with_the_cookie_saved_before_it_is_refused(
    client, alice, demo, sessions
):
    # Given a sign-in under way, and the session cookie as it was before the callback
    browser_login(client)
    consent = client.get("/oauth/tradovate/start?environment=demo").headers["Location"]
    saved = client.get_cookie("session").value
    callback = urlsplit(requests.get(consent, allow_redirects=False, timeout=5).headers["Location"])
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302

    # When someone sends the same callback again with the saved cookie (state still in it)
    client.set_cookie("session", saved)
    replayed = client.get(f"{callback.path}?{callback.query}")

    # Then the state has been used: refused, and still one account
    assert replayed.status_code == 400
    assert replayed.get_json()["error"] == "The sign-in link is stale or not yours; start again."
    assert len(account_rows(sessions)) == 1
