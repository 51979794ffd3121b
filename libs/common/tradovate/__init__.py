"""Everything the services share about Tradovate: the REST client, the account and token store,
and the WebSocket frames."""
