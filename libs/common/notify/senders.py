"""Sending one notice to one destination: a signed JSON POST, Discord's webhook, Telegram's
sendMessage or an e-mail through the operator's SMTP server. No redirect is followed, and an
error says what failed without the URL (Discord URLs and bot tokens are credentials)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

from libs.common.config import Settings
from libs.common.notify import rules
from libs.common.notify.targets import TargetRefused, check_host

SIGNATURE_HEADER = "X-JustTrades-Signature"

# urllib3 logs each request line at DEBUG, and a Discord or Telegram path is a credential: those
# lines stay out of the logs whatever LOG_LEVEL says.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)


class DeliveryFailed(Exception):
    """The destination did not take the notice; the message is safe to show and to log."""


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the raw body keyed with the destination's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(event: str, data: dict[str, Any], sent_at: datetime) -> bytes:
    sent = sent_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = {"type": event, "data": data, "sent_at": sent}
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def _post(url: str, settings: Settings, **kwargs: Any) -> requests.Response:
    try:
        answer = requests.post(
            url, timeout=settings.notify_timeout_s, allow_redirects=False, **kwargs
        )
    except requests.Timeout:
        raise DeliveryFailed(f"no answer within {settings.notify_timeout_s:g} s") from None
    except requests.RequestException as exc:
        raise DeliveryFailed(f"could not connect ({type(exc).__name__})") from None
    if 300 <= answer.status_code < 400:
        raise DeliveryFailed(f"HTTP {answer.status_code}: redirects are not followed")
    if answer.status_code >= 400:
        raise DeliveryFailed(f"HTTP {answer.status_code}")
    return answer


def send_webhook(
    settings: Settings, url: str, secret: str, event: str, data: dict[str, Any]
) -> None:
    try:
        check_host(urlsplit(url).hostname or "", settings.notify_allowed_hosts)
    except TargetRefused as exc:
        raise DeliveryFailed(str(exc)) from None
    body = webhook_body(event, data, datetime.now(UTC))
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body)}
    _post(url, settings, data=body, headers=headers)


def send_discord(settings: Settings, target: dict[str, str], text: str) -> None:
    url = f"{settings.discord_api_url}/webhooks/{target['id']}/{target['token']}"
    _post(url, settings, json={"content": text[:2000], "allowed_mentions": {"parse": []}})


def send_telegram(settings: Settings, target: dict[str, str], text: str) -> None:
    url = f"{settings.telegram_api_url}/bot{target['bot_token']}/sendMessage"
    answer = _post(url, settings, json={"chat_id": target["chat_id"], "text": text[:4096]})
    try:
        ok = answer.json().get("ok") is True
    except ValueError:
        ok = False
    if not ok:
        raise DeliveryFailed("Telegram did not accept the message")


def send_email(settings: Settings, to: str, subject: str, text: str) -> None:
    if not settings.smtp_host or not settings.smtp_from:
        raise DeliveryFailed("no SMTP server is set up (SMTP_HOST, SMTP_FROM)")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.smtp_from, to, subject
    message.set_content(text)
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_s
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"the SMTP server answered {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP failed ({type(exc).__name__})") from None


def send(
    settings: Settings,
    kind: str,
    target: dict[str, str],
    secret: str | None,
    event: str,
    data: dict[str, Any],
) -> None:
    """Deliver one notice; DeliveryFailed says why not."""
    text = rules.message_text(event, data)
    if kind == "webhook":
        send_webhook(settings, target["url"], secret or "", event, data)
    elif kind == "discord":
        send_discord(settings, target, f"**{rules.title(event)}**\n{text}")
    elif kind == "telegram":
        send_telegram(settings, target, f"{rules.title(event)}\n{text}")
    elif kind == "email":
        send_email(settings, target["to"], rules.title(event), text)
    else:
        raise DeliveryFailed(f"unknown destination kind {kind!r}")
