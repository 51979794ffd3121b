"""Prometheus plumbing the services share: registries, scrape-time collectors, `GET /metrics`.

Each service builds its own CollectorRegistry (tests run several services in one process); what
only exists at scrape time (stream lag, limiter usage) comes from a `ScrapeCollector`.

Metrics identify no person: no email, account name or broker user id appears in a label. The
broker rate limiter's figures carry our own account id (`limiter_account_labels`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.storage.models import Account
from libs.common.tradovate.accounts import limiter_user

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)


class ScrapeCollector(Collector):
    """Metrics computed when Prometheus asks: `collect` calls the function given."""

    def __init__(self, collect: Callable[[], Iterable[Metric]], what: str):
        self._collect = collect
        self.what = what

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._collect())
        except Exception as exc:  # a failed probe must not cost the scrape its other metrics
            log.warning(
                "metrics not collected",
                extra={"kv": {"what": self.what, "error": type(exc).__name__}},
            )
            return []

    def describe(self) -> Iterable[Metric]:
        return []  # names unknown until scraped; also keeps `register` from probing Redis


def limiter_account_labels(session: Session) -> dict[str, str]:
    """Each limiter key (a Tradovate login, `tradovate:<env>:<user id>`) → the `account` label
    its figures carry: the lowest of our account ids on that login, so the executor publishes
    no Tradovate user id and the UI finds the figures of a user's own accounts."""
    labels: dict[str, str] = {}
    tradovate = session.scalars(
        select(Account).where(Account.broker == "tradovate").order_by(Account.id)
    )
    for account in tradovate:
        labels.setdefault(limiter_user(account), str(account.id))
    return labels


def use_multiprocess_dir(path: Path) -> None:
    """Share metrics between forked workers through files in `path`, emptied first.

    Must run before the workers fork and before any metric is made: prometheus_client picks
    its value class when imported, so it is chosen again here once the variable is set.
    """
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    # untyped in prometheus_client, which is typed otherwise
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What to expose: the process's own registry, or every worker's files in multiprocess mode."""
    if not multiprocess_enabled():
        return own
    merged = CollectorRegistry()
    # untyped in prometheus_client, which is typed otherwise
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def mark_worker_dead(pid: int) -> None:
    """gunicorn's `child_exit` hook: drop a dead worker's live-gauge files."""
    if multiprocess_enabled():
        # untyped in prometheus_client, which is typed otherwise
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The body and Content-Type of a `GET /metrics` answer."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def write_metrics(handler: BaseHTTPRequestHandler, registry: CollectorRegistry) -> None:
    """Answer a stdlib http.server request with the registry's metrics."""
    body, content_type = exposition(registry)
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
