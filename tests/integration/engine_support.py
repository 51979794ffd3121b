"""A real position engine running in a thread, for tests of UI routes the engine answers (a
recorder deleted, its history reset). Import the fixture into a test module to use it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from libs.common import streams
from services.position_engine.engine import PositionEngine
from tests.polling import wait_for


@pytest.fixture
def running_engine(settings, sessions, redis_client) -> Iterator[PositionEngine]:
    """The engine applying entries and commands until the test ends; ready once it reads
    commands (the UI waits for its answers only then)."""
    engine = PositionEngine(settings, sessions, redis_client, consumer="engine-thread")
    stop = threading.Event()
    thread = threading.Thread(
        target=engine.run_forever, kwargs={"stop": stop.is_set}, daemon=True, name="engine"
    )
    thread.start()
    reader = settings.stream(streams.ENGINE_COMMANDS_READER)
    wait_for(lambda: redis_client.exists(reader), timeout=10, what="the engine reading commands")
    yield engine
    stop.set()
    thread.join(timeout=5)
