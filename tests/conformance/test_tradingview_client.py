"""`@mathieuc/tradingview` 3.5.2, the most used third-party TradingView socket client, against the
TradingView simulator: what it asks for, the simulator must answer as TradingView does.

How the client reaches the simulator without touching the machine:
- The client insists on `https://www.tradingview.com/` (the page with the auth token) and
  `wss://data.tradingview.com/socket.io/websocket`. The simulator's site and quote socket serve
  TLS on 127.0.0.1 with a certificate for `tradingview.com` and `*.tradingview.com`, signed by a
  CA generated for this test run (tests/conformance/tls_support.py).
- Node trusts that CA through NODE_EXTRA_CA_CERTS, and `node --require hosts.js` wraps
  `tls.connect` in that one Node process so that those names go to 127.0.0.1 and the simulator's
  ports (TV_SIM_PORTS) while the TLS server name stays the real one; `dns.lookup` of any other
  TradingView name answers 127.0.0.1, so nothing leaves the machine.
- tradingview/client.js drives the client through its documented API and prints one JSON object
  of what it saw; the client itself is installed by `make test` (`npm ci` in
  tests/conformance/tradingview, pinned by its package-lock.json).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from simulators.tradingview.http import SiteServer
from simulators.tradingview.market import Market
from simulators.tradingview.quote_server import QuoteServer
from simulators.tradingview.tokens import make_jwt
from tests.conformance.tls_support import local_ca

HERE = Path(__file__).parent / "tradingview"
MNQ = "CME_MINI:MNQ1!"
SESSIONID, SIGN = "conformance-sessionid", "conformance-sign"

# What the client asks for (its 'all' field list) that a futures quote can honestly carry.
ANSWERED_FIELDS = {
    "lp", "lp_time", "ch", "chp", "volume", "ask", "bid", "open_price", "high_price", "low_price",
    "prev_close_price", "current_session", "update_mode", "original_name", "pro_name",
    "short_name", "exchange", "description", "local_description", "type", "pricescale",
    "minmov", "minmove2", "fractional", "currency_code", "timezone",
}  # fmt: skip


@dataclass
class Simulator:
    market: Market
    token: str
    ca: Path
    ports: dict[str, int]

    def run(
        self,
        *args: str,
        signed_in: bool = False,
        timeout_s: float = 10,
        extra_env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run client.js with `args`; its JSON output."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "NODE_EXTRA_CA_CERTS": str(self.ca),
            "TV_SIM_PORTS": json.dumps(self.ports),
            "TV_CONFORMANCE_TIMEOUT_MS": str(int(timeout_s * 1000)),
        }  # no proxy variables: axios would send the site request to a proxy
        if signed_in:
            env |= {"TV_SESSIONID": SESSIONID, "TV_SIGNATURE": SIGN}
        env |= extra_env or {}
        done = subprocess.run(
            [NODE, "--require", "./hosts.js", "client.js", *args],
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s + 20,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])


NODE = shutil.which("node") or "node"


@pytest.fixture(scope="module", autouse=True)
def client_installed() -> None:
    # `make test` puts it there; a missing package is a failure, not a skip.
    assert (HERE / "node_modules/@mathieuc/tradingview/package.json").exists(), (
        "run `make test`, which installs it (npm ci in tests/conformance/tradingview)"
    )


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    market = Market()
    market.list(MNQ, "21034.25", "Micro E-mini Nasdaq-100 Futures")
    token = make_jwt(7, 2_000_000_000)
    market.add_account(SESSIONID, token, 3600, SIGN)
    ca, context = local_ca(tmp_path, ["tradingview.com", "*.tradingview.com"])
    site, quotes = SiteServer(market), QuoteServer(market, heartbeat_interval_s=1.0)
    site.ssl_context = quotes.ssl_context = context
    with site, quotes:
        socket_port = urlsplit(quotes.url).port
        host_ports = {"www": site.server_port, "data": socket_port, "prodata": socket_port}
        ports = {f"{host}.tradingview.com": port for host, port in host_ports.items()}
        ports["tradingview.com"] = site.server_port
        yield Simulator(market, token, ca, ports)


@pytest.fixture
def trading(simulator: Simulator) -> Iterator[None]:
    """MNQ trades a tick higher every 50 ms while the client runs, so updates keep coming."""
    stop = threading.Event()

    def walk() -> None:
        while not stop.wait(0.05):
            listing = simulator.market.get(MNQ)
            assert listing is not None
            simulator.market.set_price(MNQ, listing.price + Decimal("0.25"))

    thread = threading.Thread(target=walk, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(2)


def test_the_home_page_gives_the_client_the_accounts_auth_token(simulator):
    seen = simulator.run("user", signed_in=True)

    assert seen["errors"] == []
    assert seen["user"] == {"id": "7", "username": "trader7", "authToken": simulator.token}


@pytest.mark.usefixtures("trading")
def test_anonymous_quotes_carry_every_field_the_simulator_can_compute(simulator):
    seen = simulator.run("quotes", MNQ)

    assert seen["errors"] == [] and not seen["timedOut"]
    snapshot = seen["snapshot"]
    assert set(snapshot) >= ANSWERED_FIELDS, ANSWERED_FIELDS - set(snapshot)
    assert snapshot["update_mode"] == "delayed_streaming_600"
    assert snapshot["original_name"] == "CME_MINI_DL:MNQ1!" and snapshot["pro_name"] == MNQ
    assert snapshot["open_price"] == 21034.25
    assert snapshot["prev_close_price"] == 21034.25  # the listing's price when it was listed
    assert snapshot["low_price"] <= snapshot["lp"] <= snapshot["high_price"]
    latest = seen["latest"]
    assert latest["lp"] > snapshot["lp"] and latest["high_price"] == latest["lp"]


@pytest.mark.usefixtures("trading")
def test_a_signed_in_client_gets_real_time_quotes(simulator):
    seen = simulator.run("quotes", MNQ, signed_in=True)

    assert seen["errors"] == [] and not seen["timedOut"]
    assert seen["snapshot"]["update_mode"] == "streaming"
    assert seen["snapshot"]["original_name"] == MNQ
    assert seen["latest"]["lp"] > seen["snapshot"]["lp"]


@pytest.mark.usefixtures("trading")
def test_a_chart_gets_its_bars_then_live_updates_of_the_last_one(simulator):
    seen = simulator.run("chart", MNQ, "1", "10")

    assert seen["errors"] == [] and not seen["timedOut"]
    assert seen["symbol"]["pro_name"] == MNQ and seen["symbol"]["pricescale"] == 100
    first, latest = seen["first"], seen["latest"]
    assert 1 <= len(first) <= 10  # the minutes since the listing, newest first
    assert all(bar["time"] % 60 == 0 for bar in first)
    assert first[-1]["open"] == 21034.25  # the listing's first trade opens the oldest bar
    for bar in first + latest:
        assert bar["min"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"])
        assert max(bar["open"], bar["close"]) <= bar["max"]
    assert latest[0]["close"] > first[0]["close"]  # MNQ only goes up while the chart is open


def test_an_unknown_symbol_gives_the_clients_market_error(simulator):
    seen = simulator.run("quotes", "CME_MINI:XYZ1!")

    [error] = seen["errors"]
    assert error[0] == "Market error"
    assert error[1][1]["s"] == "error"


def test_an_unknown_chart_symbol_gives_the_clients_symbol_error(simulator):
    seen = simulator.run("chart", "CME_MINI:XYZ1!", "1", "10")

    assert seen["errors"] == [["(ser_1) Symbol error:", "invalid symbol"]]


def test_a_password_sign_in_gives_the_client_a_session_the_site_knows(simulator):
    simulator.market.add_user("plainuser", "plain-password-1", None, user_id=9)
    seen = simulator.run(
        "login", extra_env={"TV_USERNAME": "plainuser", "TV_PASSWORD": "plain-password-1"}
    )
    assert seen["errors"] == [] and not seen["timedOut"], seen
    user = seen["user"]
    account = simulator.market.accounts[user["session"]]
    assert (user["id"], user["username"]) == (9, "plainuser")
    assert user["signature"] == account.sessionid_sign and user["authToken"] == account.token


def test_a_two_factor_account_stops_the_client_at_the_sites_2fa_required(simulator):
    simulator.market.add_user("tfauser", "tfa-password-1", "JBSWY3DPEHPK3PXP", user_id=10)
    seen = simulator.run(
        "login", extra_env={"TV_USERNAME": "tfauser", "TV_PASSWORD": "tfa-password-1"}
    )
    assert seen["errors"] == [["loginUser", "2FA_required"]], seen
