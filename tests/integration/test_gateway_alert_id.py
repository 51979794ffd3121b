"""A webhook's `id` (docs/contract.md §2): TradingView sends an alert again after a 5xx or a
timeout, even when the first one was stored; the same id on the same token within the window is
answered with the first signal's id and stored once."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests

from libs.common import recorder_tokens, streams
from libs.common.storage.embedded import EmbeddedRedis, free_port
from services.gateway.app import connect_redis, create_app
from services.gateway.spool import SpoolDrainer
from services.ui import alert_templates
from tests.integration.test_gateway import gateway_process, post, signals

ALERT = {"action": "buy", "ticker": "MNQ1!", "price": 21034.25, "id": "MNQ1!-5-1732900000"}


@pytest.fixture
def recorder(make_recorder, redis_client, settings):
    recorder = make_recorder()
    recorder_tokens.put(redis_client, settings, recorder)
    return recorder


@pytest.fixture
def app(settings, redis_client):
    return create_app(settings, redis_client=redis_client)


def test_the_same_alert_id_twice_is_stored_once_and_answered_with_the_first_signal(
    app, recorder, redis_client, settings
):
    client = app.test_client()
    first = post(client, recorder.webhook_token, ALERT)

    again = post(client, recorder.webhook_token, {**ALERT, "price": 21035})

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.get_json() == {
        "ok": True,
        "signal_id": first.get_json()["signal_id"],
        "duplicate": True,
    }
    [stored] = signals(redis_client, settings)
    assert stored["signal_id"] == first.get_json()["signal_id"]


def test_an_alert_resent_after_its_answer_was_lost_is_not_stored_again(
    settings, recorder, redis_client, tmp_path
):
    # Given the real server, and a sender that gives up before reading the answer (as
    # TradingView does after 3 s, then sends the alert again)
    body = json.dumps(ALERT).encode()
    with gateway_process(settings, tmp_path) as gateway:
        host, port = gateway.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST /webhook/{recorder.webhook_token} HTTP/1.1\r\nHost: gateway\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            deadline = time.monotonic() + 10
            while not signals(redis_client, settings) and time.monotonic() < deadline:
                time.sleep(0.05)
        # (the connection closes here, its answer unread)
        [first] = signals(redis_client, settings)

        # When it arrives again
        again = requests.post(
            f"{gateway.base}/webhook/{recorder.webhook_token}", data=body, timeout=5
        )

    # Then the answer names the signal already stored, and there is still one
    assert again.status_code == 200
    assert again.json() == {"ok": True, "signal_id": first["signal_id"], "duplicate": True}
    assert len(signals(redis_client, settings)) == 1


def test_two_identical_alerts_at_once_store_one_signal(app, recorder, redis_client, settings):
    def send(_: int):
        return post(app.test_client(), recorder.webhook_token, ALERT)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))

    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.get_json()["signal_id"] for a in answers}) == 1
    assert len(signals(redis_client, settings)) == 1


def test_the_same_id_on_another_token_is_a_new_signal(
    app, recorder, make_recorder, redis_client, settings
):
    other = make_recorder(name="Other")
    recorder_tokens.put(redis_client, settings, other)
    client = app.test_client()

    assert post(client, recorder.webhook_token, ALERT).status_code == 202
    assert post(client, other.webhook_token, ALERT).status_code == 202
    assert post(client, recorder.webhook_token, ALERT).status_code == 200  # a repeat on the first
    assert len(signals(redis_client, settings)) == 2


def test_after_the_window_the_same_id_is_stored_again(settings, recorder, redis_client):
    client = create_app(
        replace(settings, webhook_dedupe_window_s=1), redis_client=redis_client
    ).test_client()
    assert post(client, recorder.webhook_token, ALERT).status_code == 202

    time.sleep(1.2)  # the window is one second here (ten minutes by default)

    assert post(client, recorder.webhook_token, ALERT).status_code == 202
    assert len(signals(redis_client, settings)) == 2


@pytest.mark.parametrize(
    ("alert_id", "says"),
    [("x" * 129, "The field id is 129 characters long"), (12, "The field id must be text")],
)
def test_an_id_that_is_not_short_text_is_a_422_naming_it(
    app, recorder, redis_client, settings, alert_id, says
):
    answer = post(app.test_client(), recorder.webhook_token, {**ALERT, "id": alert_id})

    assert answer.status_code == 422
    assert says in answer.get_json()["error"]
    assert signals(redis_client, settings) == []


def test_while_redis_is_down_a_repeat_is_recognized_and_stored_once_when_it_returns(
    settings, make_recorder, tmp_path
):
    # Given a gateway on its own Redis, which then goes away
    server = EmbeddedRedis(tmp_path / "redis", free_port())
    server.start()
    own = replace(settings, redis_url=server.url, gateway_spool_dir=tmp_path / "spool")
    client = connect_redis(own.redis_url)
    recorder = make_recorder()
    recorder_tokens.put(client, own, recorder)
    app = create_app(own, redis_client=client)
    app.extensions["spool_drainer"].stop()  # drain by hand, so the test decides when
    try:
        server.stop()

        # When the same alert arrives twice
        first = post(app.test_client(), recorder.webhook_token, ALERT)
        again = post(app.test_client(), recorder.webhook_token, ALERT)

        # Then the second is a repeat of the first, spooled once
        assert first.status_code == 202
        assert again.get_json() == {
            "ok": True,
            "signal_id": first.get_json()["signal_id"],
            "duplicate": True,
        }
        server.start()
        gateway = app.extensions["gateway"]
        assert SpoolDrainer(gateway.spool, gateway.store).drain() == 1
        stored = client.xrange(own.stream(streams.SIGNALS))
        assert [fields["signal_id"] for _, fields in stored] == [first.get_json()["signal_id"]]
        assert post(app.test_client(), recorder.webhook_token, ALERT).status_code == 200
    finally:
        server.stop()


def fill(template: str, **values: str) -> str:
    """The message as TradingView renders it."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def test_the_alert_templates_id_makes_a_resend_one_signal_and_two_alerts_two(
    app, recorder, redis_client, settings
):
    # Given the indicator template for a close and for a buy, fired in the same second
    moment = {"ticker": "MNQ1!", "interval": "5", "close": "21034.25"}
    moment["timenow"] = "2026-11-23T14:37:12Z"
    close = fill(alert_templates.indicator_template(recorder.name, "close"), **moment)
    buy = fill(alert_templates.indicator_template(recorder.name, "buy"), **moment)
    client = app.test_client()

    # When TradingView sends the close, resends it, and sends the buy
    answers = [post(client, recorder.webhook_token, body) for body in (close, close, buy)]

    # Then the close is stored once and the buy once
    assert [a.status_code for a in answers] == [202, 200, 202]
    assert [s["action"] for s in signals(redis_client, settings)] == ["close", "buy"]
