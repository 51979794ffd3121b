"""Executor: RQ workers that send order intents to the broker (paper or Tradovate), in order,
at most once."""
