"""`GET /api/status/metrics`: the figures the services' own `/metrics` endpoints expose, read from
them when the Control Center asks (not on any hot path), so the page and Prometheus always agree.

Limiter figures are per Tradovate login, labelled by the executor with our own account id
(`account`, never the broker's user id): a user sees only those of their own accounts, each
also labelled `user` with the name they gave that account, which is what the page shows.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from libs.common.config import Settings
from libs.common.metrics import limiter_account_labels
from libs.common.storage.models import Account
from libs.common.tradovate.accounts import limiter_user
from services.ui.context import db, settings, user_id

bp = Blueprint("service_metrics", __name__)

SCRAPE_TIMEOUT_S = 1.0
# The families the Control Center shows (histograms as their _count and _sum).
SHOWN = ("jt_webhook_", "jt_engine_", "jt_stream_", "jt_orders", "jt_limiter_", "jt_feed_")


def targets(s: Settings) -> dict[str, str]:
    """Each service's /metrics URL by name. With METRICS_TARGETS (`name=host:port,...`), a host
    name with several addresses (replicas behind one name, as under Docker) gives one target per
    address: `executor-1`, `executor-2`; without it, every service on METRICS_HOST."""
    if s.metrics_targets:
        found: dict[str, str] = {}
        for name, (host, port) in s.metrics_targets:
            addresses = _addresses(host)
            if len(addresses) <= 1:
                found[name] = f"http://{host}:{port}/metrics"
                continue
            for n, address in enumerate(addresses):
                found[f"{name}-{n + 1}"] = f"http://{address}:{port}/metrics"
        return found
    found = {}
    if s.gateway_metrics_port:  # its own internal port: the webhook port serves no /metrics
        found["gateway"] = f"http://{s.metrics_host}:{s.gateway_metrics_port}/metrics"
    if s.engine_partitions == 1:
        found["engine"] = f"http://{s.metrics_host}:{s.engine_port}/metrics"
    else:
        for k in range(s.engine_partitions):
            # Partition K's engine serves its metrics on ENGINE_PORT + K.
            found[f"engine-{k}"] = f"http://{s.metrics_host}:{s.engine_port + k}/metrics"
    found["price_feed"] = f"http://{s.metrics_host}:{s.price_feed_port}/metrics"
    if s.executor_metrics_port:
        for n in range(s.executor_workers):
            found[f"executor-{n + 1}"] = (
                f"http://{s.metrics_host}:{s.executor_metrics_first + n}/metrics"
            )
    return found


def _addresses(host: str) -> list[str]:
    """The IPv4 addresses a name resolves to, sorted (none when it does not resolve now)."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted(
        # An AF_INET address is a (host, port) pair of str and int; typeshed allows any family's.
        {str(info[4][0]) for info in infos},
        key=lambda a: tuple(int(part) for part in a.split(".")),
    )


def scrape(url: str) -> list[dict[str, Any]] | None:
    """The shown samples of one endpoint; None when it does not answer."""
    try:
        answer = requests.get(url, timeout=SCRAPE_TIMEOUT_S)
        answer.raise_for_status()
    except requests.RequestException:
        return None
    samples = []
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name.startswith(SHOWN) and not sample.name.endswith(("_bucket", "_created")):
                samples.append(
                    {"name": sample.name, "labels": sample.labels, "value": sample.value}
                )
    return samples


def _own_budgets() -> dict[str, str]:
    """The `account` labels of the limiter figures of this user's accounts → their names."""
    labels = limiter_account_labels(db())
    mine: dict[str, list[str]] = {}
    for account in db().scalars(
        select(Account)
        .where(Account.user_id == user_id(), Account.broker == "tradovate")
        .order_by(Account.id)
    ):
        label = labels.get(limiter_user(account))
        if label is not None:
            mine.setdefault(label, []).append(account.name)
    return {label: " / ".join(names) for label, names in mine.items()}


def _visible(samples: list[dict[str, Any]], mine: dict[str, str]) -> list[dict[str, Any]]:
    shown = []
    for sample in samples:
        account = sample["labels"].get("account")
        if account is None:
            shown.append(sample)
        elif account in mine:
            shown.append({**sample, "labels": {**sample["labels"], "user": mine[account]}})
    return shown


@bp.get("/api/status/metrics")
def service_metrics() -> ResponseReturnValue:
    s = settings()
    mine = _own_budgets()
    urls = targets(s)
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        scraped = dict(zip(urls, pool.map(scrape, urls.values()), strict=True))
    services = {}
    for name, samples in scraped.items():
        visible = None if samples is None else _visible(samples, mine)
        services[name] = {"up": samples is not None, "samples": visible or []}
    return jsonify(ok=True, services=services)
