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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from htouhui import protocol
from htouhui.options import DEFAULT_QUERY_PATH, ENVIRONMENTS, ClientOptions, RetryPolicy, Timeouts, is_loopback_host
from onboarding.schedule import DEFAULT_LADDER, DEFAULT_SHARDS, parse_ladder

logger = logging.getLogger(__name__)


class ConfigError(RuntimeError):
    """The configuration is incomplete or inconsistent; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


# --- the settings, declared: one line per environment variable ----------------------------------------------

KEY_SOURCES: Final = "inline PEM, file:, secretsmanager: or ssm:"
HTTPS_URL: Final = "must be an https URL (plain http only for a loopback host)"


def _https_url(value: str) -> str:
    if not is_acceptable_url(value):
        raise ValueError(HTTPS_URL)
    return value


def _at_most(length: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(value) > length:
            raise ValueError(f"must be at most {length} characters")
        return value

    return check


def _one_of(choices: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(choices)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    return check


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with '/'")
    return value


def _number(low: float, high: float, *, whole: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(int(raw)) if whole else float(raw)
        except ValueError:
            raise ValueError(f"must be {'a whole number' if whole else 'a number'}, got {raw!r}") from None
        if not low <= value <= high:  # NaN fails here too
            raise ValueError(f"must be between {low:g} and {high:g}, got {raw}")
        return int(value) if whole else value

    return parse


def _hosts(value: str) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in value.split(",") if host.strip())


def _ladder(text: str) -> tuple[int, ...]:
    try:
        return parse_ladder(text)
    except ValueError as exc:
        raise ValueError(f"must be comma-separated offsets like {DEFAULT_LADDER!r}: {exc}") from None


def _profile(reference: str) -> protocol.Profile:
    try:
        return load_profile_setting(reference)
    except (ValueError, OSError) as exc:
        raise ValueError(f": {exc}") from None


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, how it is read (raising ValueError with the rule), its default,
    and, when it is required, what it must hold (said when it is missing)."""

    variable: str
    read: Callable[[str], Any] = str
    default: Any = None
    required: str | None = None
    # Read on its own by the module named here (`setting(key)`), not with Settings.from_env: read at import time,
    # or before the settings can be valid, or where a bad value must fail one route closed rather than every
    # function (the reader keeps its own rule and error).
    alone: str | None = None


def _true(value: str) -> bool:
    return value.lower() == "true"


