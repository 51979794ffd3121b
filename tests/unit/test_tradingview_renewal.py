"""When the feed may sign in to TradingView again, and which authenticator keys are accepted."""

from __future__ import annotations

import pytest

from libs.common.authenticator import BadSecret, current_code, normalize_secret
from services.price_feed.tradingview.renewal import HOUR_S, RenewalSchedule


def test_at_most_four_attempts_in_any_hour_even_when_each_succeeds():
    schedule = RenewalSchedule()
    for at in (0, 10, 20, 30):
        assert schedule.allows(at)
        schedule.attempted(at)
        schedule.succeeded()
    assert not schedule.allows(40)
    assert schedule.next_allowed(40) == HOUR_S  # an hour after the first of the four
    assert schedule.allows(HOUR_S)


def test_failures_worth_retrying_wait_longer_each_time_up_to_an_hour():
    schedule = RenewalSchedule(per_hour=100)
    waits = []
    now = 0.0
    for _ in range(6):
        schedule.attempted(now)
        schedule.failed(now)
        waits.append(schedule.next_allowed(now) - now)
        now = schedule.next_allowed(now)
    assert waits == [300, 600, 1200, 2400, 3600, 3600]
    schedule.succeeded()
    assert schedule.allows(now)


def test_a_rate_limit_waits_an_hour_and_new_credentials_may_try_at_once_within_the_cap():
    schedule = RenewalSchedule()
    schedule.attempted(0)
    schedule.failed(0, rate_limited=True)
    assert schedule.next_allowed(1) == HOUR_S
    schedule.fresh_credentials()
    assert schedule.allows(1)
    for at in (1, 2, 3):
        schedule.attempted(at)
    assert not schedule.allows(4)  # the cap still counts the earlier attempts


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("jbsw y3dp ehpk 3pxp", "JBSWY3DPEHPK3PXP"),
        ("JBSW-Y3DP-EHPK-3PXP-KRUG", "JBSWY3DPEHPK3PXPKRUG"),
        ("JBSWY3DPEHPK3PXP====", "JBSWY3DPEHPK3PXP"),
    ],
)
def test_keys_as_apps_show_them_are_accepted_in_the_form_codes_are_computed_from(text, key):
    assert normalize_secret(text) == key
    assert len(current_code(key)) == 6 and current_code(key).isdigit()


@pytest.mark.parametrize(
    "text", ["", "   ", "JBSWY3DP", "JBSWY3DPEHPK3PX0", "not a key at all!", "123456"]
)
def test_what_is_not_an_authenticator_key_is_refused_without_repeating_it(text):
    with pytest.raises(BadSecret) as refused:
        normalize_secret(text)
    assert str(refused.value).startswith("totp_secret")
    assert not text.strip() or text not in str(refused.value)


def test_codes_follow_rfc_6238_with_30_second_steps():
    # RFC 6238 appendix B's SHA-1 key ("12345678901234567890") in base32, 6 digits
    key = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert current_code(key, 59) == "287082"
    assert current_code(key, 1111111109) == "081804"
    assert current_code(key, 1111111109) != current_code(key, 1111111109 + 30)
