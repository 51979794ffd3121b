"""The Recorders page's test alert: a real webhook through the real gateway on a real port to the
real engine, which records it as ignored and trades nothing, whoever follows the recorder."""

from __future__ import annotations

from dataclasses import replace

import pytest

from libs.common import streams
from libs.common.storage.embedded import free_port
from tests.integration.engine_support import running_engine  # noqa: F401 (fixture)
from tests.integration.service_processes import service_process
from tests.polling import wait_for

TEST_REASON = "a test alert: it reached the engine; nothing was traded"


@pytest.fixture
def gateway_port() -> int:
    return free_port()


@pytest.fixture
def settings(settings, gateway_port):
    """The webhook URLs shown to users point at the gateway this test serves."""
    return replace(settings, public_url=f"http://localhost:{gateway_port}")


@pytest.fixture
def served_gateway(settings, gateway_port, tmp_path):
    env = {"GATEWAY_PORT": str(gateway_port), "GATEWAY_METRICS_PORT": str(free_port())}
    with service_process("gateway", settings, tmp_path, gateway_port, env) as log_path:
        yield log_path


@pytest.mark.usefixtures("running_engine")
def test_a_test_alert_reaches_the_engine_and_trades_nothing(
    served_gateway,
    client,
    alice,
    paper,
    settings,
    redis_client,
):
    key = alice[1]
    recorder = client.post(
        "/api/recorders", json={"name": "MNQ trend", "default_qty": 1}, headers=key
    ).get_json()
    trader = client.post(
        "/api/traders",
        json={"recorder_id": recorder["id"], "subaccount_id": paper["id"], "enabled": True},
        headers=key,
    )
    assert trader.status_code == 201, trader.get_json()
    redis_client.hset(settings.stream(streams.LAST_PRICE), "MNQ", "25640.25")

    response = client.post(f"/api/recorders/{recorder['id']}/test-alert", json={}, headers=key)

    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["status"] == 202
    assert result["answer"]["ok"] is True
    assert result["signal_id"] == result["answer"]["signal_id"]
    assert "localhost" in result["url_warning"]
    assert f"port {settings.public_url.rsplit(':', 1)[1]}" in result["url_warning"]

    def settled():
        signal = client.get(f"/api/signals/{result['signal_id']}", headers=key).get_json()
        return signal if signal.get("status") not in (None, "pending") else None

    signal = wait_for(settled, what="the engine to record the test alert", timeout=15)
    assert (signal["status"], signal["reason"]) == ("ignored", TEST_REASON)
    assert signal["ticker"] == "MNQ1!"
    assert signal["price"] == 25640.25
    positions = client.get(
        "/api/positions", query_string={"recorder_id": recorder["id"]}, headers=key
    )
    assert positions.get_json()["positions"] == []
    orders = client.get(
        "/api/orders", query_string={"trader_id": trader.get_json()["id"]}, headers=key
    )
    assert orders.get_json()["orders"] == []
    token = recorder["webhook_token"]
    assert token not in served_gateway.read_text()


def test_the_webhook_setup_warns_about_a_url_tradingview_cannot_call(client, alice, settings):
    recorder = client.post(
        "/api/recorders", json={"name": "MNQ trend", "default_qty": 1}, headers=alice[1]
    ).get_json()

    setup = client.get(f"/api/recorders/{recorder['id']}/webhook", headers=alice[1]).get_json()

    assert setup["webhook_url"].startswith(settings.public_url)
    assert setup["url_warning"].startswith("TradingView cannot reach this webhook URL")


def test_an_unreachable_webhook_url_is_a_502_without_the_token(client, alice, gateway_port):
    # Nothing serves the gateway's port in this test.
    recorder = client.post(
        "/api/recorders", json={"name": "MNQ trend", "default_qty": 1}, headers=alice[1]
    ).get_json()

    response = client.post(f"/api/recorders/{recorder['id']}/test-alert", json={}, headers=alice[1])

    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error.startswith(f"The webhook URL http://localhost:{gateway_port}/webhook/… could not")
    assert "nothing accepts connections there" in error
    assert recorder["webhook_token"] not in response.get_data(as_text=True)
