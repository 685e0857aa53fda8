"""Htouhui's callback addresses: an optional allow-list for POST /htouhui/notify, checked before any other work.

NOTIFY_ALLOWED_CIDRS (template parameter NotifyAllowedCidrs) is a comma-separated list of networks
("203.0.113.0/24, 198.51.100.7"); empty (the default) allows every source, and the RSA signature stays the
authentication either way. The address checked is the one API Gateway reports (`requestContext.http.sourceIp`,
the TCP peer), never a header a caller can write (X-Forwarded-For). A list that does not parse allows nobody:
a typo must not silently open the route, and the refusals show in the logs and the API's 4xx.

Only the notification route uses it: the browser return comes from users' browsers, anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from onboarding.config import SETTINGS, setting

ENVIRONMENT_VARIABLE: Final = SETTINGS["notify_allowed_cidrs"].variable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowListError(ValueError):
    """The configured list is not a comma-separated list of networks."""


@lru_cache(maxsize=8)
def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list; a bare address is a /32 (or /128). Empty text: no networks."""
    networks: list[Network] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise AllowListError(f"{ENVIRONMENT_VARIABLE}: {item!r} is not an address or a network") from None
    return tuple(networks)


def is_allowed(source_ip: str | None, networks: tuple[Network, ...]) -> bool:
    """True when there is no list, or the address lies in one of its networks; a missing or bad address: False."""
    if not networks:
        return True
    if not source_ip:
        return False
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def event_source_ip(event: Mapping[str, Any]) -> str | None:
    """The caller's address as API Gateway (payload 2.0) reports it."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    source = http.get("sourceIp") if isinstance(http, Mapping) else None
    return source if isinstance(source, str) else None


def notify_source_allowed(event: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> bool:
    """The notify route's check: the event's source address against NOTIFY_ALLOWED_CIDRS (fails closed)."""
    try:
        networks = parse_networks(setting("notify_allowed_cidrs", environ))  # per call, as the environment is
    except AllowListError:
        return False
    return is_allowed(event_source_ip(event), networks)
