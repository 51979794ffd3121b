"""Runs the executor as a process: an RQ worker (no fork per job), the sweep, the paper brackets."""

from __future__ import annotations

import logging
import os
import socket
import threading

from rq import Queue
from rq.worker import SimpleWorker

from libs.common import orders
from libs.common.config import Settings
from services.executor.account_sync import start_account_sync
from services.executor.jobs import ExecutorContext, use_context
from services.executor.upkeep import PaperBracketWatcher, run_sweeper

log = logging.getLogger("executor")


def run(settings: Settings) -> None:
    ctx = ExecutorContext(settings)
    use_context(ctx)
    rq_conn = orders.rq_connection(settings.redis_url)
    stop = threading.Event()
    name = f"{socket.gethostname()}-{os.getpid()}"
    threading.Thread(target=run_sweeper, args=(ctx, rq_conn, stop), daemon=True, name="sweeper").start()
    start_account_sync(ctx, stop)  # fills, risk status and reconciliation from Tradovate's sockets
    watcher = PaperBracketWatcher(ctx, name)
    threading.Thread(target=watcher.run, args=(stop,), daemon=True, name="paper-brackets").start()
    queues = [Queue(settings.stream_prefix + q, connection=rq_conn) for q in orders.QUEUES]
    # SimpleWorker runs jobs in this process: a fork per job would cost ~25 ms on every order.
    worker = SimpleWorker(queues, connection=rq_conn, name=f"executor-{name}")
    log.info("executor starting", extra={"kv": {"queues": ",".join(q.name for q in queues)}})
    try:
        worker.work(with_scheduler=False, logging_level=settings.log_level)
    finally:
        stop.set()
        log.info("executor stopped")
