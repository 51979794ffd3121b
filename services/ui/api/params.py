"""Query-string parameters read with the same plain-sentence 422 as request bodies."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import overload

from flask import request

from services.ui.errors import ValidationFailed


@overload
def int_arg(name: str, default: int, low: int = 1, high: int = 2**31 - 1) -> int: ...
@overload
def int_arg(name: str, default: None = None, low: int = 1, high: int = 2**31 - 1) -> int | None: ...
def int_arg(
    name: str, default: int | None = None, low: int = 1, high: int = 2**31 - 1
) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        limit = f"between {low} and {high}" if high < 2**31 - 1 else f"of at least {low}"
        raise ValidationFailed(f"{name} must be a whole number {limit}.")
    return value


def choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name, "").strip().lower()
    if not raw:
        return None
    if raw not in choices:
        raise ValidationFailed(f"{name} must be one of {', '.join(choices)}.")
    return raw


# Dates the pages can ask about: wide enough for any trade, narrow enough that the day after
# the last one (a range's end) is still a date.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)


def _within_years(name: str, day: date, example: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed(
            f"{name} must be {example} between {FIRST_DAY:%Y} and {LAST_DAY:%Y}."
        )
    return day


def date_arg(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be a date like 2026-11-24.") from None
    return _within_years(name, day, "a date")


def month_arg(name: str, default: date) -> date:
    """A `YYYY-MM` month, as the date of its first day."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return default.replace(day=1)
    try:
        month = datetime.strptime(raw, "%Y-%m").date()
    except ValueError:
        raise ValidationFailed(f"{name} must be a month like 2026-11.") from None
    return _within_years(name, month, "a month")


def day_range(
    start: date | None, end: date | None, zone: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """Inclusive dates of `zone` → [start 00:00, the day after end 00:00) local time, in UTC.

    A local day is 23 or 25 hours long across a daylight-saving change; zoneinfo knows which.
    """
    if start and end and start > end:
        raise ValidationFailed("from must be on or before to.")
    low = local_midnight(start, zone) if start else None
    high = local_midnight(end + timedelta(days=1), zone) if end else None
    return low, high


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The instant `day` starts in `zone`, as a UTC datetime."""
    return datetime.combine(day, time(), zone).astimezone(UTC)
