"""What a webhook request must pass before its body is read: source address, token shape, rate."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import redis

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Tokens are `secrets.token_hex`; anything else cannot be one, so it never reaches Redis.
_TOKEN = re.compile(r"[0-9A-Za-z_-]{1,64}")


def parse_allowlist(entries: Iterable[str]) -> tuple[Network, ...]:
    """`WEBHOOK_IP_ALLOWLIST` entries as networks; a single address is a /32 (or /128)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"WEBHOOK_IP_ALLOWLIST entry {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def source_address(
    remote_addr: str | None, forwarded_for: list[str], trust_proxy: bool
) -> str | None:
    """The sender: the socket peer or, behind our own proxy, the last hop that proxy appended.

    Earlier X-Forwarded-For hops are written by the client and prove nothing.
    """
    if trust_proxy:
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        if hops and hops[-1]:
            return hops[-1]
    return remote_addr


def address_allowed(address: str | None, allowlist: tuple[Network, ...]) -> bool:
    if not allowlist:
        return True
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in allowlist)


def well_formed_token(token: str) -> bool:
    return _TOKEN.fullmatch(token) is not None


def within_rate_limit(client: redis.Redis, key: str, limit: int, window_s: int) -> bool:
    """Count one signal in the token's fixed window `key`; False once it holds `limit` already."""
    pipe = client.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, window_s + 1)  # the key outlives its window by a second, then Redis drops it
    count, _ = pipe.execute()
    return int(count) <= limit
