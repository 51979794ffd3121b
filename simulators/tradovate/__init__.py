"""A local Tradovate: REST API and account socket (`broker`, `account_socket`), market-data socket
(`market_data`), contract catalogue (`contracts`); each piece starts on its own for tests."""