SETTINGS: Final[dict[str, Setting]] = {
    "partner": Setting("HTOUHUI_PARTNER_ID", _at_most(32), required="the merchant number Htouhui issued"),
    "environment": Setting("HTOUHUI_ENV", _one_of(ENVIRONMENTS), "uat"),
    "base_url": Setting("HTOUHUI_BASE_URL", _https_url),  # None: the address of HTOUHUI_ENV
    "query_path": Setting("HTOUHUI_QUERY_PATH", _path, DEFAULT_QUERY_PATH),
    "profile": Setting("HTOUHUI_PROFILE", _profile, protocol.DEFAULT),
    "merchant_key": Setting("MERCHANT_PRIVATE_KEY", required=KEY_SOURCES),
    "htouhui_key": Setting("HTOUHUI_PUBLIC_KEY", required=KEY_SOURCES),
    "htouhui_key_next": Setting("HTOUHUI_PUBLIC_KEY_NEXT"),
    "public_base_url": Setting("PUBLIC_BASE_URL", _https_url),
    "frontend_return_url": Setting("FRONTEND_RETURN_URL", _https_url),
    "allowed_return_hosts": Setting("ALLOWED_RETURN_HOSTS", _hosts, frozenset()),
    "connect_timeout": Setting("HTOUHUI_CONNECT_TIMEOUT", _number(0.05, 30), 2.0),
    "read_timeout": Setting("HTOUHUI_READ_TIMEOUT", _number(0.05, 60), 5.0),
    "max_attempts": Setting("HTOUHUI_MAX_ATTEMPTS", _number(1, 10, whole=True), 3),
    "retry_seconds": Setting("HTOUHUI_RETRY_SECONDS", _number(0.1, 300), 12.0),
    "key_cache_seconds": Setting("KEY_CACHE_SECONDS", _number(0, 86400, whole=True), 300),
    "reconcile_ladder": Setting("RECONCILE_LADDER", _ladder, parse_ladder(DEFAULT_LADDER)),
    "reconcile_shards": Setting("RECONCILE_SHARDS", _number(1, 100, whole=True), DEFAULT_SHARDS),
    "reconcile_rate_budget": Setting("RECONCILE_RATE_BUDGET", _number(0.01, 10000), 50.0),
    "reconcile_workers": Setting("RECONCILE_WORKERS", _number(1, 1000, whole=True), 23),
    "reconcile_priority_workers": Setting("RECONCILE_PRIORITY_WORKERS", _number(1, 1000, whole=True), 2),
    "reconcile_queue_url": Setting("RECONCILE_QUEUE_URL"),
    # GET ?refresh=true: its own query budget beside reconciliation's, counted in the refresh budget table
    "refresh_rate_budget": Setting("REFRESH_RATE_BUDGET", _number(0.01, 10000), 5.0),
    "refresh_budget_table": Setting("REFRESH_BUDGET_TABLE"),
    "users_table": Setting("USERS_TABLE"),
    "notifications_table": Setting("NOTIFICATIONS_TABLE"),
    # read on their own (Setting.alone): by the module named, when it needs them
    "event_bus_name": Setting("EVENT_BUS_NAME", default="default", alone="functions/publish_status"),
    "notification_history_days": Setting("NOTIFICATION_HISTORY_DAYS", default="", alone="retention (its rule)"),
    "notify_allowed_cidrs": Setting("NOTIFY_ALLOWED_CIDRS", default="", alone="source_ip (fails closed)"),
    "export_bucket": Setting("EXPORT_BUCKET", alone="runtime.data_rights (no Htouhui settings needed)"),
    "export_kms_key": Setting("EXPORT_KMS_KEY", alone="runtime.data_rights (no Htouhui settings needed)"),
    "prime_htouhui_keys": Setting("PRIME_HTOUHUI_KEYS", _true, False, alone="ops.priming, at snapshot"),
    "initialization_type": Setting("AWS_LAMBDA_INITIALIZATION_TYPE", alone="ops.priming, at import"),
    "service_name": Setting("POWERTOOLS_SERVICE_NAME", default="htouhui-onboarding", alone="observability, at import"),
    "metrics_namespace": Setting("POWERTOOLS_METRICS_NAMESPACE", default="Htouhui", alone="observability, at import"),
}
# AWS_REGION, AWS_ENDPOINT_URL*, POWERTOOLS_LOG_LEVEL and the other Powertools and botocore variables are read by
# boto3 and Powertools themselves, never by the layer.


def environ() -> Mapping[str, str]:
    """The process environment: the one place in layers/ and functions/ that touches os.environ
    (tests/unit/test_one_configuration.py holds it). A live view, not a copy: settings read on their own are
    read per call, as before, so a test's or a runtime's change of the environment is seen."""
    return os.environ


_environ = environ


