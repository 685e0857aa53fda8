"""What configures the Htouhui client, and the record of one call: plain dataclasses, no httpx, no pydantic.

`htouhui.client` re-exports every name here. Settings (onboarding.config) and the metrics (onboarding.observability)
import this module, so a function that never calls Htouhui (the reconciliation dispatcher) does not pay for the
client's models at its cold start.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Final

from htouhui import protocol

ENVIRONMENTS: Final = {
    "uat": "https://new-uat.test.htouhui.com",
    "stage": "https://stage.htouhui.com",
    "prod": "https://www.htouhui.com",
}
REGISTER_PATH: Final = "/openapi/user/register"
OPEN_ACCOUNT_PATH: Final = "/openapi/user/openAccount"
DEFAULT_QUERY_PATH: Final = "/openapi/user/query"
LOOPBACK_HOSTS: Final = frozenset({"localhost"})


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Timeouts:
    connect: float = 2.0
    read: float = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` calls, and no new attempt that would start after `total_seconds`."""

    max_attempts: int = 3
    total_seconds: float = 12.0
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff after the given (1-based) attempt."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class ClientOptions:
    partner_id: str
    base_url: str
    query_path: str = DEFAULT_QUERY_PATH
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    profile: protocol.Profile = protocol.DEFAULT

    @property
    def open_account_url(self) -> str:
        return self.base_url.rstrip("/") + OPEN_ACCOUNT_PATH


@dataclass(frozen=True)
class CallRecord:
    """One attempt, for metrics and logs: no field values, only what happened."""

    interface: str
    attempt: int
    seconds: float
    outcome: str  # a result code, "http_5xx", "timeout", "connection", "signature", "unreadable"
