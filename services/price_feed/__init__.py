"""Price feed: quotes from TradingView, Tradovate, the scanner, a simulator or a replay, to
`jt:ticks`."""
