"""Local stand-ins for where notifications go (§4e), speaking the real wire formats: Discord's
webhook execute (`POST /webhooks/<id>/<token>` → 204), Telegram's Bot API sendMessage
(`POST /bot<token>/sendMessage` → `{"ok": true, "result": …}`), and a generic receiver that
keeps each request's raw body and headers. Each can be told to answer 500 for a while."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from wsgiref.types import StartResponse, WSGIEnvironment

from simulators.local_servers import LocalHttpServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class NotifyReceiver(LocalHttpServer):
    """Records every POST; `fail_next(n)` makes the next n answer HTTP 500."""

    thread_name = "notify-receiver"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.received: list[Received] = []
        self.failures_left = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>; with TLS https://localhost:<port>, its certificate's name."""
        if self.ssl_context is not None:
            return f"https://localhost:{self.server_port}"
        return f"http://127.0.0.1:{self.server_port}"

    def fail_next(self, count: int) -> None:
        with self._lock:
            self.failures_left = count

    def answer(self, path: str, body: bytes) -> tuple[str, bytes]:
        """The status and body for an accepted request (the generic receiver: 200, empty)."""
        return "200 OK", b""

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        headers["Content-Type"] = str(environ.get("CONTENT_TYPE", ""))
        path = str(environ.get("PATH_INFO", ""))
        with self._lock:
            self.received.append(Received(path, headers, body))
            failing = self.failures_left > 0
            self.failures_left -= int(failing)
        if failing:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"receiver down"]
        status, answer = self.answer(path, body)
        start_response(status, [("Content-Type", "application/json")])
        return [answer]


class DiscordWebhooks(NotifyReceiver):
    """Discord's `POST /webhooks/{webhook.id}/{webhook.token}`: 204 No Content for a message with
    `content` (at most 2000 characters), 404 for a path that is not a webhook, 400 otherwise."""

    PATH = re.compile(r"^(?:/api(?:/v\d+)?)?/webhooks/(\d+)/([A-Za-z0-9_\-]+)$")

    def answer(self, path: str, body: bytes) -> tuple[str, bytes]:
        if not self.PATH.match(path):
            return "404 Not Found", b'{"message": "Unknown Webhook", "code": 10015}'
        try:
            content = json.loads(body).get("content")
        except ValueError:
            content = None
        if not isinstance(content, str) or not 0 < len(content) <= 2000:
            return "400 Bad Request", b'{"message": "Cannot send an empty message", "code": 50006}'
        return "204 No Content", b""


class TelegramBotApi(NotifyReceiver):
    """The Bot API's `POST /bot<token>/sendMessage` with `chat_id` and `text`."""

    PATH = re.compile(r"^/bot(\d+:[A-Za-z0-9_\-]+)/sendMessage$")

    def answer(self, path: str, body: bytes) -> tuple[str, bytes]:
        if not self.PATH.match(path):
            return "404 Not Found", b'{"ok": false, "error_code": 404, "description": "Not Found"}'
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        if not message.get("chat_id") or not message.get("text"):
            error = {"ok": False, "error_code": 400, "description": "Bad Request: text is empty"}
            return "400 Bad Request", json.dumps(error).encode()
        result = {"message_id": len(self.received), "chat": {"id": message["chat_id"]}}
        return "200 OK", json.dumps(
            {"ok": True, "result": {**result, "text": message["text"]}}
        ).encode()
