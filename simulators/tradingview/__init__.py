"""A local TradingView: the quote WebSocket, the site's home page (cookies → auth token) and the
scanner, all answering from one `Market` so the socket and the polling fallback agree."""
