"""TradingView as a price source: the quote WebSocket, the auth token from session cookies, and
the scanner used as the polling fallback (docs/outside/tradingview.md B–D)."""
