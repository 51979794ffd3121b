"""Destinations' targets: read and checked from what a user typed, masked for display, and the
address rule (no private, loopback, link-local, multicast or reserved address unless the operator
lists the host in NOTIFY_ALLOWED_HOSTS), applied when a destination is made and before each send.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KINDS = ("webhook", "discord", "telegram", "email")

Resolver = Callable[[str], list[str]]


class TargetRefused(ValueError):
    """A target that is not of its kind's form, or names an address we must not call."""


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (an address literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"the host {host!r} does not resolve") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # the system's order


def forbidden_address(address: str) -> str | None:
    """Why the server must not call `address` (private, loopback, …), or None for a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for what, flagged in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private or not ip.is_global),
    ):
        if flagged:
            return what
    return None


def check_host(host: str, allowed: Iterable[str], resolver: Resolver = resolve) -> list[str]:
    """The addresses `host` resolves to, refused if any is one the server must not call, unless
    the host is allowed. A sender connects to one of these, so DNS cannot change in between."""
    host = host.lower().strip("[]")
    addresses = resolver(host)
    if host in {h.strip("[]") for h in allowed}:
        return addresses
    for address in addresses:
        why = forbidden_address(address)
        if why is not None:
            raise TargetRefused(
                f"the host {host} resolves to a {why} address ({address}); an operator can "
                "allow it with NOTIFY_ALLOWED_HOSTS"
            )
    return addresses


@dataclass(frozen=True)
class Target:
    """A destination's target as stored (sealed, as JSON) and what the API shows of it."""

    value: dict[str, str]
    masked: str


def _text(raw: Any, what: str, limit: int = 2000) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > limit:
        raise TargetRefused(f"target {what} must be text of 1 to {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise TargetRefused(f"target {what} must not contain control characters")
    return raw.strip()


def webhook_target(raw: Any, allowed: Iterable[str], resolver: Resolver = resolve) -> Target:
    url = _text(raw, "(the webhook URL)")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise TargetRefused("target must be an https:// URL")
    if parts.username or parts.password:
        raise TargetRefused("target must not carry a user name or password")
    allowed = tuple(allowed)
    if parts.scheme == "http" and host not in allowed:
        raise TargetRefused("target must be an https:// URL (http only for NOTIFY_ALLOWED_HOSTS)")
    check_host(host, allowed, resolver)
    port = f":{parts.port}" if parts.port else ""
    return Target({"url": url}, f"{parts.scheme}://{host}{port}/…")


DISCORD_PATH = re.compile(r"/webhooks/(\d{5,25})/([A-Za-z0-9_\-]{20,100})/?$")


def discord_target(raw: Any) -> Target:
    """A Discord webhook URL as Discord shows it (https://discord.com/api/webhooks/<id>/<token>);
    only the id and token are kept: the send goes to DISCORD_API_URL, never to a typed host."""
    url = _text(raw, "(the Discord webhook URL)")
    match = DISCORD_PATH.search(urlsplit(url).path)
    if match is None:
        raise TargetRefused(
            "target must be a Discord webhook URL (…/api/webhooks/<id>/<token>, as Discord "
            "shows it under Integrations → Webhooks)"
        )
    webhook_id, token = match.groups()
    return Target({"id": webhook_id, "token": token}, f"Discord webhook …{webhook_id[-4:]}")


BOT_TOKEN = re.compile(r"^\d{3,20}:[A-Za-z0-9_\-]{20,100}$")
CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z0-9_]{4,64})$")


def telegram_target(raw: Any) -> Target:
    if not isinstance(raw, dict) or set(raw) != {"bot_token", "chat_id"}:
        raise TargetRefused("target must be an object {bot_token, chat_id}")
    token = _text(raw["bot_token"], "bot_token", 200)
    chat = _text(
        str(raw["chat_id"]) if isinstance(raw["chat_id"], int) else raw["chat_id"], "chat_id", 80
    )
    if not BOT_TOKEN.match(token):
        raise TargetRefused("target bot_token must be a token from @BotFather (123456:ABC…)")
    if not CHAT_ID.match(chat):
        raise TargetRefused("target chat_id must be a chat id (a number) or @channel name")
    return Target({"bot_token": token, "chat_id": chat}, f"bot …{token[-4:]} → chat {chat}")


EMAIL = re.compile(r"^[^@\s<>,;\"']{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63}$")


def email_target(raw: Any) -> Target:
    if not isinstance(raw, dict) or set(raw) != {"to"}:
        raise TargetRefused("target must be an object {to}")
    to = _text(raw["to"], "to", 254)
    if not EMAIL.match(to):
        raise TargetRefused("target to must be one e-mail address")
    return Target({"to": to}, to)


def read_target(
    kind: str, raw: Any, allowed: Iterable[str], resolver: Resolver = resolve
) -> Target:
    """The target of a new destination of `kind`, checked; TargetRefused says what is wrong."""
    if kind == "webhook":
        return webhook_target(raw, allowed, resolver)
    if kind == "discord":
        return discord_target(raw)
    if kind == "telegram":
        return telegram_target(raw)
    if kind == "email":
        return email_target(raw)
    raise TargetRefused(f"kind must be one of {', '.join(KINDS)}")
