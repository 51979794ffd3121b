"""A local Tradovate: the contract catalogue with its REST lookups (`contracts`) and the
market-data WebSocket (`market_data`); each piece starts on its own so more can be added beside."""
