"""Position engine: all trading decisions, from `jt:signals` and `jt:ticks` to PostgreSQL."""
