"""The notifier (§4e): tells users of the events they chose, off the trading path."""
