"""Cold start of the notify path: what its first request would build, built ahead (NotifyColdStart, docs/deploy.md).

`install()`, called once by functions/notify/app.py at import:

- registers two Lambda SnapStart runtime hooks when `snapshot_restore_py` can be imported (the Lambda Python
  runtimes ship it; nowhere else has it): `before_snapshot` primes, `after_restore` refreshes what must not be
  shared by every environment restored from one snapshot. Without SnapStart the hooks never run.
- primes at once when Lambda initialises the environment for provisioned concurrency
  (`AWS_LAMBDA_INITIALIZATION_TYPE`), so that a provisioned environment's first request pays nothing either.

Priming builds the settings, the store and its DynamoDB client (import of boto3, botocore's service model and
endpoint rules: the largest part), the client of the secret store the keys come from, and runs one throw-away
notification through form parsing, canonical string, RSA verify and the pydantic models. Htouhui's public keys
are read too only when PRIME_HTOUHUI_KEYS is "true" (the NotifyPrimeKeys parameter): they then live in the
snapshot, for KEY_CACHE_SECONDS after each restore, instead of costing one Secrets Manager call per restored
environment. Priming is an optimisation: a failure is logged and left to the first request, never raised.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from onboarding import runtime
from onboarding.config import SETTINGS, setting
from onboarding.store import UserStore

logger = logging.getLogger(__name__)

HOOKS_MODULE: Final = "snapshot_restore_py"
PRIME_KEYS: Final = SETTINGS["prime_htouhui_keys"].variable
INITIALIZATION_TYPE: Final = SETTINGS["initialization_type"].variable  # on-demand, provisioned-concurrency, snap-start


def install(environ: Mapping[str, str] | None = None) -> list[str]:
    """What this environment gets: "hooks" (registered with snapshot_restore_py) and/or "primed" (now)."""
    done = []
    try:
        import snapshot_restore_py  # type: ignore[import-not-found]  # only in the Lambda runtime
    except ImportError:
        pass
    else:
        snapshot_restore_py.register_before_snapshot(before_snapshot)
        snapshot_restore_py.register_after_restore(after_restore)
        done.append("hooks")
    if setting("initialization_type", environ) == "provisioned-concurrency":
        _safely(lambda: prime(keys=True))  # no snapshot: the keys age like a warm environment's
        done.append("primed")
    return done


def before_snapshot() -> None:
    """SnapStart: runs once when Lambda publishes the version, before the snapshot is taken."""
    _safely(lambda: prime(keys=setting("prime_htouhui_keys")))


def after_restore() -> None:
    """SnapStart: runs in every environment restored from the snapshot, before its first request."""
    _safely(refresh)


def prime(*, keys: bool) -> None:
    """Do now what the first notification would do before its first DynamoDB call."""
    current = runtime.settings()
    store = runtime.onboarding().store
    if isinstance(store, UserStore):  # DynamoDB's client made now (an injected store has its own)
        store.client()
    _secret_store_clients(current.htouhui_public_key_sources)
    if keys:
        current.htouhui_public_keys()
    _exercise_verify(current.profile, current.partner_id)


def refresh() -> None:
    """After a restore: what one snapshot gave every environment alike, made this environment's own.

    - `random`'s state was copied into every environment: reseeded from os.urandom (`secrets`, uuid4 and the
      store's back-off jitter use os.urandom already, which Lambda keeps unique after a restore).
    - Connections opened before the snapshot are dead after it: every primed boto3 client's pool is emptied
      (the client stays; it opens new connections on its next call).
    - Cached keys are aged from now, so the reload KEY_CACHE_SECONDS later counts from the restore.
    """
    random.seed()
    for client in _primed_clients():
        _drop_connections(client)
    state = runtime.peek()
    settings = state.get("settings")
    if settings is not None:
        settings.restamp()


# --- the parts ----------------------------------------------------------------------------------------


def _secret_store_clients(sources: Iterable[str]) -> None:
    """Powertools Parameters' provider (and so its boto3 client) for each secret store a key comes from."""
    wanted = {source.split(":", 1)[0] for source in sources if source.startswith(("secretsmanager:", "ssm:"))}
    if not wanted:
        return
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    if "secretsmanager" in wanted and "secrets" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider()
    if "ssm" in wanted and "ssm" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["ssm"] = parameters.SSMProvider()


def _exercise_verify(profile: Any, partner_id: str) -> None:
    """One notification, signed with a throw-away key, through the path a real one takes: form, canonical string,
    RSA verify, the models (nothing logged, nothing stored; verifying with Htouhui's keys would log a failure)."""
    from urllib.parse import urlencode

    from htouhui import protocol
    from htouhui.models import Notification, OpenAccountNotification
    from onboarding import callbacks
    from onboarding.inbound import OPEN_ACCOUNT_NOTIFY_TYPE

    key = protocol.generate_private_key()
    fields = {
        protocol.PARTNER_FIELD: partner_id,
        "notify_no": "N0000000000000000000",
        "notify_type": OPEN_ACCOUNT_NOTIFY_TYPE,
        "timestamp": profile.timestamp(),
        "htouhui_user_id": "10000000001",
        "third_party_user_id": "priming",
        "status": "1",
    }
    wire = protocol.signed(profile.external(fields), key, profile)
    received = callbacks.notification_fields({"body": urlencode(wire), "isBase64Encoded": False})
    if protocol.verification_failure(received, (key.public_key(),), profile) is not None:
        raise RuntimeError("priming: the throw-away notification did not verify")
    message = profile.internal(received)
    Notification.read(message)
    OpenAccountNotification.read(message)


def _primed_clients() -> list[Any]:
    clients = []
    onboarding = runtime.peek().get("onboarding")
    store = getattr(onboarding, "store", None)
    dynamodb = store.built_client() if isinstance(store, UserStore) else None
    if dynamodb is not None:
        clients.append(dynamodb)
    constants = sys.modules.get("aws_lambda_powertools.utilities.parameters.constants")  # loaded only if used
    providers: dict[str, Any] = getattr(constants, "DEFAULT_PROVIDERS", {})
    clients.extend(getattr(provider, "client", None) for provider in providers.values())
    return [client for client in clients if client is not None]


def _drop_connections(client: Any) -> None:
    """Empty a botocore client's connection pools (URLLib3Session.close); the client opens new ones."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    close = getattr(session, "close", None)
    if callable(close):
        close()


def _safely(step: Callable[[], None]) -> None:
    try:
        step()
    except Exception:
        logger.warning("priming skipped: the first request will do it", exc_info=True)
