"""The webhook gateway against real Redis and PostgreSQL: what a 202 stores, what every refusal
answers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests

from libs.common import recorder_tokens
from libs.common.config import load_settings
from libs.common.logs import KeyValueFormatter
from libs.common.storage.embedded import free_port
from libs.common.streams import SignalMessage
from services.gateway.app import connect_redis, create_app
from services.gateway.redaction import RedactTokens
from tests.integration.service_processes import service_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SIGNAL_FIELDS = {
    "signal_id",
    "recorder_id",
    "action",
    "ticker",
    "symbol",
    "price",
    "qty",
    "position_size",
    "market_position",
    "received_at",
    "raw",
}
BUY = {
    "action": "buy",
    "ticker": "CME_MINI:MNQ1!",
    "price": 21034.25,
    "contracts": 2,
    "time": "2026-11-23T14:37:12Z",
}


@pytest.fixture
def recorder(make_recorder, redis_client, settings):
    recorder = make_recorder(name="MNQ trend")
    recorder_tokens.put(redis_client, settings, recorder)
    return recorder


@pytest.fixture
def gateway(settings, redis_client):
    """A test client for the gateway; keyword arguments override settings."""

    def make(**overrides):
        return create_app(replace(settings, **overrides), redis_client=redis_client).test_client()

    return make


def post(client, token: str, body, content_type: str = "application/json", **kwargs):
    data = json.dumps(body) if isinstance(body, dict) else body
    return client.post(f"/webhook/{token}", data=data, content_type=content_type, **kwargs)


def signals(redis_client, settings) -> list[dict]:
    return [fields for _, fields in redis_client.xrange(settings.stream("signals"))]


def assert_refused(response, status: int, redis_client, settings) -> str:
    assert response.status_code == status
    body = response.get_json()
    assert body["ok"] is False and set(body) == {"ok", "error"}
    assert body["error"][0].isupper() and body["error"].endswith(".")
    assert redis_client.xlen(settings.stream("signals")) == 0
    return body["error"]


def test_accepted_signal_puts_exactly_one_entry_on_the_signals_stream(
    gateway, recorder, redis_client, settings
):
    response = post(gateway(), recorder.webhook_token, BUY)

    assert response.status_code == 202
    body = response.get_json()
    assert body == {"ok": True, "signal_id": body["signal_id"]} and uuid.UUID(body["signal_id"])
    [fields] = signals(redis_client, settings)
    assert set(fields) == SIGNAL_FIELDS
    message = SignalMessage.from_fields(fields)
    assert (message.signal_id, message.recorder_id, message.action, message.symbol) == (
        body["signal_id"],
        recorder.id,
        "buy",
        "MNQ",
    )
    assert json.loads(message.raw)["time"] == BUY["time"]


def test_accepted_signal_is_marked_pending_for_a_day(gateway, recorder, redis_client, settings):
    signal_id = post(gateway(), recorder.webhook_token, BUY).get_json()["signal_id"]

    key = settings.stream(f"signal_pending:{signal_id}")
    assert redis_client.get(key) == str(recorder.id)
    assert 86_000 < redis_client.ttl(key) <= 86_400


def test_text_plain_body_is_read_as_json(gateway, recorder, redis_client, settings):
    text = json.dumps(BUY)
    response = post(
        gateway(), recorder.webhook_token, text, content_type="text/plain; charset=utf-8"
    )

    assert response.status_code == 202
    assert len(signals(redis_client, settings)) == 1


def test_disabled_recorder_is_still_accepted_for_the_engine_to_ignore(
    gateway, make_recorder, redis_client, settings
):
    disabled = make_recorder(enabled=False)
    recorder_tokens.put(redis_client, settings, disabled)

    assert post(gateway(), disabled.webhook_token, BUY).status_code == 202


def test_body_that_is_not_json_is_400(gateway, recorder, redis_client, settings):
    body = '{"action": "buy", "ticker": MNQ1!}'
    response = post(gateway(), recorder.webhook_token, body, content_type="text/plain")
    assert "not JSON" in assert_refused(response, 400, redis_client, settings)


def test_wrong_field_is_422_naming_it(gateway, recorder, redis_client, settings):
    response = post(gateway(), recorder.webhook_token, {**BUY, "price": "{{close}}"})
    assert "price" in assert_refused(response, 422, redis_client, settings)


@pytest.mark.parametrize("token", ["0" * 32, "a" * 65, "abc%20def", "abc.def"])
def test_unknown_or_malformed_token_is_404(gateway, recorder, redis_client, settings, token):
    message = assert_refused(post(gateway(), token, BUY), 404, redis_client, settings)
    assert message == "No recorder has this webhook token."


def test_body_over_16_kib_is_413(gateway, recorder, redis_client, settings):
    body = json.dumps({**BUY, "comment": "x" * 16 * 1024})
    assert_refused(post(gateway(), recorder.webhook_token, body), 413, redis_client, settings)


def test_body_of_exactly_16_kib_is_accepted(gateway, recorder):
    text = json.dumps(BUY)
    padded = text + " " * (16 * 1024 - len(text))
    assert post(gateway(), recorder.webhook_token, padded).status_code == 202


def test_too_many_signals_for_one_token_is_429(
    gateway, recorder, make_recorder, redis_client, settings
):
    client = gateway(webhook_rate_limit=2, webhook_rate_window_s=3600)
    other = make_recorder()
    recorder_tokens.put(redis_client, settings, other)

    statuses = [post(client, recorder.webhook_token, BUY).status_code for _ in range(3)]

    assert statuses == [202, 202, 429]
    assert post(client, other.webhook_token, BUY).status_code == 202  # the limit is per token
    assert redis_client.xlen(settings.stream("signals")) == 3
    assert not any(recorder.webhook_token in key for key in redis_client.keys("*webhook_rate*"))


def test_a_refused_body_does_not_count_against_the_rate_limit(
    gateway, recorder, redis_client, settings
):
    client = gateway(webhook_rate_limit=2, webhook_rate_window_s=3600)

    refused = post(client, recorder.webhook_token, {"action": "hold", "ticker": "MNQ1!"})
    statuses = [post(client, recorder.webhook_token, BUY).status_code for _ in range(3)]

    assert refused.status_code == 422  # an action the gateway does not know
    assert statuses == [202, 202, 429]  # the two signals the limit allows, then the limit
    assert len(signals(redis_client, settings)) == 2
    # the refused signal left no pending marker either
    assert len(redis_client.keys(settings.stream("signal_pending:*"))) == 2


def test_a_token_revoked_after_the_worker_copied_the_map_is_404(
    gateway, recorder, redis_client, settings
):
    client = gateway()  # its worker copies the token map at start
    assert post(client, recorder.webhook_token, BUY).status_code == 202

    old_token = recorder.webhook_token
    recorder.webhook_token = "b" * 32  # the user regenerated the URL: the UI moves the map entry
    recorder_tokens.put(redis_client, settings, recorder, old_token=old_token)

    assert post(client, old_token, BUY).status_code == 404
    assert post(client, recorder.webhook_token, BUY).status_code == 202
    assert len(signals(redis_client, settings)) == 2


def test_a_recorder_renamed_after_the_worker_copied_the_map_is_matched_by_its_new_name(
    gateway, recorder, redis_client, settings
):
    client = gateway()
    recorder.name = "MNQ scalper"
    recorder_tokens.put(redis_client, settings, recorder)

    answer = post(client, recorder.webhook_token, {**BUY, "recorder": "MNQ scalper"})
    stale = post(client, recorder.webhook_token, {**BUY, "recorder": "MNQ trend"})

    assert answer.status_code == 202, answer.get_json()
    assert stale.status_code == 422 and "MNQ scalper" in stale.get_json()["error"]
    assert len(signals(redis_client, settings)) == 1


def test_address_outside_the_allowlist_is_403(gateway, recorder, redis_client, settings):
    client = gateway(webhook_ip_allowlist=("52.89.214.238", "10.1.0.0/16"))

    refused = post(client, recorder.webhook_token, BUY, environ_base={"REMOTE_ADDR": "10.2.0.1"})
    assert_refused(refused, 403, redis_client, settings)
    allowed = post(client, recorder.webhook_token, BUY, environ_base={"REMOTE_ADDR": "10.1.7.7"})
    assert allowed.status_code == 202


def test_allowlist_tradingview_admits_its_four_published_addresses_only(
    gateway, recorder, redis_client, settings
):
    # Given WEBHOOK_IP_ALLOWLIST=tradingview, as docs/operations.md suggests for a public gateway
    allowlist = load_settings(
        {"WEBHOOK_IP_ALLOWLIST": "tradingview"}, env_file=Path("/nonexistent")
    ).webhook_ip_allowlist
    client = gateway(webhook_ip_allowlist=allowlist)

    # Then each of TradingView's addresses gets in and a neighbour of one of them does not
    for address in ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"):
        assert (
            post(
                client, recorder.webhook_token, BUY, environ_base={"REMOTE_ADDR": address}
            ).status_code
            == 202
        )
    refused = post(
        client, recorder.webhook_token, BUY, environ_base={"REMOTE_ADDR": "52.89.214.239"}
    )
    assert refused.get_json() == {"ok": False, "error": "This address may not send webhooks."}
    assert redis_client.xlen(settings.stream("signals")) == 4


def test_forwarded_address_counts_only_behind_a_trusted_proxy(
    gateway, recorder, redis_client, settings
):
    allowlist = ("52.89.214.238",)
    untrusted = gateway(webhook_ip_allowlist=allowlist)
    trusted = gateway(webhook_ip_allowlist=allowlist, trust_proxy=True)

    def via_proxy(client, forwarded_for: str):
        headers = {"X-Forwarded-For": forwarded_for}
        environ = {"REMOTE_ADDR": "127.0.0.1"}
        return post(client, recorder.webhook_token, BUY, environ_base=environ, headers=headers)

    # The proxy appends the real sender last; earlier hops are whatever the client wrote.
    assert_refused(via_proxy(trusted, "52.89.214.238, 203.0.113.9"), 403, redis_client, settings)
    assert_refused(via_proxy(untrusted, "203.0.113.9, 52.89.214.238"), 403, redis_client, settings)
    assert via_proxy(trusted, "203.0.113.9, 52.89.214.238").status_code == 202


def test_unknown_route_and_wrong_method_answer_json_errors(
    gateway, recorder, redis_client, settings
):
    client = gateway()
    assert_refused(client.get("/nothing-here"), 404, redis_client, settings)
    assert_refused(client.get(f"/webhook/{recorder.webhook_token}"), 405, redis_client, settings)
    assert_refused(client.post("/webhook/"), 404, redis_client, settings)


def test_a_token_that_cannot_be_checked_while_redis_is_down_answers_503_so_tradingview_resends(
    settings, recorder
):
    dead = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(settings, redis_client=dead).test_client()

    response = post(client, recorder.webhook_token, BUY)

    assert response.status_code == 503
    assert response.get_json()["ok"] is False
    health = client.get("/healthz")  # degraded, not dead: a probe must not restart it
    assert health.status_code == 200 and health.get_json()["status"] == "degraded"


def test_healthz_reports_redis(gateway):
    response = gateway().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["ok"] is True and response.get_json()["redis"] == "ok"


def test_logs_never_contain_the_token(gateway, recorder, caplog):
    caplog.set_level(logging.DEBUG)
    client = gateway()

    signal_id = post(client, recorder.webhook_token, BUY).get_json()["signal_id"]
    post(client, recorder.webhook_token, {"action": "hold", "ticker": "MNQ1!"})
    client.get(f"/webhook/{recorder.webhook_token}")
    post(client, recorder.webhook_token + "/extra", BUY)

    text = "\n".join(KeyValueFormatter().format(record) for record in caplog.records)
    assert recorder.webhook_token not in text
    assert "path=/webhook/<redacted>" in text and "status=422" in text
    assert f"signal_id={signal_id}" in text


def test_unexpected_failure_is_a_json_500_and_its_log_omits_the_token(
    gateway, recorder, caplog, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("services.gateway.app.parse_signal", broken)
    caplog.set_level(logging.INFO)

    response = post(gateway(), recorder.webhook_token, BUY)

    assert response.status_code == 500 and response.get_json()["ok"] is False
    text = "\n".join(KeyValueFormatter().format(record) for record in caplog.records)
    assert "RuntimeError: a bug" in text and recorder.webhook_token not in text


def test_gunicorn_error_lines_are_redacted(recorder):
    record = logging.LogRecord(
        "gunicorn.error",
        logging.ERROR,
        __file__,
        1,
        "Error handling request %s",
        (f"/webhook/{recorder.webhook_token}?x=1",),
        None,
    )

    RedactTokens().filter(record)

    assert record.getMessage() == "Error handling request /webhook/<redacted>?x=1"


def test_start_up_fills_the_token_map_from_postgresql_and_refills_it_when_lost(
    settings, redis_client, sessions, make_recorder
):
    recorder = make_recorder()  # in PostgreSQL only
    app = create_app(settings, redis_client=redis_client, sessions=sessions)
    sync = app.extensions["token_sync"]
    try:
        assert post(app.test_client(), recorder.webhook_token, BUY).status_code == 202
        redis_client.flushdb()  # Redis restarted without its data

        assert sync.sync_if_lost() == 1
        assert recorder_tokens.lookup(redis_client, settings, recorder.webhook_token)
    finally:
        sync.stop()


@dataclass
class GatewayProcess:
    base: str  # the public webhook port
    metrics_url: str  # the internal metrics port's /metrics
    log_path: Path


@contextmanager
def gateway_process(settings, tmp_path: Path, **env: str) -> Iterator[GatewayProcess]:
    """`python -m services.gateway` as production runs it, on free ports, until the block ends."""
    port, metrics_port = free_port(), free_port()
    ports = {"GATEWAY_PORT": str(port), "GATEWAY_METRICS_PORT": str(metrics_port)}
    with service_process("gateway", settings, tmp_path, port, {**ports, **env}) as log_path:
        base = f"http://127.0.0.1:{port}"
        yield GatewayProcess(base, f"http://127.0.0.1:{metrics_port}/metrics", log_path)


def test_gunicorn_server_accepts_a_real_request_and_redacts_the_token(
    settings, recorder, redis_client, tmp_path
):
    with gateway_process(settings, tmp_path) as gateway:
        url = f"{gateway.base}/webhook/{recorder.webhook_token}"
        text_plain = {"Content-Type": "text/plain"}
        response = requests.post(url, data=json.dumps(BUY), headers=text_plain, timeout=5)
        chunked = requests.post(url, data=iter([b"x" * 1024] * 17), timeout=5)  # no Content-Length

        assert response.status_code == 202
        assert chunked.status_code == 413
        [fields] = signals(redis_client, settings)
        assert fields["signal_id"] == response.json()["signal_id"]
    output = gateway.log_path.read_text()
    assert "/webhook/<redacted>" in output
    assert recorder.webhook_token not in output


def test_metrics_are_served_on_the_internal_port_and_not_on_the_public_one(
    settings, recorder, tmp_path
):
    with gateway_process(settings, tmp_path) as gateway:
        url = f"{gateway.base}/webhook/{recorder.webhook_token}"
        assert requests.post(url, json=BUY, timeout=5).status_code == 202

        public = requests.get(f"{gateway.base}/metrics", timeout=5)
        internal = requests.get(gateway.metrics_url, timeout=5)

    assert public.status_code == 404
    assert "jt_webhook" not in public.text
    assert internal.status_code == 200
    assert 'jt_webhook_answers_total{code="202"} 1.0' in internal.text


def test_running_standalone_without_urls_exits_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(JT_VAR_DIR=str(tmp_path / "var"), DATABASE_URL="", REDIS_URL="")
    command = [sys.executable, "-m", "services.gateway"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "DATABASE_URL and REDIS_URL must be set (or use `justtrades run`)" in result.stderr


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"action": "buy", "ticker": "MNQ1!", "price": "1e999999999"}, "price is too large"),
        ({"action": "buy", "ticker": "MNQ1!", "price": "1e-999999999"}, "12 decimal places"),
        ({"action": "buy", "ticker": "A" * 500 + ":MNQ1!"}, "at most 64"),
        ({"action": "buy", "ticker": "MNQ1!", "qty": 1e12}, "qty is too large"),
        ({"action": "buy", "ticker": "MNQ1!", "qty": 5000}, "above the 1000 contracts"),
        ({"action": "buy", "ticker": "MNQ1!", "qty": 1.5}, "whole number of MNQ contracts"),
        ({"action": "buy", "ticker": "MNQ1!", "qty": "1e-30"}, "6 decimal places"),
        (
            {"ticker": "MNQ1!", "position_size": 2.5, "market_position": "long"},
            "whole number of MNQ contracts",
        ),
    ],
)
def test_values_storage_cannot_hold_or_no_alert_means_are_a_422_not_a_202(
    gateway, recorder, redis_client, settings, body, says
):
    raw = (
        json.dumps(body)
        .replace('"1e999999999"', "1e999999999")
        .replace('"1e-999999999"', "1e-999999999")
    )
    answer = post(gateway(), recorder.webhook_token, raw, content_type="text/plain")
    assert answer.status_code == 422, answer.get_json()
    assert says in answer.get_json()["error"]
    assert signals(redis_client, settings) == []  # nothing stored to be refused later
