"""`python -m simulators.tradingview`: a local TradingView (site, scanner and quote socket) to run
the real price-feed client against, with a signed-in demo account and moving prices."""

from __future__ import annotations

import argparse
import threading
import time

from simulators.tradingview.http import SiteServer
from simulators.tradingview.quote_server import QuoteServer, demo_market, random_walk
from simulators.tradingview.tokens import make_jwt

DEMO_SESSIONID = "demo-sessionid"
DEMO_SIGN = "demo-sign"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--site-port", type=int, default=8766, help="site and scanner (HTTP)")
    parser.add_argument("--quote-port", type=int, default=8765, help="quote WebSocket")
    parser.add_argument("--token-ttl", type=int, default=4 * 3600, help="seconds a token lives")
    args = parser.parse_args(argv)
    market = demo_market(history_s=6 * 3600)
    token = make_jwt(1, int(time.time()) + args.token_ttl)
    market.add_account(DEMO_SESSIONID, token, args.token_ttl, DEMO_SIGN)
    site = SiteServer(market, port=args.site_port).start()
    quotes = QuoteServer(market, port=args.quote_port).start()
    print(
        "A local TradingView is running. Start Just Trades against it with:\n"
        f"  TRADINGVIEW_URL={site.url} TRADINGVIEW_SCANNER_URL={site.url} \\\n"
        f"  TRADINGVIEW_WS_URL={quotes.url} PRICE_SOURCE=tradingview make run\n"
        "Without stored cookies its quotes are delayed; for real time, store the demo cookies:\n"
        f'  {{"sessionid": "{DEMO_SESSIONID}", "sessionid_sign": "{DEMO_SIGN}"}}\n'
        "  (POST /api/tradingview/session). Ctrl-C stops it.",
        flush=True,
    )
    stop = threading.Event()
    try:
        random_walk(market, stop)
    except KeyboardInterrupt:
        pass
    finally:
        quotes.stop()
        site.stop()


if __name__ == "__main__":
    main()
