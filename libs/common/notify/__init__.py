"""Notifications (§4e): which platform events a user may hear of, where they are sent, and the
queue that sends them, shared by the UI (destinations, the test button) and the notifier."""
