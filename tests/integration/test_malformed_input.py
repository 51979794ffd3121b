"""Malformed input gets a 4xx that says what is wrong, never a 500 (issue 13, finding 8)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from libs.common.storage.models import Recorder

DEEP = "[" * 30_000 + "]" * 30_000  # deeper than Python's parser can go, under the 64 KiB cap
DEEP_BUT_PARSEABLE = '{"name": ' + "[" * 500 + "]" * 500 + "}"


@pytest.mark.parametrize("body", [DEEP, DEEP_BUT_PARSEABLE])
def test_deeply_nested_json_is_refused_by_the_api(client, alice, sessions, body):
    answer = client.post(
        "/api/recorders", data=body, content_type="application/json", headers=alice[1]
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"] == (
        "The request body is not valid JSON: it is nested more than 32 levels deep."
    )
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Recorder)) == 0


def test_deeply_nested_json_at_login_is_a_400_not_a_500(client):
    answer = client.post("/login", data=DEEP, content_type="application/json")
    assert answer.status_code == 400


def test_a_body_that_is_not_json_says_where_it_breaks(client, alice):
    answer = client.post(
        "/api/recorders", data='{"name": "MNQ",}', content_type="text/plain", headers=alice[1]
    )
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(
        "The request body is not valid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 16"
    )
    empty = client.post("/api/recorders", data="", headers=alice[1])
    assert empty.get_json()["error"] == "The request body is empty; send a JSON object."


@pytest.mark.parametrize(
    "path",
    [
        "/api/dashboard/trade-history",
        "/api/dashboard/chart-data",
        "/api/dashboard/metrics",
        "/api/dashboard/calendar",
    ],
)
def test_dates_past_the_calendar_are_a_422(client, alice, path):
    for query in ({"to": "9999-12-31"}, {"from": "0001-01-01"}, {"month": "9999-12"}):
        answer = client.get(path, query_string=query, headers=alice[1])
        if "month" in query and answer.status_code == 200:
            continue  # routes without a month ignore it
        assert answer.status_code == 422, (path, query, answer.get_json())
        assert "between 1970 and 2999" in answer.get_json()["error"]
