"""Price feed (placeholder until the live-prices issue): will publish quotes to `jt:ticks`."""
