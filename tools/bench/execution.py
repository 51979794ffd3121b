"""Execution figures: signal → order accepted by the Tradovate simulator, and the limiter's
utilisation during a burst, both through a real `justtrades executor` process."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from libs.common import orders, streams
from libs.common.events import ORDER_ACCEPTED
from libs.common.futures.exchange_calendar import trade_date
from libs.common.futures.rolls import front_contract
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import Account, Trader
from libs.common.tradovate.accounts import (
    login,
    new_credentials,
    seal_credentials,
    store_token,
    sync_subaccounts,
)
from services.executor.limiter import BrokerLimiter
from simulators.tradovate.account_socket import AccountSocketServer
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue
from tools.bench.notifier import notifier_running
from tools.bench.processes import engine_process, mnq_signal, service_env, stop_process
from tools.bench.table import Rounds

if TYPE_CHECKING:
    from tools.bench.core import Bench

USER, PASSWORD = "bench", "bench password"


class ExecutionBench:
    def __init__(self, bench: Bench):
        self.bench = bench
        self.settings = bench.settings
        self.front = front_contract("MNQ", trade_date(datetime.now(UTC)))

    def _simulator(self, rate_limit_per_minute: int | None = None) -> BrokerSimulator:
        catalogue = ContractCatalogue()
        catalogue.add(self.front)
        sim = BrokerSimulator(
            catalogue, users={USER: PASSWORD}, rate_limit_per_minute=rate_limit_per_minute
        ).start()
        sim.set_price(self.front, "25640.00")
        return sim

    def _connect(self, sim: BrokerSimulator, recorder_id: int, user_id: int) -> int:
        """A Tradovate account of the bench user on the simulator, linked to the recorder."""
        settings = self.settings
        creds = new_credentials(USER, PASSWORD, "JustTrades", "1.0", "1234", "sim-api-secret")
        client, token = login(replace(settings, tradovate_demo_url=sim.url), "demo", creds)
        box = SecretBox(settings.encryption_key)
        with db.transaction(self.bench.sessions) as s:
            account = Account(
                user_id=user_id,
                broker="tradovate",
                name="bench",
                environment="demo",
                auth_method="credentials",
                credentials_encrypted=seal_credentials(box, creds),
            )
            store_token(box, account, token)
            s.add(account)
            s.flush()
            sync_subaccounts(s, account, client)
            s.flush()
            subaccount_id = account.subaccounts[0].id
            s.add(Trader(user_id=user_id, recorder_id=recorder_id, subaccount_id=subaccount_id))
        return subaccount_id

    def _executor(
        self, sim: BrokerSimulator, per_minute: int, account_socket: str | None = None
    ) -> subprocess.Popen[bytes]:
        """The executor process; with `account_socket` (the simulator's account WebSocket) it
        learns of fills as on Tradovate, and publishes `order.filled`."""
        sockets = (
            {}
            if account_socket is None
            else {
                "TRADOVATE_DEMO_WS_URL": account_socket,
                "TRADOVATE_LIVE_WS_URL": account_socket,
            }
        )
        env = service_env(
            self.settings,
            TRADOVATE_DEMO_URL=sim.url,
            TRADOVATE_LIVE_URL=sim.url,
            TRADOVATE_RATE_LIMIT_PER_MIN=str(per_minute),
            **sockets,
        )
        return subprocess.Popen(
            [sys.executable, "-m", "services.executor"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def signal_to_order(self) -> None:
        """Measured alone, then with the notifier running and a destination for every event
        (each fill is a notification)."""
        bench = self.bench
        [recorder] = bench.make_recorders(1, tp_ticks=40)
        sim = self._simulator()
        account_socket = AccountSocketServer(sim).start()  # fills, so fill notifications
        self._connect(sim, recorder.id, recorder.user_id)
        # Room in the limiter: latency only.
        executor = self._executor(sim, per_minute=1_000_000, account_socket=account_socket.url)
        try:
            with engine_process(self.settings):
                alone = self._signals_to_orders(recorder.id)
                with notifier_running(self.settings, bench.sessions, recorder.user_id) as receiver:
                    notified = self._signals_to_orders(recorder.id)
        finally:
            stop_process(executor)
            account_socket.stop()
            sim.stop()
        bench.add_with_notifier(
            "Signal on stream -> order accepted by the Tradovate simulator, p50 / p99",
            50,
            "engine + RQ + executor process + HTTP",
            alone,
            notified,
            len(receiver.received),
        )

    def _signals_to_orders(self, recorder_id: int) -> Rounds:
        """Entries and closes in turn, each timed until its order is accepted; the warm-up round
        warms the executor (connections, contract lookup) and is not counted."""
        bench = self.bench
        events = self.settings.stream(streams.EVENTS)
        last = bench.mark(events)

        def measure(count: int) -> list[float]:
            nonlocal last
            lat = []
            for i in range(count):  # even: an entry and its close, the position flat after
                msg = mnq_signal(recorder_id, "buy" if i % 2 == 0 else "close", "25640")
                t = time.perf_counter()
                streams.add(bench.redis, self.settings.stream(streams.SIGNALS), msg.to_fields())
                last = bench._wait_type(events, last, ORDER_ACCEPTED)
                lat.append((time.perf_counter() - t) * 1000)
            return lat

        return bench.rounds(lambda count: measure(count + count % 2), 200)

    def burst_utilisation(
        self, per_minute: int = 60, burst: int = 100, watch_s: float = 8.0
    ) -> None:
        """A burst larger than the budget: how much of the minute's budget goes out, penalties."""
        bench = self.bench
        bench.clean_streams()  # the latency run filled this broker user's windows
        [recorder] = bench.make_recorders(1)
        sim = self._simulator(rate_limit_per_minute=80)  # the broker penalizes above 80 a minute
        subaccount_id = self._connect(sim, recorder.id, recorder.user_id)
        time.sleep(1.0)  # the connect's own requests are not part of the burst
        started = time.time()
        with db.transaction(bench.sessions) as s:
            rows = []
            for _ in range(burst):
                rows.append(
                    orders.new_intent(
                        user_id=recorder.user_id,
                        subaccount_id=subaccount_id,
                        source="manual",
                        kind="entry",
                        symbol="MNQ",
                        ticker=self.front,
                        side="buy",
                        quantity=Decimal(1),
                        priority="entry",
                    )
                )
            s.add_all(rows)
        orders.enqueue(
            orders.rq_connection(self.settings.queue_url),
            self.settings.stream_prefix,
            [orders.QueuedIntent(r.id, r.subaccount_id, r.priority) for r in rows],
        )
        executor = self._executor(sim, per_minute=per_minute)
        try:
            time.sleep(watch_s)
        finally:
            stop_process(executor)
        sent = [t for t, _ in sim.requests_per_user.get(USER, []) if t >= started]
        user = f"tradovate:demo:{sim.user_ids[USER]}"
        penalties = BrokerLimiter(bench.redis, self.settings.stream_prefix).usage(user).penalties
        sim.stop()
        bench.add(
            f"Limiter during a burst of {burst} orders, budget {per_minute}/min",
            f"{len(sent)} of {per_minute} sent ({len(sent) / per_minute:.0%})",
            "no penalty answer",
            penalties == 0,
            f"{penalties} penalty answers; 5 slots stay reserved for exits, the rest waits",
            numbers={"sent": len(sent), "budget": per_minute, "penalties": penalties},
        )
