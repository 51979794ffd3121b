"""Runs the executor as a process: an RQ worker (no fork per job), the sweep, the paper brackets,
the risk desk, the copy keeper, and `GET /metrics` on EXECUTOR_METRICS_PORT."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

from libs.common import orders
from libs.common.config import Settings
from libs.common.metrics import ScrapeCollector, limiter_account_labels
from libs.common.status_server import metrics_route, start_status_server
from services.executor.account_sync import start_account_sync
from services.executor.copy_keeper import run_copy_keeper
from services.executor.jobs import ExecutorContext, use_context
from services.executor.limiter import BrokerLimiter
from services.executor.risk_desk import run_risk_desk
from services.executor.sender import ORDERS
from services.executor.upkeep import PaperBracketWatcher, run_sweeper

log = logging.getLogger("executor")


def limiter_users(limiter: BrokerLimiter) -> list[str]:
    """Broker users with limiter keys in Redis: those seen by any executor, not only this one."""
    prefix = limiter.key("", "")[: -len("::")] + ":"  # `<stream prefix>limiter:`
    users = {
        key[len(prefix) :].rsplit(":", 1)[0]
        for key in limiter.client.scan_iter(prefix + "*", count=500)
    }
    return sorted(users)


def limiter_metrics(limiter: BrokerLimiter, labels: dict[str, str]) -> Iterator[Metric]:
    """The limiter's figures per broker login, labelled with our account id (`labels`, from
    libs.common.metrics.limiter_account_labels), never the broker's user id. A login no account
    of ours uses any more is left out."""
    used = GaugeMetricFamily(
        "jt_limiter_requests_used",
        "Requests counted in the current window.",
        labels=["account", "window"],
    )
    left = GaugeMetricFamily(
        "jt_limiter_tokens_left",
        "Requests the account's broker login may still make this minute.",
        labels=["account"],
    )
    paused = GaugeMetricFamily(
        "jt_limiter_paused", "1 while the login's requests are paused.", labels=["account"]
    )
    penalties = CounterMetricFamily(
        "jt_limiter_penalties", "Penalty answers from the broker.", labels=["account"]
    )
    for user in limiter_users(limiter):
        account = labels.get(user)
        if account is None:
            continue
        usage = limiter.usage(user)
        used.add_metric([account, "minute"], usage.minute_used)
        used.add_metric([account, "hour"], usage.hour_used)
        used.add_metric([account, "background"], usage.background_used)
        left.add_metric([account], max(0, usage.per_minute - usage.minute_used))
        paused.add_metric([account], int(usage.paused_reason is not None))
        penalties.add_metric([account], usage.penalties)
    yield from (used, left, paused, penalties)


def _limiter_metrics(ctx: ExecutorContext) -> Iterator[Metric]:
    with ctx.sessions() as session:
        labels = limiter_account_labels(session)
    return limiter_metrics(ctx.limiter, labels)


def executor_registry(ctx: ExecutorContext) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ORDERS)
    registry.register(ScrapeCollector(lambda: _limiter_metrics(ctx), "limiter usage"))
    return registry


def start_metrics_server(port: int, ctx: ExecutorContext) -> ThreadingHTTPServer:
    routes = {"/metrics": metrics_route(executor_registry(ctx))}
    return start_status_server(port, routes, "executor-metrics", ctx.settings.internal_host)


def serve_metrics(settings: Settings, ctx: ExecutorContext) -> ThreadingHTTPServer | None:
    """Bind the first free port of EXECUTOR_METRICS_PORT and the next `executor_workers - 1`.

    `justtrades run` starts several executors with the same settings: the first gets 8086, the
    next 8087 and so on. Metrics never stop orders: with every port taken the worker runs without.
    """
    first = settings.executor_metrics_first
    for port in range(first, first + max(1, settings.executor_workers)):
        try:
            server = start_metrics_server(port, ctx)
        except OSError:
            continue
        log.info("executor metrics", extra={"kv": {"port": port}})
        return server
    log.warning("executor metrics not served: ports taken", extra={"kv": {"first_port": first}})
    return None


def build_worker(rq_conn: redis.Redis, prefix: str, name: str | None = None) -> SimpleWorker:
    """The RQ worker of the executor's queues: JSON jobs, and only the drain job runs (OrderJob
    refuses any other function or a callback, whatever the queue holds).

    SimpleWorker runs jobs in this process: a fork per job would cost ~25 ms on every order.
    """
    return SimpleWorker(
        orders.order_queues(rq_conn, prefix),
        connection=rq_conn,
        name=name,
        job_class=orders.OrderJob,
        serializer=JSONSerializer,
    )


def run(settings: Settings) -> None:
    ctx = ExecutorContext(settings)
    use_context(ctx)
    rq_conn = orders.rq_connection(settings.queue_url)
    stop = threading.Event()
    name = f"{socket.gethostname()}-{os.getpid()}"
    threading.Thread(
        target=run_sweeper, args=(ctx, rq_conn, stop), daemon=True, name="sweeper"
    ).start()
    start_account_sync(ctx, stop)  # fills, risk status and reconciliation from Tradovate's sockets
    if settings.executor_metrics_port:
        serve_metrics(settings, ctx)
    watcher = PaperBracketWatcher(ctx, name)
    threading.Thread(target=watcher.run, args=(stop,), daemon=True, name="paper-brackets").start()
    threading.Thread(
        target=run_risk_desk, args=(ctx, rq_conn, stop), daemon=True, name="risk-desk"
    ).start()
    threading.Thread(target=run_copy_keeper, args=(ctx, rq_conn, stop), daemon=True).start()
    worker = build_worker(rq_conn, settings.stream_prefix, name=f"executor-{name}")
    log.info("executor starting", extra={"kv": {"queues": ",".join(q.name for q in worker.queues)}})
    try:
        worker.work(with_scheduler=False, logging_level=settings.log_level)
    finally:
        stop.set()
        log.info("executor stopped")
