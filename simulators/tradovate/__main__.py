"""`python -m simulators.tradovate`: a local Tradovate (live and demo REST, market-data socket) with
a demo user and moving prices, to run Just Trades against without a Tradovate account."""

from __future__ import annotations

import argparse
import random
import threading
from datetime import UTC, datetime
from decimal import Decimal

from libs.common.futures.instruments import contract_spec
from simulators.tradovate.account_socket import AccountSocketServer
from simulators.tradovate.broker import BrokerSimulator
from simulators.tradovate.contracts import ContractCatalogue
from simulators.tradovate.market_data import MarketDataServer

DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"
APP_ID, CID, SEC = "JustTrades", 1234, "sim-api-secret"
OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET = "jt-oauth-client", "jt-oauth-secret"
START_PRICES = {
    "MNQ": Decimal("21000"),
    "NQ": Decimal("21000"),
    "MES": Decimal("6000"),
    "ES": Decimal("6000"),
}


def random_walk(
    catalogue: ContractCatalogue,
    brokers: list[BrokerSimulator],
    md: MarketDataServer,
    stop: threading.Event,
    interval_s: float = 1.0,
) -> None:
    """Every root moves a few ticks a step; all its listed months trade at the same price."""
    prices = dict(START_PRICES)
    while not stop.wait(interval_s):
        trades: dict[str, Decimal] = {}
        for root, price in prices.items():
            prices[root] = price + contract_spec(root).tick_size * random.randint(-4, 4)
            for contract in catalogue.suggest(root, 100):
                if contract.root == root:
                    trades[contract.name] = prices[root]
        for broker in brokers:
            for name, price in trades.items():
                broker.set_price(name, price)
        md.set_trades(trades)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-port", type=int, default=8770, help="demo REST (and OAuth page)")
    parser.add_argument("--live-port", type=int, default=8771, help="live REST")
    parser.add_argument("--md-port", type=int, default=8772, help="market-data WebSocket")
    parser.add_argument("--demo-ws-port", type=int, default=8773, help="demo account WebSocket")
    parser.add_argument("--live-ws-port", type=int, default=8774, help="live account WebSocket")
    parser.add_argument("--token-ttl", type=float, default=5400.0, help="seconds a token lives")
    parser.add_argument("--live-locked", action="store_true", help="live answers 429 to all")
    args = parser.parse_args(argv)
    catalogue = ContractCatalogue.standard(datetime.now(UTC).date())
    users = {DEMO_USER: DEMO_PASSWORD}
    common = {
        "users": users,
        "app_id": APP_ID,
        "cid": CID,
        "sec": SEC,
        "oauth_clients": {OAUTH_CLIENT_ID: OAUTH_CLIENT_SECRET},
        "token_ttl_s": args.token_ttl,
    }
    demo = BrokerSimulator(catalogue, environment="demo", port=args.demo_port, **common).start()
    live = BrokerSimulator(catalogue, environment="live", port=args.live_port, **common).start()
    if args.live_locked:
        live.lock_out(10 * 365 * 86400)
    md = MarketDataServer(
        catalogue, lambda t: demo.md_token_valid(t) or live.md_token_valid(t), port=args.md_port
    ).start()
    demo_ws = AccountSocketServer(demo, port=args.demo_ws_port).start()
    live_ws = AccountSocketServer(live, port=args.live_ws_port).start()
    account = demo.book.accounts_of(DEMO_USER)[0].name
    print(
        "A local Tradovate is running. Start Just Trades against it with:\n"
        f"  TRADOVATE_LIVE_URL={live.url} TRADOVATE_DEMO_URL={demo.url} \\\n"
        f"  TRADOVATE_MD_URL={md.url} TRADOVATE_OAUTH_URL={demo.root_url}/oauth \\\n"
        f"  TRADOVATE_DEMO_WS_URL={demo_ws.url} TRADOVATE_LIVE_WS_URL={live_ws.url}\n"
        f"Demo user: name={DEMO_USER} password={DEMO_PASSWORD} (account {account}),\n"
        f"  API key appId={APP_ID} cid={CID} sec={SEC}\n"
        f"OAuth client: client_id={OAUTH_CLIENT_ID} client_secret={OAUTH_CLIENT_SECRET}\n"
        "The consent page approves at once. Its codes are the demo host's, so an exchange on\n"
        "live fails and falls back to demo, as for a prop-firm user. Ctrl-C stops it.",
        flush=True,
    )
    stop = threading.Event()
    try:
        random_walk(catalogue, [demo, live], md, stop)
    except KeyboardInterrupt:
        pass
    finally:
        live_ws.stop()
        demo_ws.stop()
        md.stop()
        live.stop()
        demo.stop()


if __name__ == "__main__":
    main()
