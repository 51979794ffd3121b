"""The exchange business-day calendar and CME trade dates (docs/outside/futures.md §4)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.futures.exchange_calendar import (
    HOLIDAYS,
    add_business_days,
    is_business_day,
    last_business_day_of_month,
    nth_weekday,
    rule_holidays,
    trade_date,
)

ET = ZoneInfo("America/New_York")


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=ET)


# -- holidays -----------------------------------------------------------------------------------

# §4.3, as written there (observed dates).
REFERENCE_HOLIDAYS = {
    2026: "Jan 1, Jan 19, Feb 16, Apr 3, May 25, Jun 19, Jul 3, Sep 7, Nov 26, Dec 25",
    2027: "Jan 1, Jan 18, Feb 15, Mar 26, May 31, Jun 18, Jul 5, Sep 6, Nov 25, Dec 24",
}


@pytest.mark.parametrize(("year", "listed"), REFERENCE_HOLIDAYS.items())
def test_holiday_table_matches_the_reference_list(year, listed):
    expected = [datetime.strptime(f"{d} {year}", "%b %d %Y").date() for d in listed.split(", ")]
    assert sorted(HOLIDAYS[year]) == expected


@pytest.mark.parametrize("year", [2025, 2026, 2027])
def test_holiday_table_agrees_with_the_holiday_rules(year):
    assert HOLIDAYS[year] == rule_holidays(year)


def test_holiday_table_leaves_out_the_2025_day_of_mourning_partial_closure():
    assert is_business_day(date(2025, 1, 9))


def test_saturday_new_year_is_not_observed_in_the_old_year():
    assert date(2027, 12, 31) not in rule_holidays(2028)
    assert is_business_day(date(2027, 12, 31))


def test_years_missing_from_the_table_fall_back_to_the_rules():
    assert not is_business_day(date(2028, 4, 14))  # Good Friday 2028
    assert not is_business_day(date(2028, 6, 19))  # Juneteenth 2028, a Monday


def test_juneteenth_is_not_a_holiday_before_2022():
    assert date(2021, 6, 18) not in rule_holidays(2021)


# -- business days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 3, 11), True),
        (date(2026, 3, 14), False),  # Saturday
        (date(2026, 3, 15), False),  # Sunday
        (date(2026, 1, 19), False),  # MLK
        (date(2026, 11, 27), True),  # day after Thanksgiving: an early close, still a trade date
        (date(2027, 6, 18), False),  # Juneteenth observed
    ],
)
def test_business_days_are_weekdays_that_are_not_holidays(day, expected):
    assert is_business_day(day) is expected


def test_adding_business_days_skips_weekends_and_holidays():
    assert add_business_days(date(2026, 1, 16), 1) == date(2026, 1, 20)  # Fri → Tue over MLK
    assert add_business_days(date(2026, 1, 20), -1) == date(2026, 1, 16)
    assert add_business_days(date(2026, 12, 31), -7) == date(2026, 12, 21)  # over Christmas


def test_adding_zero_business_days_returns_the_same_date():
    assert add_business_days(date(2026, 3, 14), 0) == date(2026, 3, 14)


def test_one_business_day_from_a_weekend_is_the_neighbouring_business_day():
    assert add_business_days(date(2026, 3, 14), 1) == date(2026, 3, 16)
    assert add_business_days(date(2026, 3, 14), -1) == date(2026, 3, 13)


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2026, 1, date(2026, 1, 30)),  # the 31st is a Saturday
        (2026, 5, date(2026, 5, 29)),
        (2026, 11, date(2026, 11, 30)),
        (2027, 12, date(2027, 12, 31)),
        (2025, 12, date(2025, 12, 31)),
    ],
)
def test_last_business_day_of_month_steps_back_over_weekends(year, month, expected):
    assert last_business_day_of_month(year, month) == expected


def test_nth_weekday_counts_from_the_start_or_from_the_end():
    assert nth_weekday(2026, 6, 4, 3) == date(2026, 6, 19)  # 3rd Friday
    assert nth_weekday(2026, 12, 2, 3) == date(2026, 12, 16)  # 3rd Wednesday
    assert nth_weekday(2026, 5, 0, -1) == date(2026, 5, 25)  # last Monday
    assert nth_weekday(2026, 3, 6, 1) == date(2026, 3, 1)  # the 1st is a Sunday


def test_nth_weekday_refuses_a_weekday_the_month_does_not_have():
    with pytest.raises(ValueError):
        nth_weekday(2026, 2, 4, 5)  # February 2026 has four Fridays
    with pytest.raises(ValueError):
        nth_weekday(2026, 2, 4, 0)


# -- trade dates --------------------------------------------------------------------------------


def test_evening_signal_belongs_to_the_next_trade_date():
    assert trade_date(et(2026, 3, 11, 19, 0)) == date(2026, 3, 12)
    assert trade_date(datetime(2026, 3, 11, 23, 0, tzinfo=UTC)) == date(2026, 3, 12)


def test_daytime_signal_belongs_to_its_own_date():
    assert trade_date(et(2026, 3, 11, 16, 59, 59)) == date(2026, 3, 11)
    assert trade_date(datetime(2026, 3, 11, 20, 59, tzinfo=UTC)) == date(2026, 3, 11)


def test_the_five_pm_close_starts_the_next_trade_date():
    assert trade_date(et(2026, 3, 11, 17, 0)) == date(2026, 3, 12)


def test_abbreviated_holiday_trading_counts_on_the_next_trade_date():
    assert trade_date(et(2026, 1, 19, 10, 0)) == date(2026, 1, 20)  # MLK morning
    assert trade_date(et(2026, 1, 18, 18, 30)) == date(2026, 1, 20)  # Sunday open before MLK
    assert trade_date(et(2026, 11, 25, 19, 0)) == date(2026, 11, 27)  # evening before Thanksgiving


def test_weekend_and_friday_evening_roll_to_monday():
    assert trade_date(et(2026, 3, 13, 17, 30)) == date(2026, 3, 16)
    assert trade_date(et(2026, 3, 14, 12, 0)) == date(2026, 3, 16)
    assert trade_date(et(2026, 3, 15, 18, 0)) == date(2026, 3, 16)


def test_christmas_closure_rolls_to_the_next_business_day():
    assert trade_date(et(2026, 12, 24, 18, 0)) == date(2026, 12, 28)


def test_trade_date_follows_daylight_saving_time():
    # 22:00 UTC is 6:00 pm EDT in September (the MCL1! switch observation, §5.1) ...
    assert trade_date(datetime(2026, 9, 17, 22, 0, tzinfo=UTC)) == date(2026, 9, 18)
    # ... but 5:00 pm EST in January, also past the close.
    assert trade_date(datetime(2026, 1, 14, 21, 59, tzinfo=UTC)) == date(2026, 1, 14)
    assert trade_date(datetime(2026, 1, 14, 22, 0, tzinfo=UTC)) == date(2026, 1, 15)


def test_trade_date_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="timezone-aware"):
        trade_date(datetime(2026, 3, 11, 19, 0))


# -- properties ---------------------------------------------------------------------------------

days = st.dates(min_value=date(2024, 1, 1), max_value=date(2029, 12, 31))
business_days = days.filter(is_business_day)
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(UTC)
)


@given(d=business_days, n=st.integers(min_value=-400, max_value=400))
def test_adding_then_subtracting_business_days_returns_to_the_same_day(d, n):
    assert add_business_days(add_business_days(d, n), -n) == d


@given(d=days, n=st.integers(min_value=-400, max_value=400).filter(bool))
def test_adding_business_days_lands_on_a_business_day_in_the_right_direction(d, n):
    result = add_business_days(d, n)
    assert is_business_day(result)
    assert (result > d) if n > 0 else (result < d)


@given(at=instants)
def test_trade_date_is_a_business_day_no_earlier_than_the_new_york_date(at):
    day = trade_date(at)
    local = at.astimezone(ET).date()
    assert is_business_day(day)
    assert local <= day <= local + timedelta(days=5)


@given(at=instants)
def test_trade_date_never_goes_backwards(at):
    assert trade_date(at) <= trade_date(at + timedelta(minutes=30))
