"""The Control Center shows the services' own /metrics figures, live."""

from __future__ import annotations

import requests
from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.browser_support import log_in


def sample(url: str, name: str, **labels: str) -> float:
    text = requests.get(url + "/metrics", timeout=5).text
    return next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def routed(services: dict, name: str, **labels: str) -> float:
    return sum(
        s["value"]
        for svc in services.values()
        for s in svc["samples"]
        if s["name"] == name and all(s["labels"].get(k) == v for k, v in labels.items())
    )


def test_the_control_center_shows_what_the_services_expose_and_follows_it(
    stack, api, new_page, eventually
):
    # Given three accepted webhooks and one refused
    recorder = api.create_recorder(name="Counted")
    url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
    for price in (25640, 25641, 25642):
        assert (
            requests.post(
                url, json={"action": "buy", "ticker": "MNQ1!", "price": price}, timeout=5
            ).status_code
            == 202
        )
    assert (
        requests.post(url, json={"action": "buy", "price": "{{close}}"}, timeout=5).status_code
        == 422
    )

    # When the route is asked, it gives exactly what the gateway's and engine's /metrics say
    engine_batches = eventually(
        lambda: sample(stack.url("engine"), "jt_engine_batch_size_count"),
        "the engine to apply a batch",
    )
    services = api.ok("/api/status/metrics")["services"]
    assert services["gateway"]["up"] and services["engine"]["up"]
    for code in ("202", "422"):
        assert routed(services, "jt_webhook_answers_total", code=code) == sample(
            stack.url("gateway-metrics"), "jt_webhook_answers_total", code=code
        )
    assert routed(services, "jt_webhook_answers_total", code="202") == 3
    assert engine_batches >= 1 and routed(services, "jt_engine_batch_size_count") >= engine_batches

    # And the Control Center page shows the same count, then follows a new webhook on its own
    page = new_page()
    log_in(page, stack.url("ui"), stack.email, stack.password, "/control-center")
    row = page.locator("#pipeline tr[data-metric=webhooks] td")
    expect(row).to_contain_text("202: 3")
    expect(row).to_contain_text("422: 1")
    assert (
        requests.post(
            url, json={"action": "sell", "ticker": "MNQ1!", "price": 25650}, timeout=5
        ).status_code
        == 202
    )
    expect(row).to_contain_text("202: 4", timeout=10_000)
