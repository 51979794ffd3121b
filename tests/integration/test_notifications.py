"""Notifications (§4e) end to end: destinations made through the API, events published on
`jt:events` as the engine, executor and feed publish them, the notifier's relay and worker, and
real local servers on the other side (Discord's and Telegram's APIs, a webhook receiver, SMTP)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rq.job import Job, JobStatus
from sqlalchemy import text

from libs.common import events
from libs.common.notify import delivery, rules
from libs.common.storage import db
from libs.common.storage.models import Position, Recorder
from services.notifier.summary import send_daily_summaries
from simulators.notify_receivers import NotifyReceiver
from tests.integration.notify_support import (
    BOT_TOKEN,
    CHAT_ID,
    DISCORD_URL,
    Notifier,
    self_signed,
)

ORDER = {
    "id": "5f0c6b8e-0000-4000-8000-000000000001",
    "trader_id": 3,
    "subaccount_id": 7,
    "source": "signal",
    "signal_id": None,
    "parent_id": None,
    "kind": "entry",
    "symbol": "MNQ",
    "contract": "MNQZ6",
    "side": "buy",
    "quantity": 2,
    "order_type": "market",
    "tp_price": None,
    "sl_price": None,
    "broker_order_id": "991",
    "attempts": 1,
    "cl_ord_id": "jt-5f0c6b8e",
    "created_at": "2026-12-03T15:00:00Z",
    "sent_at": "2026-12-03T15:00:00Z",
    "finished_at": "2026-12-03T15:00:01Z",
}


def user_events(user_id: int) -> list[tuple[str, dict]]:
    """One `jt:events` entry per user-owned notification event, shaped as its producer sends it."""
    return [
        (
            events.ORDER_FILLED,
            {**ORDER, "user_id": user_id, "status": "filled", "fill_price": 25640.25,
             "error": None},
        ),
        (
            events.ORDER_REJECTED,
            {**ORDER, "user_id": user_id, "status": "rejected", "fill_price": None,
             "error": "Insufficient margin"},
        ),
        (
            events.ACCOUNT_LOCKED,
            {"user_id": user_id, "subaccount_id": 7, "name": "DEMO123", "rule": "daily_loss_limit",
             "reason": "daily loss -$510.00 reached the limit $500.00",
             "locked_until": "2026-12-04", "flattened": True},
        ),
        (
            events.ACCOUNT_RISK_STATUS,
            {"user_id": user_id, "account_id": 1, "subaccount_id": 7, "name": "DEMO123",
             "risk_status": "LiquidateOnly", "previous": "Active"},
        ),
        (
            events.ACCOUNT_ALERT,
            {"user_id": user_id, "broker_user": "tradovate:demo:42",
             "message": "Tradovate answered HTTP 429: pause all traffic for this user"},
        ),
        (
            events.ACCOUNT_ALERT,
            {"user_id": user_id, "broker_user": "tradovate:demo:42",
             "message": "Tradovate asked for a captcha (p-ticket): pausing for an hour"},
        ),
        (
            events.ACCOUNT_MISMATCH,
            {"user_id": user_id, "account_id": 1, "checked_at": "2026-12-03T15:00:00Z",
             "mismatches": [{"subaccount_id": 7, "symbol": "MNQZ6", "expected": 2, "actual": 0,
                             "since": "2026-12-03T14:58:00Z"}],
             "pending": []},
        ),
    ]  # fmt: skip


FEED_OK = {"ok": True, "source": "tradingview", "connected": True, "delayed_symbols": []}
FEED_DELAYED = {**FEED_OK, "delayed_symbols": ["MNQ"]}
FEED_DOWN = {**FEED_DELAYED, "ok": False, "connected": False, "error": "socket closed"}
FEED_SIGNIN_FAILED = {
    **FEED_DOWN,
    "signin_failed": "TradingView asked for a captcha, which only a person can solve.",
}


def add_destination(client, headers, kind, target, events_=None):
    answer = client.post(
        "/api/notifications",
        json={"kind": kind, "target": target, "events": events_ or list(rules.EVENTS)},
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def closed_position(sessions, recorder: Recorder, pnl: str, closed_at: datetime) -> None:
    with db.transaction(sessions) as s:
        s.add(
            Position(
                recorder_id=recorder.id, symbol="MNQ", side="long", quantity=Decimal(1),
                avg_entry_price=Decimal(25000), entry_cost=Decimal(25000), status="closed",
                realized_pnl=Decimal(pnl), opened_at=closed_at, opened_ms=0, closed_at=closed_at,
            )
        )  # fmt: skip


def signed_by(secret: str, received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-Justtrades-Signature"], expected)


def test_every_event_reaches_every_kind_of_destination(
    nclient, alice, outside, notifier, sessions, make_recorder, notify_settings, redis_client
):
    # Given alice with a webhook, a Discord webhook, a Telegram bot and an e-mail address, each
    # asking for every event, and a recorder that closed three trades in the session of Dec 3
    hook = add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/hooks/jt")
    add_destination(nclient, alice[1], "discord", DISCORD_URL)
    add_destination(nclient, alice[1], "telegram", {"bot_token": BOT_TOKEN, "chat_id": CHAT_ID})
    add_destination(nclient, alice[1], "email", {"to": "alice@example.com"})
    recorder = make_recorder(user=alice[0], name="MNQ trend")
    for pnl, minute in (("120.50", 0), ("-200", 5), ("30", 10)):
        closed_position(sessions, recorder, pnl, datetime(2026, 12, 3, 15, minute, tzinfo=UTC))

    # When the platform publishes each event, the feed goes delayed then down, its TradingView
    # sign-in is stopped by a captcha, and the session closes
    for event_type, data in user_events(alice[0].id):
        notifier.publish(event_type, data)
    notifier.publish(events.PRICE_STATUS, FEED_OK)
    notifier.publish(events.PRICE_STATUS, FEED_DELAYED)
    notifier.publish(events.PRICE_STATUS, FEED_DOWN)
    notifier.publish(events.PRICE_STATUS, FEED_SIGNIN_FAILED)
    notifier()
    after_close = datetime(2026, 12, 3, 22, 1, tzinfo=UTC)  # 17:01 New York
    send_daily_summaries(notify_settings, sessions, redis_client, notifier.rq, after_close)
    notifier()

    # Then the webhook received each event once, as signed JSON {type, data, sent_at}
    bodies = [r.json() for r in outside.webhook.received]
    assert sorted(b["type"] for b in bodies) == sorted(rules.EVENTS)
    assert all(signed_by(hook["secret"], r) for r in outside.webhook.received)
    assert all(set(b) == {"type", "data", "sent_at"} for b in bodies)
    summary = next(b["data"] for b in bodies if b["type"] == "daily_summary")
    assert summary["trade_date"] == "2026-12-03" and summary["trades"] == 3
    assert summary["pnl"] == -49.5
    assert summary["recorders"] == [
        {"name": "MNQ trend", "pnl": -49.5, "trades": 3, "worst_drawdown": -200.0}
    ]
    # And Discord, Telegram and the mailbox each got one message per event, in words
    discord = [r.json()["content"] for r in outside.discord.received]
    telegram = [r.json() for r in outside.telegram.received]
    mails = outside.mailbox.messages
    for event in rules.EVENTS:
        title = rules.title(event)
        assert sum(title in c for c in discord) == 1, event
        assert sum(title in t["text"] for t in telegram) == 1, event
        assert sum(m["Subject"] == title for m in mails) == 1, event
    assert all(t["chat_id"] == CHAT_ID for t in telegram)
    assert all(r.path.endswith(f"/bot{BOT_TOKEN}/sendMessage") for r in outside.telegram.received)
    assert any("Filled: buy 2 MNQZ6 at 25640.25" in c for c in discord)
    assert any("Insufficient margin" in t["text"] for t in telegram)
    assert any("MNQ trend: -$49.50, 3 trades, worst drawdown -$200.00" in m.get_payload()
               for m in mails)  # fmt: skip
    assert all(m["To"] == "alice@example.com" for m in mails)
    # And the list shows each destination's last delivery as delivered
    listed = nclient.get("/api/notifications", headers=alice[1]).get_json()["destinations"]
    assert [d["last_delivery"]["ok"] for d in listed] == [True] * 4
    assert all(d["deliveries_ok"] == len(rules.EVENTS) for d in listed)


def test_an_event_reaches_only_its_owner_and_only_destinations_that_asked(
    nclient, alice, bob, outside, notifier
):
    add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/alice", ["rejection"])
    add_destination(nclient, bob[1], "webhook", outside.webhook.url + "/bob", ["fill"])
    fill, rejection = user_events(alice[0].id)[:2]
    notifier.publish(*fill)
    notifier.publish(*rejection)
    notifier()
    assert [(r.path, r.json()["type"]) for r in outside.webhook.received] == [
        ("/alice", "rejection")
    ]


def test_an_event_a_dead_notifier_took_is_told_by_the_next(
    nclient, alice, outside, notifier, redis_client
):
    # Given a notifier that read a fill from jt:events and died before acknowledging it
    add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/x", ["fill"])
    notifier.publish(*user_events(alice[0].id)[0])
    taken = redis_client.xreadgroup("notifier", "dead-one", {"jt:events": ">"}, count=10)
    assert taken and outside.webhook.received == []
    # When a live notifier claims what was left (here at once, not after a minute)
    notifier.relay.claim_idle_ms = 0
    notifier()
    # Then the fill is told, once
    assert [r.json()["type"] for r in outside.webhook.received] == ["fill"]
    assert redis_client.xpending("jt:events", "notifier")["pending"] == 0


def test_a_failing_webhook_is_retried_then_given_up_with_the_error_shown(
    nclient, alice, outside, notifier
):
    # Given a webhook that answers 500 to everything
    made = add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/down", ["fill"])
    outside.webhook.fail_next(100)
    # When a fill is told
    notifier.publish(*user_events(alice[0].id)[0])
    notifier()
    # Then it was tried four times (once and three retries), all with the same notice
    assert len(outside.webhook.received) == 4
    assert len({json.loads(r.body)["data"]["id"] for r in outside.webhook.received}) == 1
    # And the list shows the destination failing, with the error and that it gave up
    listed = nclient.get("/api/notifications", headers=alice[1]).get_json()["destinations"]
    last = next(d for d in listed if d["id"] == made["id"])["last_delivery"]
    assert last["ok"] is False and last["event"] == "fill"
    assert "HTTP 500" in last["error"] and "gave up after 4 tries" in last["error"]


def test_a_webhook_that_recovers_on_a_retry_is_delivered(nclient, alice, outside, notifier):
    made = add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/flaky", ["fill"])
    outside.webhook.fail_next(2)
    notifier.publish(*user_events(alice[0].id)[0])
    notifier()
    assert len(outside.webhook.received) == 3
    listed = nclient.get("/api/notifications", headers=alice[1]).get_json()["destinations"]
    dest = next(d for d in listed if d["id"] == made["id"])
    assert dest["last_delivery"]["ok"] is True and dest["last_delivery"]["error"] is None
    assert (dest["deliveries_ok"], dest["deliveries_failed"]) == (1, 2)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.0.0.5/hook",
        "https://192.168.1.20/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://224.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::ffff:127.0.0.1]/hook",
    ],
)
def test_a_webhook_on_a_private_address_is_refused(client, alice, url):
    answer = client.post(
        "/api/notifications",
        json={"kind": "webhook", "target": url, "events": ["fill"]},
        headers=alice[1],
    )
    assert answer.status_code == 422
    assert "NOTIFY_ALLOWED_HOSTS" in answer.get_json()["error"]
    assert client.get("/api/notifications", headers=alice[1]).get_json()["destinations"] == []


def test_a_webhook_must_be_https_unless_its_host_is_allowed(client, nclient, alice, outside):
    plain = {"kind": "webhook", "target": "http://hooks.example.com/x", "events": ["fill"]}
    answer = client.post("/api/notifications", json=plain, headers=alice[1])
    assert answer.status_code == 422 and "https://" in answer.get_json()["error"]
    allowed = {**plain, "target": outside.webhook.url + "/x"}
    assert nclient.post("/api/notifications", json=allowed, headers=alice[1]).status_code == 201


def test_an_address_allowed_at_creation_is_checked_again_at_send_time(
    nclient, alice, outside, notifier, sessions, redis_client, notify_settings
):
    # Given a webhook made while its host was allowed
    made = add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/x", ["fill"])
    # When the operator removes the host from NOTIFY_ALLOWED_HOSTS and a fill is told
    strict = Notifier(replace(notify_settings, notify_allowed_hosts=()), sessions, redis_client)
    strict.publish(*user_events(alice[0].id)[0])
    strict()
    # Then nothing reached the private address, and the destination says why
    assert outside.webhook.received == []
    listed = nclient.get("/api/notifications", headers=alice[1]).get_json()["destinations"]
    error = next(d for d in listed if d["id"] == made["id"])["last_delivery"]["error"]
    assert "loopback address" in error and "gave up" in error


@pytest.fixture
def https_receiver(tmp_path, monkeypatch):
    """A webhook receiver over TLS with a certificate for localhost, which clients trust."""
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # OpenSSL's trust store for this process
    receiver = NotifyReceiver()
    receiver.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    receiver.ssl_context.load_cert_chain(cert, key)
    with receiver:
        yield receiver


def test_an_https_webhook_is_delivered_with_its_certificate_checked(
    nclient, alice, notifier, https_receiver
):
    # Given an https webhook whose certificate names localhost
    made = add_destination(nclient, alice[1], "webhook", https_receiver.url + "/tls", ["fill"])
    # When a fill is told, it arrives signed over TLS
    notifier.publish(*user_events(alice[0].id)[0])
    notifier()
    [received] = https_receiver.received
    assert received.json()["type"] == "fill" and signed_by(made["secret"], received)
    assert received.headers["Host"] == https_receiver.url.removeprefix("https://")
    # And the same server under a name its certificate does not carry is refused
    port = https_receiver.server_port
    other = add_destination(nclient, alice[1], "webhook", f"https://127.0.0.1:{port}/x", ["fill"])
    answer = nclient.post(f"/api/notifications/{other['id']}/test", headers=alice[1]).get_json()
    assert answer["delivered"] is False
    assert answer["error"] == "the TLS certificate was not accepted"
    assert len(https_receiver.received) == 1


def test_the_test_button_delivers_and_shows_the_result(nclient, alice, outside):
    made = add_destination(
        nclient, alice[1], "telegram", {"bot_token": BOT_TOKEN, "chat_id": CHAT_ID}, ["fill"]
    )
    answer = nclient.post(f"/api/notifications/{made['id']}/test", headers=alice[1])
    assert answer.status_code == 200
    assert answer.get_json()["delivered"] is True
    assert [r.json()["text"] for r in outside.telegram.received] == [
        f"{rules.title('test')}\n{rules.message_text('test', {})}"
    ]
    listed = nclient.get("/api/notifications", headers=alice[1]).get_json()["destinations"]
    assert listed[0]["last_delivery"]["event"] == "test" and listed[0]["last_delivery"]["ok"]


def test_the_test_button_shows_why_a_destination_fails(nclient, alice, outside):
    made = add_destination(nclient, alice[1], "discord", DISCORD_URL, ["fill"])
    outside.discord.fail_next(1)
    answer = nclient.post(f"/api/notifications/{made['id']}/test", headers=alice[1]).get_json()
    assert answer["delivered"] is False and answer["error"] == "HTTP 500"
    assert answer["last_delivery"]["ok"] is False


def test_secrets_never_appear_in_answers_logs_or_the_database(
    nclient, alice, outside, notifier, sessions, caplog
):
    caplog.set_level(logging.DEBUG)
    hook = add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/s/x?k=v")
    discord = add_destination(nclient, alice[1], "discord", DISCORD_URL)
    telegram = add_destination(
        nclient, alice[1], "telegram", {"bot_token": BOT_TOKEN, "chat_id": CHAT_ID}
    )
    outside.telegram.fail_next(100)  # failures too, with their errors recorded
    notifier.publish(*user_events(alice[0].id)[0])
    notifier()
    for made in (hook, discord, telegram):
        nclient.post(f"/api/notifications/{made['id']}/test", headers=alice[1])
    listed = nclient.get("/api/notifications", headers=alice[1]).get_data(as_text=True)
    token = DISCORD_URL.rsplit("/", 1)[1]
    secrets_ = (hook["secret"], token, BOT_TOKEN, BOT_TOKEN.split(":")[1])
    answers = json.dumps([discord, telegram]) + listed
    assert not any(s in answers for s in secrets_)
    assert "secret" not in json.loads(listed)["destinations"][0]
    assert discord["target"] == "Discord webhook …5678"
    assert telegram["target"] == f"bot …{BOT_TOKEN[-4:]} → chat {CHAT_ID}"
    assert not any(s in caplog.text for s in secrets_)
    with sessions() as s:
        stored = json.dumps([list(r) for r in s.execute(text(
            "SELECT * FROM notification_destinations"))], default=str)  # fmt: skip
    assert not any(s in stored for s in secrets_)


def test_destinations_can_be_paused_changed_and_removed(nclient, alice, bob, outside, notifier):
    made = add_destination(nclient, alice[1], "webhook", outside.webhook.url + "/x", ["fill"])
    path = f"/api/notifications/{made['id']}"
    assert nclient.put(path, json={"enabled": False}, headers=bob[1]).status_code == 404
    paused = nclient.put(path, json={"enabled": False}, headers=alice[1]).get_json()
    assert paused["enabled"] is False
    notifier.publish(*user_events(alice[0].id)[0])
    notifier()
    assert outside.webhook.received == []
    changed = nclient.put(path, json={"enabled": True, "events": ["rejection"]}, headers=alice[1])
    assert changed.get_json()["events"] == ["rejection"]
    assert nclient.put(path, json={"events": ["fills"]}, headers=alice[1]).status_code == 422
    assert nclient.delete(path, headers=bob[1]).status_code == 404
    assert nclient.delete(path, headers=alice[1]).status_code == 200
    assert nclient.get("/api/notifications", headers=alice[1]).get_json()["destinations"] == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kind": "sms", "target": "x", "events": ["fill"]}, "kind must be"),
        ({"kind": "discord", "target": "https://example.com/x", "events": ["fill"]}, "Discord"),
        ({"kind": "telegram", "target": {"bot_token": "x"}, "events": ["fill"]}, "bot_token"),
        ({"kind": "email", "target": {"to": "not an address"}, "events": ["fill"]}, "e-mail"),
        ({"kind": "email", "target": {"to": "a@b.co"}, "events": []}, "events must be"),
    ],
)
def test_a_destination_needs_a_target_of_its_kind(client, alice, body, words):
    answer = client.post("/api/notifications", json=body, headers=alice[1])
    assert answer.status_code == 422 and words in answer.get_json()["error"]


def test_a_job_naming_another_function_is_refused(notify_settings, notifier, outside):
    queue = delivery.notify_queue(notifier.rq, notify_settings.stream_prefix)
    job = queue.enqueue("os.getcwd")
    notifier()
    refused = Job.fetch(job.id, connection=notifier.rq, serializer=delivery.JSONSerializer)
    assert refused.get_status() == JobStatus.FAILED
    assert "RefusedJob" in (refused.latest_result().exc_string or "")


def test_the_daily_summary_is_sent_once_per_session_close(
    nclient, alice, outside, notifier, sessions, notify_settings, redis_client
):
    add_destination(nclient, alice[1], "email", {"to": "alice@example.com"}, ["daily_summary"])
    before_close = datetime(2026, 12, 3, 21, 59, tzinfo=UTC)  # 16:59 New York: Wednesday's
    after_close = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)
    sent = [
        send_daily_summaries(notify_settings, sessions, redis_client, notifier.rq, at)
        for at in (before_close, before_close, after_close, after_close)
    ]
    notifier()
    assert sent == [1, 0, 1, 0]  # a second notifier (or a second look) sends nothing more
    dates = [m.get_payload().split(":")[0] for m in outside.mailbox.messages]
    assert dates == ["Daily summary for 2026-12-02", "Daily summary for 2026-12-03"]
    assert "$0.00, 0 trades" in outside.mailbox.messages[0].get_payload()
