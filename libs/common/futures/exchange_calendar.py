"""The US exchange business-day calendar and CME trade dates (docs/outside/futures.md §4), no
clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

# Globex closes the trade date at 5:00 pm ET and reopens at 6:00 pm ET for the next one (§4.2).
SESSION_CLOSE_ET = time(17, 0)

# Exchange holidays by year, on their observed dates (§4.3). Editable data: the exchange publishes
# the authoritative list yearly, so add a year or an ad-hoc closure here, not in code. A year that
# is missing falls back to `rule_holidays` (the same rules, computed).
#
# Left out on purpose: the National Day of Mourning, Thu 2025-01-09. It was a partial closure
# (equity index halted 9:30 am ET, interest rates 1:15 pm ET, energy/metals/FX traded normally) that
# still settled as a trade date, and no expiry or roll date in §2.2/§5.2 falls near it.
HOLIDAYS: dict[int, frozenset[date]] = {
    2025: frozenset(
        {
            date(2025, 1, 1),  # New Year's Day
            date(2025, 1, 20),  # Martin Luther King Jr. Day
            date(2025, 2, 17),  # Presidents' Day
            date(2025, 4, 18),  # Good Friday
            date(2025, 5, 26),  # Memorial Day
            date(2025, 6, 19),  # Juneteenth
            date(2025, 7, 4),  # Independence Day
            date(2025, 9, 1),  # Labor Day
            date(2025, 11, 27),  # Thanksgiving
            date(2025, 12, 25),  # Christmas
        }
    ),
    2026: frozenset(
        {
            date(2026, 1, 1),
            date(2026, 1, 19),
            date(2026, 2, 16),
            date(2026, 4, 3),
            date(2026, 5, 25),
            date(2026, 6, 19),
            date(2026, 7, 3),  # Independence Day (Sat) observed Friday
            date(2026, 9, 7),
            date(2026, 11, 26),
            date(2026, 12, 25),
        }
    ),
    2027: frozenset(
        {
            date(2027, 1, 1),
            date(2027, 1, 18),
            date(2027, 2, 15),
            date(2027, 3, 26),
            date(2027, 5, 31),
            date(2027, 6, 18),  # Juneteenth (Sat) observed Friday
            date(2027, 7, 5),  # Independence Day (Sun) observed Monday
            date(2027, 9, 6),
            date(2027, 11, 25),
            date(2027, 12, 24),  # Christmas (Sat) observed Friday
        }
    ),
}


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th `weekday` (Monday = 0) of the month; n = -1 is the last one."""
    if n == 0 or not 0 <= weekday <= 6:
        raise ValueError(f"no {n}th weekday {weekday}")
    if n > 0:
        first = date(year, month, 1)
        day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    else:
        last = _last_day_of_month(year, month)
        day = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-n - 1))
    if day.month != month:
        raise ValueError(f"{year}-{month:02d} has no {n}th weekday {weekday}")
    return day


def _last_day_of_month(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date(year, month + 1, 1) - timedelta(days=1)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date:
    # Saturday holidays move to Friday, Sunday holidays to Monday (NYSE / CME practice).
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=64)
def rule_holidays(year: int) -> frozenset[date]:
    """The §4.3 holidays of `year` computed from their rules (the fallback for a missing year)."""
    days = {
        nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        nth_weekday(year, 2, 0, 3),  # Presidents' Day
        _easter(year) - timedelta(days=2),  # Good Friday
        nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(date(year, 7, 4)),
        nth_weekday(year, 9, 0, 1),  # Labor Day
        nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    # A Saturday New Year's Day is not observed on the Friday before (that is in the old year).
    if date(year, 1, 1).weekday() != 5:
        days.add(_observed(date(year, 1, 1)))
    if year >= 2022:  # Juneteenth became an exchange holiday in 2022
        days.add(_observed(date(year, 6, 19)))
    return frozenset(days)


def _holidays(year: int) -> frozenset[date]:
    listed = HOLIDAYS.get(year)
    return listed if listed is not None else rule_holidays(year)


def is_business_day(d: date) -> bool:
    """A weekday that is not an exchange holiday."""
    return d.weekday() < 5 and d not in _holidays(d.year)


def add_business_days(d: date, n: int) -> date:
    """The n-th business day after `d` (before it for negative n); `d` itself is never counted."""
    step = timedelta(days=1 if n > 0 else -1)
    remaining = abs(n)
    while remaining:
        d += step
        if is_business_day(d):
            remaining -= 1
    return d


def business_day_on_or_before(d: date) -> date:
    """`d` if it is a business day, else the business day before it."""
    return d if is_business_day(d) else add_business_days(d, -1)


def last_business_day_of_month(year: int, month: int) -> date:
    return business_day_on_or_before(_last_day_of_month(year, month))


def trade_date(at: datetime) -> date:
    """The CME trade date of an instant (§4.2).

    A trade date runs from the 6:00 pm ET reopen to 5:00 pm ET, so anything from 17:00 ET on
    belongs to the next day; a weekend or a holiday (including an abbreviated one, which has no
    settlement) belongs to the next business day.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"trade_date needs a timezone-aware datetime, got {at!r}")
    local = at.astimezone(NEW_YORK)
    day = local.date()
    if local.time() >= SESSION_CLOSE_ET:
        day += timedelta(days=1)
    while not is_business_day(day):
        day += timedelta(days=1)
    return day
