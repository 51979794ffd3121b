"""TradingView as a price source: the quote WebSocket, the auth token from session cookies, and
the scanner used as the polling fallback (reference/tradingview.md B–D)."""
