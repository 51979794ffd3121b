"""Where the UI's relay sends each `jt:events` entry (pure routing, no Redis)."""

from __future__ import annotations

from services.ui.live import Delivery, entry_ms, route, user_room


def test_an_event_with_a_user_goes_to_that_users_room():
    assert route("position.opened", {"id": 1, "user_id": 42}) == Delivery("user:42")
    assert user_room(42) == "user:42"


def test_feed_status_goes_to_everyone():
    assert route("price.status", {"connected": True}) == Delivery(None)


def test_an_event_whose_owner_cannot_be_told_goes_nowhere():
    for data in ({"broker_user": "x"}, {"user_id": "42"}, {"user_id": True}, [1, 2], None):
        assert route("account.alert", data).skip


def test_the_entry_id_carries_its_time():
    assert entry_ms("1795516482440-3") == 1795516482440
