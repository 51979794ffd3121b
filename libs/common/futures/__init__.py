"""Futures facts as pure code: the contract table, the exchange calendar, expiries and rolls."""
