"""Slow and idle clients stall neither the gateway nor the UI: TradingView gives up on a webhook
after 3 s, so an alert must be answered while hundreds of connections trickle their headers or sit
idle, and a logged-in page must keep loading meanwhile."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import requests

from libs.common import recorder_tokens
from libs.common.config import Settings
from libs.common.storage.embedded import free_port
from tests.integration.service_processes import service_process
from tests.integration.test_gateway import BUY, gateway_process, signals

SLOW, IDLE = 400, 100


@contextmanager
def held_connections(base: str, slow: int, idle: int) -> Iterator[list[socket.socket]]:
    """`slow` connections sending a request's headers a byte every half second (never ending
    them) and `idle` connections that send nothing, all held open until the block ends."""
    host, port = base.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(slow + idle)]
    trickling, stop = sockets[:slow], threading.Event()
    header = (
        b"POST /webhook/" + b"x" * 40 + b" HTTP/1.1\r\nHost: gateway\r\nX-Slow: " + b"a" * 10_000
    )

    def trickle() -> None:
        for byte in (header[i : i + 1] for i in range(len(header))):
            for sock in trickling:
                with suppress(OSError):  # dropped by the server: what a deadline does
                    sock.sendall(byte)
            if stop.wait(0.5):
                return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # every slow connection has started its headers
        yield sockets
    finally:
        stop.set()
        thread.join(5)
        for sock in sockets:
            sock.close()


def test_a_webhook_is_answered_within_a_second_while_500_slow_connections_are_open(
    settings, make_recorder, redis_client, tmp_path
):
    # Given the gateway as production runs it, with 400 clients trickling headers and 100 idle
    recorder = make_recorder()
    recorder_tokens.put(redis_client, settings, recorder)
    with (
        gateway_process(settings, tmp_path) as gateway,
        held_connections(gateway.base, SLOW, IDLE),
    ):
        # When TradingView sends an alert
        answer = requests.post(
            f"{gateway.base}/webhook/{recorder.webhook_token}",
            data=json.dumps(BUY),
            headers={"Content-Type": "text/plain"},
            timeout=1,  # the one timing promise here: well inside TradingView's 3 s
        )

        # Then it is accepted at once and its signal is on the stream
        assert answer.status_code == 202
        [fields] = signals(redis_client, settings)
        assert fields["signal_id"] == answer.json()["signal_id"]


@contextmanager
def ui_process(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`python -m services.ui` as production runs it, on a free port; yields its base URL."""
    port = free_port()
    with service_process("ui", settings, tmp_path, port, {"UI_PORT": str(port)}):
        yield f"http://127.0.0.1:{port}"


def test_a_logged_in_page_loads_within_a_second_while_550_slow_connections_are_open(
    settings, alice, tmp_path
):
    # Given the UI as production runs it, with 500 clients trickling headers and 50 idle
    _user, api_key = alice
    with ui_process(settings, tmp_path) as ui, held_connections(ui, 500, 50):
        # When a logged-in user loads their recorders
        answer = requests.get(f"{ui}/api/recorders", headers=api_key, timeout=1)

        # Then the page's data arrives at once
        assert answer.status_code == 200
        assert answer.json()["ok"] is True


def test_a_client_trickling_its_body_to_the_ui_is_answered_408_and_let_go(settings, tmp_path):
    # Given the UI, and a client that sends a request's headers, then its body a byte every half
    # second (about 30 s for all of it)
    with ui_process(settings, tmp_path) as ui:
        host, port = ui.removeprefix("http://").split(":")
        body = json.dumps({"email": "a@example.com", "password": "x" * 20}).encode()
        head = (
            f"POST /login HTTP/1.1\r\nHost: ui\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(head)
            sock.setblocking(False)
            answer = b""
            for byte in (body[i : i + 1] for i in range(len(body))):
                with suppress(OSError):  # the UI has stopped reading
                    sock.sendall(byte)
                with suppress(BlockingIOError):
                    answer += sock.recv(4096)
                if answer:
                    break
                time.sleep(0.5)
            sock.settimeout(30)
            while chunk := sock.recv(4096):  # then the UI closes the connection
                answer += chunk

    # Then the UI answered 408 in the services' error shape before the body was complete
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "ok": False,
        "error": "The request body did not arrive in time.",
    }
