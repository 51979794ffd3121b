"""The webhook with arbitrary bodies: never a 5xx; a refused body leaves nothing behind, an accepted
one exactly one signal on the stream."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.common import recorder_tokens
from services.gateway.app import create_app

# What TradingView could send: its documented fields with any JSON value, plus noise.
FIELDS = (
    "action",
    "ticker",
    "price",
    "contracts",
    "qty",
    "position_size",
    "market_position",
    "order_id",
    "time",
    "comment",
    "sentiment",
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(
            ["buy", "sell", "close", "flatten", "BUY", "long", "", "{{strategy.order.action}}"]
        )
        | json_values,
        "ticker": st.sampled_from(
            ["MNQ1!", "CME_MINI:MNQ1!", "MNQZ6", "ES1!", "AAPL", "{{ticker}}", ""]
        )
        | json_values,
        **{name: json_values | st.text(max_size=12) for name in FIELDS[2:]},
    },
)
bodies = (
    plausible.map(json.dumps)
    | st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ]
)


@pytest.fixture
def webhook(settings, redis_client, make_recorder):
    recorder = make_recorder(name="Fuzzed")
    recorder_tokens.put(redis_client, settings, recorder)
    client = create_app(
        replace(settings, webhook_rate_limit=1_000_000), redis_client=redis_client
    ).test_client()
    return client, f"/webhook/{recorder.webhook_token}"


@given(body=bodies, content_type=content_types)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
def test_any_body_is_answered_without_a_5xx_and_stored_only_when_accepted(
    webhook, redis_client, settings, body, content_type
):
    client, path = webhook
    stream = settings.stream("signals")
    before = redis_client.xlen(stream)

    answer = client.post(
        path, data=body.encode("utf-8", "surrogatepass"), content_type=content_type
    )

    assert answer.status_code in (202, 400, 413, 415, 422), (
        answer.status_code,
        body,
        answer.get_data(True),
    )
    reply = answer.get_json()
    assert reply["ok"] is (answer.status_code == 202)
    added = redis_client.xlen(stream) - before
    if answer.status_code == 202:
        [(_, fields)] = redis_client.xrevrange(stream, count=1)
        assert added == 1 and fields["signal_id"] == reply["signal_id"] and fields["raw"] == body
    else:
        assert added == 0 and reply["error"], (body, reply)
