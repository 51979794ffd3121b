"""Fixtures of the notification tests: local Discord, Telegram and webhook receivers, a real SMTP
server (aiosmtpd), settings that point the notifier at them, and the notifier's relay and
worker run to the end (`notifier()`), as the notifier process runs them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rq.worker import SimpleWorker

from libs.common import orders, streams
from libs.common.notify import delivery
from services.notifier.relay import EventRelay
from services.ui.app import create_app
from simulators.notify_receivers import DiscordWebhooks, NotifyReceiver, TelegramBotApi

DISCORD_URL = "https://discord.com/api/webhooks/123456789012345678/" + "Tok3n_discord-" * 4
BOT_TOKEN = "987654321:AAH" + "telegramSecretToken" * 2
CHAT_ID = "-1001234567890"


class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for `name` (its own issuer, so a client can trust it alone) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Outside:
    webhook: NotifyReceiver
    discord: DiscordWebhooks
    telegram: TelegramBotApi
    mailbox: Mailbox
    smtp_port: int


@pytest.fixture
def outside() -> Iterator[Outside]:
    mailbox = Mailbox()
    port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    with NotifyReceiver() as hook, DiscordWebhooks() as discord, TelegramBotApi() as telegram:
        yield Outside(hook, discord, telegram, mailbox, port)
    smtp.stop()


@pytest.fixture
def notify_settings(settings, outside):
    return replace(
        settings,
        notify_allowed_hosts=("127.0.0.1", "localhost"),
        notify_retry_intervals=(0, 0, 0),
        notify_timeout_s=5.0,
        discord_api_url=outside.discord.url + "/api",
        telegram_api_url=outside.telegram.url,
        smtp_host="127.0.0.1",
        smtp_port=outside.smtp_port,
        smtp_from="alerts@justtrades.test",
        smtp_starttls=False,
    )


@pytest.fixture
def napp(notify_settings, sessions, redis_client):
    return create_app(notify_settings, sessions=sessions, redis_client=redis_client)


@pytest.fixture
def nclient(napp):
    return napp.test_client()


class Notifier:
    """The notifier's relay and worker, run until nothing is left (`notifier()`)."""

    def __init__(self, settings, sessions, redis_client):
        self.settings, self.redis = settings, redis_client
        self.rq = orders.rq_connection(settings.redis_url)
        self.relay = EventRelay(settings, sessions, redis_client, self.rq, "test-notifier")
        self.relay.ensure_group()
        delivery.configure(settings, sessions)

    def publish(self, event_type: str, data: dict) -> None:
        streams.publish_event(self.redis, self.settings.stream(streams.EVENTS), event_type, data)

    def __call__(self) -> None:
        while self.relay.step(block_ms=50):
            pass
        queue = delivery.notify_queue(self.rq, self.settings.stream_prefix)
        SimpleWorker(
            [queue],
            connection=self.rq,
            job_class=delivery.NotifyJob,
            serializer=delivery.JSONSerializer,
        ).work(burst=True)


@pytest.fixture
def notifier(notify_settings, sessions, redis_client) -> Notifier:
    return Notifier(notify_settings, sessions, redis_client)
