"""Gateway: the public webhook endpoint; authenticates, validates and publishes to `jt:signals`."""
