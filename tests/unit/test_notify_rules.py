"""The pure parts of notifications: which events a user hears of, the address rule, the daily
summary's dates and drawdown."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from libs.common import events
from libs.common.notify import rules
from libs.common.notify.targets import TargetRefused, check_host, forbidden_address, read_target
from services.notifier.summary import last_closed_trade_date, worst_drawdown


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("fd00::1", "private"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_the_address_rule(address, why):
    assert forbidden_address(address) == why


def test_a_host_is_refused_if_any_of_its_addresses_is_private_unless_allowed():
    def resolver(host):
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(TargetRefused, match="private address"):
        check_host("hooks.example.com", (), resolver)
    check_host("hooks.example.com", ("hooks.example.com",), resolver)  # allowed: no error


def test_a_discord_target_keeps_only_the_id_and_token_and_masks_them():
    token = "abcdefghijklmnopqrstuvwxyz0123456789_-AB"
    target = read_target("discord", f"https://discord.com/api/webhooks/1234567890123/{token}", ())
    assert target.value == {"id": "1234567890123", "token": token}
    assert token not in target.masked and target.masked == "Discord webhook …0123"


def test_user_events_become_notices_for_their_owner():
    fill = rules.notice_for(events.ORDER_FILLED, {"user_id": 4, "fill_price": 1})
    assert fill == rules.Notice(
        4, "fill", {"source": "order.filled", "user_id": 4, "fill_price": 1}
    )
    lockout = rules.notice_for(events.ACCOUNT_ALERT, {"user_id": 4, "message": "HTTP 429"})
    penalty = rules.notice_for(events.ACCOUNT_ALERT, {"user_id": 4, "message": "captcha"})
    assert (lockout.event, penalty.event) == ("broker_lockout", "broker_penalty")
    # a difference still within its grace period, a position mark: nobody is told
    assert rules.notice_for(events.ACCOUNT_MISMATCH, {"user_id": 4, "mismatches": []}) is None
    assert rules.notice_for(events.POSITION_MARKED, {"user_id": 4}) is None


def test_the_feed_is_told_once_when_it_goes_down_or_delayed():
    ok = {"ok": True, "connected": True, "delayed_symbols": []}
    delayed = {**ok, "delayed_symbols": ["MNQ"]}
    down = {**delayed, "ok": False, "connected": False}
    assert rules.feed_notices(ok, ok) == []
    assert [n.event for n in rules.feed_notices(ok, delayed)] == ["feed_delayed"]
    assert rules.feed_notices(delayed, delayed) == []
    assert [n.event for n in rules.feed_notices(delayed, down)] == ["feed_down"]
    assert rules.feed_notices(down, down) == []
    assert all(n.user_id is None for n in rules.feed_notices(None, down))


def test_a_stopped_tradingview_sign_in_is_told_once_with_what_to_do():
    delayed = {"ok": True, "connected": True, "delayed_symbols": ["MNQ"], "signin_failed": None}
    captcha = {**delayed, "signin_failed": "TradingView asked for a captcha. Paste cookies."}
    refused = {**delayed, "signin_failed": "TradingView refused the authenticator code."}
    assert [n.event for n in rules.feed_notices(delayed, captcha)] == ["feed_signin_failed"]
    assert rules.feed_notices(captcha, captcha) == []  # the same reason: already told
    assert [n.event for n in rules.feed_notices(captcha, refused)] == ["feed_signin_failed"]
    assert rules.feed_notices(captcha, delayed) == []  # renewals resumed: nothing to do
    [notice] = rules.feed_notices(delayed, captcha)
    text = rules.message_text(notice.event, notice.data)
    assert "captcha" in text and "Paste cookies" in text and notice.user_id is None


@pytest.mark.parametrize(
    ("now", "day"),
    [
        (datetime(2026, 12, 3, 21, 59, tzinfo=UTC), date(2026, 12, 2)),  # Thu 16:59 New York
        (datetime(2026, 12, 3, 22, 0, tzinfo=UTC), date(2026, 12, 3)),  # Thu 17:00
        (datetime(2026, 12, 6, 15, 0, tzinfo=UTC), date(2026, 12, 4)),  # Sunday: Friday's
        (datetime(2026, 7, 1, 21, 0, tzinfo=UTC), date(2026, 7, 1)),  # summer time: 17:00 EDT
    ],
)
def test_the_summary_is_of_the_last_closed_trade_date(now, day):
    assert last_closed_trade_date(now) == day


def test_worst_drawdown_is_measured_on_cumulative_pnl_from_zero():
    assert worst_drawdown([Decimal(100), Decimal(-150), Decimal(30), Decimal(-40)]) == -160
    assert worst_drawdown([Decimal(-20)]) == -20
    assert worst_drawdown([]) == 0


def test_every_message_is_one_sentence_in_words():
    for event in (*rules.EVENTS, rules.TEST):
        assert rules.message_text(event, {}) and not rules.message_text(event, {}).startswith("{")
