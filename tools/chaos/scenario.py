"""What a chaos run trades with, set up the way a user would: a user and API key from the CLI, a
Tradovate demo account connected through the API, recorders with different rules (two with a
take-profit and stop-loss in ticks), and traders that copy two of them onto the broker simulator."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import requests

from libs.common.config import PROJECT_ROOT
from tools.chaos.cluster import APP_ID, BROKER_PASSWORD, BROKER_USER, CID, SEC, Cluster
from tools.chaos.flow import Target

EMAIL, PASSWORD = "chaos@example.com", "chaos-user-password"
UI_BACK_S = 30.0  # how long the risk change waits for a UI a fault just killed
# name, root, recorder fields, traded on the broker simulator
RECORDERS: tuple[tuple[str, str, dict[str, object], bool], ...] = (
    ("MNQ reverse", "MNQ", {}, True),
    ("MES close on opposite", "MES", {"on_opposite": "close"}, True),
    ("NQ no DCA", "NQ", {"allow_dca": False}, False),
    ("ES reverse, qty 2", "ES", {"default_qty": 2}, False),
    # traded on the same subaccount as "MNQ reverse": two strategies share MNQ there (§4b)
    ("MNQ close, no DCA", "MNQ", {"on_opposite": "close", "allow_dca": False}, True),
    ("MES reverse", "MES", {}, False),
    ("MNQ TP 12 SL 8", "MNQ", {"tp_ticks": 12, "sl_ticks": 8}, False),
    (
        "ES TP 6 SL 10, close on opposite",
        "ES",
        {"tp_ticks": 6, "sl_ticks": 10, "on_opposite": "close"},
        False,
    ),
    (  # an exit plan (docs/contract.md §3b): three legs, break-even and a trailing stop
        "MNQ plan, 3 legs",
        "MNQ",
        {
            "default_qty": 3,
            "exits": {
                "stop": {"ticks": 16},
                "targets": [{"ticks": 8, "qty": 1}, {"ticks": 16, "qty": 1}, {"ticks": 32}],
                "breakeven": {"trigger": {"ticks": 6}, "offset": {"ticks": 1}},
                "trail": {"trigger": {"ticks": 10}, "distance": {"ticks": 6}},
            },
        },
        False,
    ),
    (
        "MES plan in points and dollars",
        "MES",
        {
            "default_qty": 2,
            "exits": {
                "stop": {"usd": 25},
                "targets": [{"points": 2, "qty": 1}, {"points": 4}],
                "trail": {"trigger": {"points": 1.5}, "distance": {"points": 1}},
            },
        },
        False,
    ),
)


class SetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Scenario:
    api_key: str
    targets: list[Target]
    traded: list[Target]  # the recorders a trader copies onto `subaccount`
    subaccount_id: int
    broker_account_id: int


def _cli(cluster: Cluster, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=PROJECT_ROOT,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SetupError(f"justtrades {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def _post(cluster: Cluster, key: str, path: str, body: dict[str, object]) -> dict[str, Any]:
    response = requests.post(
        cluster.url("ui") + path, json=body, timeout=30, headers={"Authorization": f"Bearer {key}"}
    )
    if response.status_code not in (200, 201):
        raise SetupError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
    created: dict[str, Any] = response.json()
    return created


def set_up(cluster: Cluster) -> Scenario:
    _cli(cluster, "user", "create", EMAIL, "--password", PASSWORD)
    key = _cli(cluster, "apikey", "create", EMAIL)
    account = _post(
        cluster,
        key,
        "/api/accounts",
        {
            "broker": "tradovate",
            "environment": "demo",
            "username": BROKER_USER,
            "password": BROKER_PASSWORD,
            "app_id": APP_ID,
            "cid": CID,
            "sec": SEC,
        },
    )
    subaccount = account["subaccounts"][0]
    targets, traded = [], []
    for name, root, fields, is_traded in RECORDERS:
        recorder = _post(cluster, key, "/api/recorders", {"name": name, **fields})
        target = Target(
            recorder["id"], f"{cluster.url('gateway')}/webhook/{recorder['webhook_token']}", root
        )
        targets.append(target)
        if is_traded:
            _post(
                cluster,
                key,
                "/api/traders",
                {"recorder_id": recorder["id"], "subaccount_id": subaccount["id"]},
            )
            traded.append(target)
    return Scenario(key, targets, traded, subaccount["id"], int(subaccount["broker_account_id"]))


def lock_by_risk(cluster: Cluster, scenario: Scenario) -> str:
    """A daily loss limit and a daily profit target of one cent on the traded subaccount: whichever
    way its day has gone, the risk desk locks and flattens it at the next fill or tick (§4c);
    entries stop, exits of what it held are not sent. (A loss limit alone waits for the day's net
    to turn negative, which a run whose day is up by more than the rest of the run loses never
    sees.)"""
    deadline = time.monotonic() + UI_BACK_S
    while True:  # the UI may have just been killed: ask again once it is back, as a user would
        try:
            response = requests.put(
                f"{cluster.url('ui')}/api/subaccounts/{scenario.subaccount_id}/risk",
                json={"daily_loss_limit": 0.01, "daily_profit_target": 0.01},
                timeout=30,
                headers={"Authorization": f"Bearer {scenario.api_key}"},
            )
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if response.status_code != 200:
        raise SetupError(f"PUT risk answered {response.status_code}: {response.text[:300]}")
    return (
        "risk desk: a daily loss limit and profit target of $0.01 on the traded subaccount "
        "(locks and flattens it)"
    )
