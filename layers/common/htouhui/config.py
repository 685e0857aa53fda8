"""Every setting, read once from the environment and validated, with one clear message per problem.

Keys are named by a *key source*: inline PEM or base64 DER, `file:PATH`, `secretsmanager:NAME` or
`ssm:NAME` (SecureString). Secret stores are read through Powertools Parameters, cached for
`KEY_CACHE_SECONDS`, and only when a function first needs a key, so cold starts stay short and
functions that never sign never call Secrets Manager.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, ENVIRONMENTS, ClientOptions, RetryPolicy, Timeouts
from htouhui.models import is_loopback_host
from htouhui.schedule import DEFAULT_LADDER, DEFAULT_SHARDS, parse_ladder

logger = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """The configuration is incomplete or inconsistent; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Keys:
    merchant_private: protocol.PrivateKey
    htouhui_public: tuple[protocol.PublicKey, ...]


@dataclass(frozen=True)
class Settings:
    partner_id: str
    client: ClientOptions
    merchant_private_key_source: str
    htouhui_public_key_sources: tuple[str, ...]
    allowed_return_hosts: frozenset[str]
    public_base_url: str | None
    frontend_return_url: str | None
    users_table: str | None
    key_cache_seconds: int
    notifications_table: str | None = None
    event_bus_name: str | None = None
    # reconciliation (htouhui.schedule, docs/state-and-rules.md): the ladder in seconds from the anchor, the
    # due-time index's shards, the query budget over all workers, and the worker slots that share it (the
    # MaximumConcurrency of the scheduled and of the CheckUserStatus queue's event source mappings).
    reconcile_ladder: tuple[int, ...] = parse_ladder(DEFAULT_LADDER)
    reconcile_shards: int = DEFAULT_SHARDS
    reconcile_rate_budget: float = 50.0
    reconcile_workers: int = 23
    reconcile_priority_workers: int = 2
    reconcile_queue_url: str | None = None
    # what was loaded, by kind ("keys", "htouhui"): (monotonic time of the load, value)
    _loaded: dict[str, tuple[float, Any]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def number(name: str, default: float, low: float, high: float, *, whole: bool = False) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(int(raw)) if whole else float(raw)
            except ValueError:
                problems.append(f"{name} must be {'a whole number' if whole else 'a number'}, got {raw!r}")
                return default
            if not low <= value <= high:
                problems.append(f"{name} must be between {low:g} and {high:g}, got {raw}")
                return default
            return value

        partner_id = text("HTOUHUI_PARTNER_ID")
        if partner_id is None:
            problems.append("HTOUHUI_PARTNER_ID is required: the merchant number Htouhui issued")
        elif len(partner_id) > 32:
            problems.append("HTOUHUI_PARTNER_ID must be at most 32 characters")

        base_url = text("HTOUHUI_BASE_URL")
        environment = text("HTOUHUI_ENV", "uat") or "uat"
        if base_url is None:
            if environment not in ENVIRONMENTS:
                problems.append(f"HTOUHUI_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
            base_url = ENVIRONMENTS.get(environment, ENVIRONMENTS["uat"])
        elif not _is_acceptable_url(base_url):
            problems.append("HTOUHUI_BASE_URL must be an https URL (plain http only for a loopback host)")

        query_path = text("HTOUHUI_QUERY_PATH", DEFAULT_QUERY_PATH) or DEFAULT_QUERY_PATH
        if not query_path.startswith("/"):
            problems.append("HTOUHUI_QUERY_PATH must start with '/'")

        merchant_source = text("MERCHANT_PRIVATE_KEY")
        if merchant_source is None:
            problems.append("MERCHANT_PRIVATE_KEY is required: inline PEM, file:, secretsmanager: or ssm:")
        htouhui_sources = tuple(
            source for source in (text("HTOUHUI_PUBLIC_KEY"), text("HTOUHUI_PUBLIC_KEY_NEXT")) if source
        )
        if not htouhui_sources:
            problems.append("HTOUHUI_PUBLIC_KEY is required: inline PEM, file:, secretsmanager: or ssm:")

        public_base_url = text("PUBLIC_BASE_URL")
        if public_base_url is not None and not _is_acceptable_url(public_base_url):
            problems.append("PUBLIC_BASE_URL must be an https URL (plain http only for a loopback host)")
        frontend_return_url = text("FRONTEND_RETURN_URL")
        if frontend_return_url is not None and not _is_acceptable_url(frontend_return_url):
            problems.append("FRONTEND_RETURN_URL must be an https URL (plain http only for a loopback host)")

        hosts = frozenset(
            host.strip().lower() for host in (text("ALLOWED_RETURN_HOSTS") or "").split(",") if host.strip()
        )

        timeouts = Timeouts(
            connect=number("HTOUHUI_CONNECT_TIMEOUT", 2.0, 0.05, 30),
            read=number("HTOUHUI_READ_TIMEOUT", 5.0, 0.05, 60),
        )
        retry = RetryPolicy(
            max_attempts=int(number("HTOUHUI_MAX_ATTEMPTS", 3, 1, 10, whole=True)),
            total_seconds=number("HTOUHUI_RETRY_SECONDS", 12.0, 0.1, 300),
        )
        key_cache_seconds = int(number("KEY_CACHE_SECONDS", 300, 0, 86400, whole=True))
        ladder_text = text("RECONCILE_LADDER", DEFAULT_LADDER) or DEFAULT_LADDER
        try:
            reconcile_ladder = parse_ladder(ladder_text)
        except ValueError as exc:
            problems.append(f"RECONCILE_LADDER must be comma-separated offsets like {DEFAULT_LADDER!r}: {exc}")
            reconcile_ladder = parse_ladder(DEFAULT_LADDER)
        reconcile_shards = int(number("RECONCILE_SHARDS", DEFAULT_SHARDS, 1, 100, whole=True))
        reconcile_rate_budget = number("RECONCILE_RATE_BUDGET", 50.0, 0.01, 10000)
        reconcile_workers = int(number("RECONCILE_WORKERS", 23, 1, 1000, whole=True))
        reconcile_priority_workers = int(number("RECONCILE_PRIORITY_WORKERS", 2, 1, 1000, whole=True))

        if problems:
            raise ConfigError(problems)
        assert partner_id is not None and merchant_source is not None
        return cls(
            partner_id=partner_id,
            client=ClientOptions(partner_id, base_url, query_path, timeouts, retry),
            merchant_private_key_source=merchant_source,
            htouhui_public_key_sources=htouhui_sources,
            allowed_return_hosts=hosts,
            public_base_url=public_base_url.rstrip("/") if public_base_url else None,
            frontend_return_url=frontend_return_url,
            users_table=text("USERS_TABLE"),
            key_cache_seconds=key_cache_seconds,
            notifications_table=text("NOTIFICATIONS_TABLE"),
            event_bus_name=text("EVENT_BUS_NAME"),
            reconcile_ladder=reconcile_ladder,
            reconcile_shards=reconcile_shards,
            reconcile_rate_budget=reconcile_rate_budget,
            reconcile_workers=reconcile_workers,
            reconcile_priority_workers=reconcile_priority_workers,
            reconcile_queue_url=text("RECONCILE_QUEUE_URL"),
        )

    def keys(self, *, clock: Callable[[], float] = time.monotonic) -> Keys:
        """The merchant's private key and Htouhui's public key(s): what signing a request needs."""
        keys: Keys = self._cached("keys", self._load_keys, clock)
        return keys

    def htouhui_public_keys(self, *, clock: Callable[[], float] = time.monotonic) -> tuple[protocol.PublicKey, ...]:
        """Only Htouhui's public key(s): what verifying a notification needs (the merchant's secret is not read)."""
        keys: tuple[protocol.PublicKey, ...] = self._cached("htouhui", self._load_htouhui_keys, clock)
        return keys

    def _cached(self, kind: str, load: Callable[[], Any], clock: Callable[[], float]) -> Any:
        """Loaded on first use and reloaded once older than KEY_CACHE_SECONDS, so a rotation in Secrets
        Manager or SSM reaches warm functions too. If a reload fails, what was loaded before stays in use
        (and a warning names the problem) rather than failing every request.
        """
        with self._lock:
            now = clock()
            previous = self._loaded.get(kind)
            if previous and now - previous[0] < self.key_cache_seconds:
                return previous[1]
            try:
                value = load()
            except ConfigError as exc:
                if previous is None:
                    raise
                logger.warning(
                    "reloading the keys failed; keeping the keys loaded before", extra={"problems": exc.problems}
                )
                self._loaded[kind] = (now, previous[1])
                return previous[1]
            # Timed from the end of the load, so Powertools' own cache (same max age) has expired at the next one.
            self._loaded[kind] = (clock(), value)
            return value

    def _load_keys(self) -> Keys:
        problems: list[str] = []
        merchant: protocol.PrivateKey | None = None
        try:
            merchant = protocol.load_private_key(read_key_source(self.merchant_private_key_source, self))
        except (ValueError, OSError) as exc:
            problems.append(f"MERCHANT_PRIVATE_KEY: {exc}")
        htouhui = self._read_htouhui_keys(problems)
        if merchant is not None:
            own = protocol.fingerprint(merchant)
            if any(protocol.fingerprint(key) == own for key in htouhui):
                problems.append(
                    "HTOUHUI_PUBLIC_KEY is the merchant's own public key: configure the key Htouhui gave you"
                )
        if problems or merchant is None:
            raise ConfigError(problems)
        return Keys(merchant, htouhui)

    def _load_htouhui_keys(self) -> tuple[protocol.PublicKey, ...]:
        problems: list[str] = []
        htouhui = self._read_htouhui_keys(problems)
        if problems:
            raise ConfigError(problems)
        return htouhui

    def _read_htouhui_keys(self, problems: list[str]) -> tuple[protocol.PublicKey, ...]:
        keys: list[protocol.PublicKey] = []
        names = ("HTOUHUI_PUBLIC_KEY", "HTOUHUI_PUBLIC_KEY_NEXT")
        for name, source in zip(names, self.htouhui_public_key_sources, strict=False):
            try:
                keys.append(protocol.load_public_key(read_key_source(source, self)))
            except (ValueError, OSError) as exc:
                problems.append(f"{name}: {exc}")
        return tuple(keys)

    def is_allowed_return_url(self, url: str, *, own_host: str | None = None) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        allowed = set(self.allowed_return_hosts)
        if own_host:
            allowed.add(own_host.lower())
        if self.public_base_url:
            allowed.add((urlsplit(self.public_base_url).hostname or "").lower())
        return bool(host) and host in allowed and _is_acceptable_url(url)


class KeySourceError(ValueError):
    """The place a key source names could not be read; the message names the place, never key text."""


def read_key_source(source: str, settings: Settings | None = None) -> str:
    """The key text a source names: inline, `file:PATH`, `secretsmanager:NAME` or `ssm:NAME`."""
    max_age = settings.key_cache_seconds if settings else 300
    if source.startswith("file:"):
        path = Path(source.removeprefix("file:"))
        try:
            return path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeySourceError(f"cannot read key file {path}: {type(exc).__name__}") from None
    for prefix in ("secretsmanager:", "ssm:"):
        if source.startswith(prefix):
            return _read_secret_store(prefix, source.removeprefix(prefix), max_age)
    return source


def _read_secret_store(prefix: str, name: str, max_age: int) -> str:
    from aws_lambda_powertools.utilities import parameters  # only functions that use it pay for it

    try:
        if prefix == "ssm:":
            value = parameters.get_parameter(name, decrypt=True, max_age=max_age)
        else:
            value = parameters.get_secret(name, max_age=max_age)
    except Exception as exc:  # GetParameterError, or botocore's own (no region, no credentials): say which store
        cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
        raise KeySourceError(f"cannot read {prefix}{name}: {cause}") from None
    if isinstance(value, bytes):  # a SecretBinary
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise KeySourceError(f"{prefix}{name} holds binary data that is not a PEM or base64 key") from None
    return str(value)


def _is_acceptable_url(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)))
