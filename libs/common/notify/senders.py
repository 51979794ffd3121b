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
import urllib3

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
    _status(answer.status_code)
    return answer


def _status(code: int) -> None:
    if 300 <= code < 400:
        raise DeliveryFailed(f"HTTP {code}: redirects are not followed")
    if code >= 400:
        raise DeliveryFailed(f"HTTP {code}")


def _pool(url: str, address: str, settings: Settings) -> urllib3.HTTPConnectionPool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    timeout = urllib3.Timeout(total=settings.notify_timeout_s)
    if parts.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            parts.port or 443,
            timeout=timeout,
            retries=False,
            server_hostname=host,
            assert_hostname=host,
            ssl_context=ssl.create_default_context(),
        )
    return urllib3.HTTPConnectionPool(address, parts.port or 80, timeout=timeout, retries=False)


def post_pinned(
    settings: Settings, url: str, addresses: list[str], body: bytes, headers: dict[str, str]
) -> None:
    """POST `body` to `url` over a connection to one of `addresses` (those the address rule
    checked, tried in order), with the URL's host name for the Host header, TLS's SNI and the
    certificate check: DNS is not asked again between the check and the connection."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1]}
    error = "no address"
    for address in addresses:
        pool = _pool(url, address, settings)
        try:
            answer = pool.urlopen("POST", path, body=body, headers=headers, redirect=False)
        except urllib3.exceptions.NewConnectionError:
            error = "could not connect (NewConnectionError)"
            continue  # e.g. an IPv6 address on a host without IPv6: the next one
        except urllib3.exceptions.TimeoutError:
            raise DeliveryFailed(f"no answer within {settings.notify_timeout_s:g} s") from None
        except urllib3.exceptions.SSLError:
            raise DeliveryFailed("the TLS certificate was not accepted") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryFailed(f"could not connect ({type(exc).__name__})") from None
        finally:
            pool.close()
        _status(answer.status)
        return
    raise DeliveryFailed(error)


def send_webhook(
    settings: Settings, url: str, secret: str, event: str, data: dict[str, Any]
) -> None:
    try:
        addresses = check_host(urlsplit(url).hostname or "", settings.notify_allowed_hosts)
    except TargetRefused as exc:
        raise DeliveryFailed(str(exc)) from None
    body = webhook_body(event, data, datetime.now(UTC))
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body)}
    post_pinned(settings, url, addresses, body, headers)


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
