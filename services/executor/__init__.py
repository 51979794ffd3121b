"""Executor (placeholder until the execution issue): will send order intents to the broker."""
