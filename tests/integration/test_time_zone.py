"""The user's time zone: set with PUT /api/me, it cuts the dashboard's days (the From/To filter
and the calendar) at local midnight, DST included, while the API's timestamps stay UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from libs.common.storage import db
from libs.common.storage.models import Position, User

ZONE_RULE = (
    "time_zone must be an IANA time zone such as America/Chicago, America/New_York or "
    "Europe/London."
)
DASHBOARD = ("trade-history", "metrics", "chart-data", "calendar")


@pytest.fixture
def close_trade(sessions, make_recorder, alice):
    """A closed MNQ trade of Alice's at `closed_at` with `pnl`."""
    recorder = make_recorder(alice[0])

    def close(closed_at: datetime, pnl: str = "10") -> Position:
        with db.transaction(sessions) as s:
            position = Position(
                recorder_id=recorder.id,
                symbol="MNQ",
                side="long",
                quantity=Decimal(1),
                avg_entry_price=Decimal("25640"),
                entry_cost=Decimal("25640"),
                status="closed",
                realized_pnl=Decimal(pnl),
                exit_price=Decimal("25645"),
                exit_reason="signal",
                opened_at=closed_at - timedelta(minutes=5),
                opened_ms=0,
                closed_at=closed_at,
            )
            s.add(position)
        return position

    return close


def _zone_of(client, headers) -> str:
    return client.get("/api/me", headers=headers).get_json()["time_zone"]


def _set_zone(client, headers, zone: str) -> None:
    answer = client.put("/api/me", json={"time_zone": zone}, headers=headers)
    assert answer.status_code == 200, answer.get_json()


def test_the_time_zone_is_exchange_time_until_the_user_picks_another(client, alice, bob):
    _, key = alice
    # Given a new user: exchange time
    assert _zone_of(client, key) == "America/Chicago"

    # When Alice picks New York, then UTC, each is kept
    changed = client.put("/api/me", json={"time_zone": "America/New_York"}, headers=key)
    assert changed.status_code == 200 and changed.get_json()["time_zone"] == "America/New_York"
    assert _zone_of(client, key) == "America/New_York"
    _set_zone(client, key, "UTC")
    assert _zone_of(client, key) == "UTC"

    # And the pages are handed her zone; Bob's stays his own
    page = client.get("/dashboard", headers=key).get_data(as_text=True)
    assert '<meta name="time-zone" content="UTC">' in page
    assert _zone_of(client, bob[1]) == "America/Chicago"


@pytest.mark.parametrize(
    "bad", ["Mars/Olympus", "", "america/chicago", "localtime", "../etc/passwd", "X" * 65, 5, None]
)
def test_a_zone_that_is_not_an_iana_name_is_a_422_that_changes_nothing(
    client, alice, sessions, bad
):
    _, key = alice
    _set_zone(client, key, "America/New_York")

    answer = client.put("/api/me", json={"time_zone": bad, "manual_confirm_above": 9}, headers=key)

    assert answer.status_code == 422
    assert answer.get_json() == {
        "ok": False,
        "error": ZONE_RULE,
        "fields": {"time_zone": ZONE_RULE},
    }
    with sessions() as s:
        saved = s.execute(select(User.time_zone, User.manual_confirm_above)).one()
    assert tuple(saved) == ("America/New_York", 5)


def test_the_calendar_puts_a_trade_on_the_local_date_of_its_close(client, alice, close_trade):
    _, key = alice
    # Given a trade closed at 03:30 UTC on Nov 3: 21:30 on Nov 2 in Chicago
    close_trade(datetime(2026, 11, 3, 3, 30, tzinfo=UTC), pnl="12.5")

    chicago = client.get("/api/dashboard/calendar?month=2026-11", headers=key).get_json()
    assert chicago["time_zone"] == "America/Chicago"
    assert chicago["days"] == [{"date": "2026-11-02", "pnl": 12.5, "trades": 1}]

    _set_zone(client, key, "UTC")
    utc = client.get("/api/dashboard/calendar?month=2026-11", headers=key).get_json()
    assert utc["time_zone"] == "UTC"
    assert utc["days"] == [{"date": "2026-11-03", "pnl": 12.5, "trades": 1}]


def test_the_month_starts_at_local_midnight(client, alice, close_trade):
    _, key = alice
    # 23:30 on Oct 31 in Chicago, but already November in UTC
    close_trade(datetime(2026, 11, 1, 4, 30, tzinfo=UTC))
    assert (
        client.get("/api/dashboard/calendar?month=2026-11", headers=key).get_json()["trades"] == 0
    )
    october = client.get("/api/dashboard/calendar?month=2026-10", headers=key).get_json()
    assert october["days"] == [{"date": "2026-10-31", "pnl": 10.0, "trades": 1}]


def test_from_and_to_cut_days_at_local_midnight_across_the_end_of_daylight_time(
    client, alice, close_trade
):
    _, key = alice
    # Nov 1 2026 in Chicago is 25 hours long: 05:00 UTC (CDT midnight) to 06:00 UTC on Nov 2
    before = close_trade(datetime(2026, 11, 1, 4, 59, tzinfo=UTC), pnl="1")  # Oct 31 23:59 CDT
    first = close_trade(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), pnl="2")  # Nov 1 00:00 CDT
    last = close_trade(datetime(2026, 11, 2, 5, 59, tzinfo=UTC), pnl="4")  # Nov 1 23:59 CST
    close_trade(datetime(2026, 11, 2, 6, 0, tzinfo=UTC), pnl="8")  # Nov 2 00:00 CST
    day = "from=2026-11-01&to=2026-11-01"

    history = client.get(f"/api/dashboard/trade-history?{day}", headers=key).get_json()
    assert [t["id"] for t in history["trades"]] == [last.id, first.id]
    assert history["trades"][0]["closed_at"] == "2026-11-02T05:59:00Z"  # the JSON stays UTC
    metrics = client.get(f"/api/dashboard/metrics?{day}", headers=key).get_json()
    assert (metrics["trades"], metrics["net_pnl"]) == (2, 6.0)
    chart = client.get(f"/api/dashboard/chart-data?{day}", headers=key).get_json()
    assert [p["position_id"] for p in chart["points"]] == [first.id, last.id]
    calendar = client.get("/api/dashboard/calendar?month=2026-11", headers=key).get_json()
    assert calendar["days"][0] == {"date": "2026-11-01", "pnl": 6.0, "trades": 2}
    for route in DASHBOARD:
        answer = client.get(f"/api/dashboard/{route}?{day}", headers=key).get_json()
        assert answer["time_zone"] == "America/Chicago", route

    # In UTC the same dates cut elsewhere
    _set_zone(client, key, "UTC")
    history = client.get(f"/api/dashboard/trade-history?{day}", headers=key).get_json()
    assert [t["id"] for t in history["trades"]] == [first.id, before.id]
    assert history["time_zone"] == "UTC"


def test_from_after_to_is_still_a_422_for_scripts(client, alice):
    for route in DASHBOARD:
        answer = client.get(
            f"/api/dashboard/{route}?from=2026-11-05&to=2026-11-01", headers=alice[1]
        )
        assert answer.status_code == 422, route
        assert answer.get_json()["error"] == "from must be on or before to."
