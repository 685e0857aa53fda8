"""What a Lambda container builds once and reuses across invocations: settings, the store, Onboarding.

Nothing is built at import time (a cold start that never needs Htouhui never loads a key); the first
call builds it. Tests inject their own with `configure(...)` and drop everything with `reset()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from onboarding.config import Settings

if TYPE_CHECKING:
    from htouhui.client import HtouhuiClient
    from onboarding.rights import DataRights
    from onboarding.rules import Onboarding

_lock = threading.Lock()
_state: dict[str, Any] = {}  # what has been built
_injected: dict[str, Any] = {}  # what the next build uses (a clock), not itself built


def settings() -> Settings:
    with _lock:
        if "settings" not in _state:
            _state["settings"] = Settings.from_env()
        value: Settings = _state["settings"]
        return value


def client_factory(current: Settings, *, once: bool = False) -> Callable[[], HtouhuiClient]:
    """A factory of Htouhui clients that report every attempt to the metrics (latency and result code); `once`:
    one attempt per call, the client's retries off (the keys are still `current`'s, loaded and cached once).

    The client's module is imported when the first client is built: a path that never calls Htouhui
    (open_account, notify, the dispatcher) does not import it."""
    import dataclasses

    options = current.client
    if once:
        options = dataclasses.replace(options, retry=dataclasses.replace(options.retry, max_attempts=1))

    def build() -> HtouhuiClient:
        from htouhui.client import HtouhuiClient
        from onboarding.observability import record_attempt

        keys = current.keys()
        return HtouhuiClient(options, keys.merchant_private, keys.htouhui_public, on_attempt=record_attempt)

    return build


def onboarding() -> Onboarding:
    current = settings()
    with _lock:
        if "onboarding" not in _state:
            from onboarding.refresh import QueriesOnce, RefreshBudget
            from onboarding.retention import history_days
            from onboarding.rules import Onboarding
            from onboarding.store import UserStore

            store = UserStore(
                _required(current.users_table, "USERS_TABLE"),
                current.notifications_table or "",
                history_days=history_days(),
            )
            # register keeps the client's retries; a refresh's query is one attempt, one taken from its budget
            retrying, once = client_factory(current), client_factory(current, once=True)
            budget = RefreshBudget(current.refresh_budget_table, current.refresh_rate_budget)
            _state["onboarding"] = Onboarding.configured(
                current, store, lambda: QueriesOnce(retrying, once), refresh_budget=budget, **_clock()
            )
        value: Onboarding = _state["onboarding"]
        return value


def reconcile_onboarding() -> Onboarding:
    """Onboarding for the reconciliation worker: one attempt per query, the schedule retries with backoff.

    Every attempt counts against the rate budget, so the client's own retries are turned off here.
    """
    current = settings()
    with _lock:
        if "reconcile_onboarding" not in _state:
            import dataclasses

            from onboarding.rules import Onboarding
            from onboarding.store import UserStore

            once = dataclasses.replace(current.client, retry=dataclasses.replace(current.client.retry, max_attempts=1))
            single = dataclasses.replace(current, client=once)
            store = UserStore(_required(current.users_table, "USERS_TABLE"), current.notifications_table or "")
            _state["reconcile_onboarding"] = Onboarding.configured(single, store, client_factory(single), **_clock())
        value: Onboarding = _state["reconcile_onboarding"]
        return value


def data_rights() -> DataRights:
    """ExportUser / EraseUser for the data_rights function: the store and the export bucket, no Htouhui settings."""
    with _lock:
        if "data_rights" not in _state:
            from datetime import UTC, datetime

            from onboarding import dynamo
            from onboarding.config import setting
            from onboarding.rights import DataRights, S3Exports
            from onboarding.store import UserStore

            bucket = _required(setting("export_bucket"), "EXPORT_BUCKET")
            exports = S3Exports(dynamo.LazyClient("s3"), bucket, _required(setting("export_kms_key"), "EXPORT_KMS_KEY"))
            store = UserStore(_required(setting("users_table"), "USERS_TABLE"), setting("notifications_table") or "")
            clock = _injected.get("clock") or (lambda: datetime.now(UTC))
            _state["data_rights"] = DataRights(store, exports, bucket, clock)
        value: DataRights = _state["data_rights"]
        return value


def _clock() -> dict[str, Any]:
    """The injected clock, if any, for the rules built next (tests move time instead of sleeping)."""
    return {"clock": _injected["clock"]} if "clock" in _injected else {}


def configure(**values: Any) -> None:
    """Inject `settings=`, `onboarding=`, `reconcile_onboarding=`, `data_rights=` and/or `clock=` (tests, the local
    stack)."""
    with _lock:
        if "clock" in values:
            _injected["clock"] = values.pop("clock")
        _state.update(values)


def peek() -> dict[str, Any]:
    """What has been built so far (nothing is built by looking): onboarding.ops.priming's after-restore refresh."""
    with _lock:
        return dict(_state)


def reset() -> None:
    with _lock:
        _state.clear()
        _injected.clear()


def _required(value: str | None, name: str) -> str:
    if not value:
        from onboarding.config import ConfigError

        raise ConfigError([f"{name} is required"])
    return value
