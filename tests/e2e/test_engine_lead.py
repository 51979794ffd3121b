"""One engine applies entries at a time (docs/architecture.md, "The engine's guarantees"): a
standby takes over when the active engine
loses the leader lock, as a PostgreSQL restart or a dropped connection makes it, and the engine
that lost the lock stops applying at once instead of running beside the new leader."""

from __future__ import annotations

import subprocess
import sys

import requests
from sqlalchemy import text

from libs.common.storage.db import ENGINE_LEADER_LOCK as LEADER_LOCK  # partition 0
from libs.common.storage.embedded import free_port
from tests.e2e.conftest import PROJECT_ROOT


def engine_health(port: int) -> dict | None:
    """The engine's /healthz body (200 when active, 503 as a standby); None before it answers."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
    except requests.RequestException:
        return None


def active(port: int) -> bool:
    return bool((engine_health(port) or {}).get("active"))


def test_an_engine_that_loses_the_leader_lock_stands_by_and_the_standby_takes_over(
    stack, api, engine, eventually, tmp_path
):
    # Given the stack's engine, active, and a second copy started beside it as a standby
    first, second = stack.ports["engine"], free_port()
    log = (tmp_path / "second-engine.log").open("wb")
    standby = subprocess.Popen(
        [sys.executable, "-m", "services.position_engine"],
        cwd=PROJECT_ROOT,
        env={**stack.env, "ENGINE_PORT": str(second)},
        stdout=log,
        stderr=log,
    )
    try:
        eventually(lambda: engine_health(second), "the second engine to answer", timeout=45)
        assert active(first) and not active(second)

        # When the active engine's lock connection is cut
        with engine.connect() as conn:
            cut = (
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks"
                        " WHERE locktype = 'advisory' AND objid = :k AND granted"
                    ),
                    {"k": LEADER_LOCK},
                )
                .scalars()
                .all()
            )
            conn.commit()
        assert cut == [True]

        # Then the first engine stands by and the second becomes the active one
        eventually(lambda: not active(first), "the first engine to stand by", timeout=5)
        eventually(lambda: active(second), "the second engine to take over", timeout=10)
        assert not active(first)

        # And signals are applied, by the new leader only
        recorder = api.create_recorder(name="After the handover")
        url = api.ok(f"/api/recorders/{recorder['id']}/webhook")["webhook_url"]
        sent = []
        for price in ("25600", "25601", "25602"):
            answer = requests.post(
                url, json={"action": "buy", "ticker": "MNQ1!", "price": price}, timeout=5
            )
            assert answer.status_code == 202, answer.text
            sent.append(answer.json()["signal_id"])
        assert [api.settled_signal(s)["status"] for s in sent] == ["applied"] * 3
        [position] = api.positions(recorder["id"], status="open")
        assert (position["side"], position["quantity"]) == ("long", 3)
        assert not any(signal_id in stack.log("engine") for signal_id in sent)

        # And when the new leader stops, the first engine takes the lead back
        standby.terminate()
        standby.wait(timeout=15)
        eventually(lambda: active(first), "the first engine to take the lead back", timeout=10)
    finally:
        if standby.poll() is None:
            standby.kill()
            standby.wait()
        log.close()