def setting(key: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting of SETTINGS read on its own: its default when unset or blank, else its `read` of the stripped
    text (whose ValueError, with the reader's own message, is raised as it is)."""
    declared = SETTINGS[key]
    raw = (_environ() if environ is None else environ).get(declared.variable, "").strip()
    return declared.read(raw) if raw else declared.default


def read_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every setting of SETTINGS by its key; ConfigError with one message per broken setting, all at once."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, declared in SETTINGS.items():
        if declared.alone:
            continue
        raw = environ.get(declared.variable, "").strip()
        if not raw:
            if declared.required:
                problems.append(f"{declared.variable} is required: {declared.required}")
            values[key] = declared.default
            continue
        try:
            values[key] = declared.read(raw)
        except ValueError as exc:
            rule = str(exc)
            problems.append(f"{declared.variable}{rule}" if rule.startswith(":") else f"{declared.variable} {rule}")
            values[key] = declared.default
    if problems:
        raise ConfigError(problems)
    return values


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
    # reconciliation (htouhui.schedule, docs/state-and-rules.md): the ladder in seconds from the anchor, the
    # due-time index's shards, the query budget over all workers, and the worker slots that share it (the
    # MaximumConcurrency of the scheduled and of the CheckUserStatus queue's event source mappings).
    reconcile_ladder: tuple[int, ...] = parse_ladder(DEFAULT_LADDER)
    reconcile_shards: int = DEFAULT_SHARDS
    reconcile_rate_budget: float = 50.0
    reconcile_workers: int = 23
    reconcile_priority_workers: int = 2
    reconcile_queue_url: str | None = None
    # GET ?refresh=true (onboarding.refresh): queries per second over all query_user instances, counted in a table
    # of per-second windows; Htouhui's query interface sees at most reconcile_rate_budget + refresh_rate_budget.
    refresh_rate_budget: float = 5.0
    refresh_budget_table: str | None = None
    # what was loaded, by kind ("keys", "htouhui"): (monotonic time of the load, value)
    _loaded: dict[str, tuple[float, Any]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of SETTINGS read from the environment; ConfigError lists every problem at once."""
        value = read_settings(_environ() if environ is None else environ)
        base_url = value["base_url"] or ENVIRONMENTS[value["environment"]]
        timeouts = Timeouts(connect=value["connect_timeout"], read=value["read_timeout"])
        retry = RetryPolicy(max_attempts=value["max_attempts"], total_seconds=value["retry_seconds"])
        keys = tuple(source for source in (value["htouhui_key"], value["htouhui_key_next"]) if source)
        return cls(
            partner_id=value["partner"],
            client=ClientOptions(value["partner"], base_url, value["query_path"], timeouts, retry, value["profile"]),
            merchant_private_key_source=value["merchant_key"],
            htouhui_public_key_sources=keys,
            allowed_return_hosts=value["allowed_return_hosts"],
            public_base_url=value["public_base_url"].rstrip("/") if value["public_base_url"] else None,
            frontend_return_url=value["frontend_return_url"],
            users_table=value["users_table"],
            key_cache_seconds=value["key_cache_seconds"],
            notifications_table=value["notifications_table"],
            reconcile_ladder=value["reconcile_ladder"],
            reconcile_shards=value["reconcile_shards"],
            reconcile_rate_budget=value["reconcile_rate_budget"],
            reconcile_workers=value["reconcile_workers"],
            reconcile_priority_workers=value["reconcile_priority_workers"],
            reconcile_queue_url=value["reconcile_queue_url"],
            refresh_rate_budget=value["refresh_rate_budget"],
            refresh_budget_table=value["refresh_budget_table"],
        )

    @property
    def profile(self) -> protocol.Profile:
        """The protocol variant Htouhui speaks (PROTOCOL.md §8): HTOUHUI_PROFILE, `default` unless set."""
        return self.client.profile

    def keys(self, *, clock: Callable[[], float] = time.monotonic) -> Keys:
        """The merchant's private key and Htouhui's public key(s): what signing a request needs."""
        keys: Keys = self._cached("keys", self._load_keys, clock)
        return keys

    def htouhui_public_keys(self, *, clock: Callable[[], float] = time.monotonic) -> tuple[protocol.PublicKey, ...]:
        """Only Htouhui's public key(s): what verifying a notification needs (the merchant's secret is not read)."""
        keys: tuple[protocol.PublicKey, ...] = self._cached("htouhui", self._load_htouhui_keys, clock)
        return keys

    def loaded_kinds(self) -> tuple[str, ...]:
        """What is cached now ("keys", "htouhui"), for onboarding.ops.priming."""
        with self._lock:
            return tuple(self._loaded)

    def restamp(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Count the age of what is cached from now: after a SnapStart restore, the snapshot's clock readings mean
        nothing here, and a key read before the snapshot is reloaded KEY_CACHE_SECONDS after the restore."""
        with self._lock:
            now = clock()
            for kind, (_, value) in list(self._loaded.items()):
                self._loaded[kind] = (now, value)

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


def load_profile_setting(reference: str) -> protocol.Profile:
    """HTOUHUI_PROFILE: a built-in name, or the JSON of a profile by `file:`, `ssm:` or `secretsmanager:`."""
    if reference in protocol.BUILT_IN:
        return protocol.BUILT_IN[reference]
    if reference.startswith(("file:", "ssm:", "secretsmanager:")):
        return protocol.profile_from_text(read_key_source(reference), reference)
    raise protocol.ProfileError(
        f"unknown profile {reference!r}: one of {', '.join(protocol.BUILT_IN)}, or file:, ssm:, secretsmanager:"
    )


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


def is_acceptable_url(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)))
