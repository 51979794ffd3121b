"""Fixtures of the integration tests: the UI app, users with API keys, a paper account, the
executor as RQ runs it, and the Tradovate broker simulator with settings that point the real
client at it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from libs.common import orders
from libs.common.security import hash_api_key, new_api_key
from libs.common.storage import db
from libs.common.storage.models import ApiKey
from services.executor.account_sync import start_account_sync
from services.executor.jobs import ExecutorContext, use_context
from services.executor.service import build_worker
from services.ui.app import create_app
from simulators.tradovate.account_socket import AccountSocketServer
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue
from tests.integration.notify_support import (  # noqa: F401 (the notification tests' fixtures)
    napp,
    nclient,
    notifier,
    notify_settings,
    outside,
)
from tests.integration.tradovate_support import (
    FRONT,
    PASSWORD,
    USER,
    Connected,
    connect_demo_account,
)
from tests.polling import wait_for

T0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def app(settings, sessions, redis_client):
    return create_app(settings, sessions=sessions, redis_client=redis_client)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_api_key(sessions):
    def make(user, revoked: bool = False) -> dict[str, str]:
        key = new_api_key()
        with db.transaction(sessions) as s:
            s.add(
                ApiKey(
                    user_id=user.id,
                    name="test",
                    prefix=key[:8],
                    key_hash=hash_api_key(key),
                    revoked_at=T0 if revoked else None,
                )
            )
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def alice(make_user, make_api_key):
    user = make_user(email="alice@example.com", password="alice pass")
    return user, make_api_key(user)


@pytest.fixture
def bob(make_user, make_api_key):
    user = make_user(email="bob@example.com")
    return user, make_api_key(user)


@pytest.fixture
def broker():
    catalogue = ContractCatalogue()
    catalogue.add(FRONT)
    with BrokerSimulator(catalogue, users={USER: PASSWORD}) as sim:
        sim.set_price(FRONT, "25640.00")
        yield sim


@pytest.fixture
def tv_settings(settings, broker):
    return replace(settings, tradovate_demo_url=broker.url, tradovate_live_url=broker.url)


@pytest.fixture
def paper(client, alice):
    """A paper account of alice's and its one subaccount."""
    account = client.post(
        "/api/accounts", json={"broker": "paper", "name": "Practice"}, headers=alice[1]
    )
    assert account.status_code == 201, account.get_json()
    return account.get_json()["subaccounts"][0]


@pytest.fixture
def executor(settings):
    """Run the executor's queued jobs to the end (`executor()`), as an RQ worker in burst mode;
    `executor.ctx` is its context."""
    ctx = ExecutorContext(settings)
    use_context(ctx)
    rq_conn = orders.rq_connection(settings.redis_url)

    def work() -> None:
        build_worker(rq_conn, settings.stream_prefix).work(burst=True)

    work.ctx, work.rq = ctx, rq_conn
    return work


# --- a Tradovate account on the simulator with the executor's account socket synced to it ------


@pytest.fixture
def sock(broker) -> Iterator[AccountSocketServer]:
    with AccountSocketServer(broker, heartbeat_interval_s=0.3, idle_timeout_s=1.5) as server:
        yield server


@pytest.fixture
def tradovate(tv_settings, sessions, alice) -> Connected:
    return connect_demo_account(tv_settings, sessions, alice[0].id)


@pytest.fixture
def ctx(tv_settings, redis_client) -> ExecutorContext:
    return ExecutorContext(tv_settings)


@pytest.fixture
def synced(ctx, sock, tradovate) -> Iterator[None]:
    from tests.integration.test_account_sync import FAST  # the suite's quick socket timings

    stop = threading.Event()
    syncer = start_account_sync(ctx, stop, socket_urls={"demo": sock.url}, timings=FAST, seed=7)
    wait_for(lambda: (s := syncer.stream(tradovate.account_id)) and s.syncs and s)
    yield
    stop.set()
    syncer.thread.join(15)
