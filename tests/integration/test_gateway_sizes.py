"""Sizes at the door: a signal above its recorder's `max_qty` or the platform's MAX_SIGNAL_QTY is
a 422 naming the field and the limit, and nothing is stored."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from libs.common import recorder_tokens
from services.gateway.app import create_app
from tests.integration.test_gateway import assert_refused, post, signals


@pytest.fixture
def small(make_recorder, redis_client, settings):
    """A recorder that allows at most 5 contracts per signal."""
    recorder = make_recorder(max_qty=Decimal(5))
    recorder_tokens.put(redis_client, settings, recorder)
    return recorder


@pytest.mark.parametrize(
    ("size", "field"),
    [
        ({"action": "buy", "qty": 6}, "qty"),
        ({"action": "buy", "contracts": 6}, "contracts"),
        ({"position_size": -6, "market_position": "short"}, "position_size"),
    ],
)
def test_a_size_above_the_recorders_max_qty_is_a_422_naming_field_and_limit(
    settings, redis_client, small, size, field
):
    client = create_app(settings, redis_client=redis_client).test_client()

    answer = post(client, small.webhook_token, {"ticker": "MNQ1!", **size})

    error = assert_refused(answer, 422, redis_client, settings)
    assert f"The field {field} is " in error and "max_qty of 5 contracts" in error


def test_the_recorders_max_qty_itself_is_accepted(settings, redis_client, small):
    client = create_app(settings, redis_client=redis_client).test_client()

    answer = post(client, small.webhook_token, {"action": "buy", "ticker": "MNQ1!", "qty": 5})

    assert answer.status_code == 202
    assert signals(redis_client, settings)[0]["qty"] == "5"


def test_the_platform_cap_is_a_setting_and_applies_whatever_the_recorder_allows(
    settings, redis_client, make_recorder
):
    roomy = make_recorder(max_qty=Decimal(500))
    recorder_tokens.put(redis_client, settings, roomy)
    client = create_app(replace(settings, max_signal_qty=50), redis_client=redis_client)

    answer = post(
        client.test_client(), roomy.webhook_token, {"action": "buy", "ticker": "ES1!", "qty": 60}
    )

    error = assert_refused(answer, 422, redis_client, settings)
    assert "above the 50 contracts one signal may carry (MAX_SIGNAL_QTY)" in error


def test_a_recorder_without_its_own_limit_in_the_token_map_allows_100(
    settings, redis_client, make_recorder
):
    # An entry written before max_qty was carried in the map
    recorder = make_recorder()
    digest = recorder_tokens.token_digest(recorder.webhook_token)
    legacy = {"recorder_id": recorder.id, "user_id": recorder.user_id, "name": recorder.name}
    redis_client.hset(
        settings.stream_prefix + recorder_tokens.TOKENS_KEY,
        digest,
        json.dumps({**legacy, "enabled": True}),
    )
    client = create_app(settings, redis_client=redis_client).test_client()

    over = post(client, recorder.webhook_token, {"action": "buy", "ticker": "MNQ1!", "qty": 101})

    assert "max_qty of 100 contracts" in assert_refused(over, 422, redis_client, settings)
