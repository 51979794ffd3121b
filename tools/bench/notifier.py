"""The notifier beside the trading path: a `python -m services.notifier` process and a webhook
destination of the bench user that asks for every event, delivered to a local receiver. The
signal → position and signal → order figures are measured once without it and once with it, in
the same run, so their ratio shows whether notifications weigh on the trading path (§4e)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from libs.common.config import Settings
from libs.common.notify.rules import EVENTS
from libs.common.notify.targets import read_target
from libs.common.security import SecretBox
from libs.common.storage import db
from libs.common.storage.models import NotificationDestination
from simulators.notify_receivers import NotifyReceiver
from tools.bench.processes import service_env, stop_process

RECEIVER_HOST = "127.0.0.1"


def _add_destination(
    settings: Settings, sessions: sessionmaker[Session], user_id: int, url: str
) -> None:
    target = read_target("webhook", url, (RECEIVER_HOST,))
    box = SecretBox(settings.encryption_key)
    with db.transaction(sessions) as s:
        s.add(
            NotificationDestination(
                user_id=user_id,
                kind="webhook",
                target_sealed=box.encrypt(json.dumps(target.value)),
                target_masked=target.masked,
                secret_sealed=box.encrypt(secrets.token_hex(32)),
                events=list(EVENTS),
                enabled=True,
                deliveries_ok=0,
                deliveries_failed=0,
            )
        )


@contextmanager
def notifier_running(
    settings: Settings, sessions: sessionmaker[Session], user_id: int
) -> Iterator[NotifyReceiver]:
    """Until the block ends: the notifier process, and a destination of `user_id` for every
    event; yields the receiver, which counts what was delivered."""
    receiver = NotifyReceiver().start()
    _add_destination(settings, sessions, user_id, f"{receiver.url}/bench")
    env = service_env(settings, NOTIFY_ALLOWED_HOSTS=RECEIVER_HOST)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.notifier"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2.0)  # the relay has made its group and reads before the first figure
        yield receiver
    finally:
        stop_process(process)
        receiver.stop()
