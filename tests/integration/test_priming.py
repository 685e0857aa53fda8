"""onboarding.ops.priming: the notify function's SnapStart hooks and provisioned-concurrency priming (NotifyColdStart).

`snapshot_restore_py` exists only in Lambda's Python runtimes; here a stand-in of a few lines on sys.path records
what is registered, as the runtime's module does, and the test runs the callables as Lambda would (before the
snapshot in reverse order of registration, after the restore in order). What is tested is our code: that it
registers, that priming builds what the first request would, that the refresh after a restore empties the
connection pools and re-ages the keys, and that the notify handler then works against DynamoDB (moto).
"""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import TEST_KEYS, Stack

from onboarding import runtime
from onboarding.config import Settings
from onboarding.ops import priming

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

USER = "u-priming-1"
STAND_IN = '''"""Stand-in for the Lambda runtime's snapshot_restore_py: records the registered callables."""
before = []
after = []


def register_before_snapshot(func, *args, **kwargs):
    before.append((func, args, kwargs))
    return func


def register_after_restore(func, *args, **kwargs):
    after.append((func, args, kwargs))
    return func
'''


@pytest.fixture
def hooks_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    (tmp_path / "snapshot_restore_py.py").write_text(STAND_IN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    yield importlib.import_module("snapshot_restore_py")
    sys.modules.pop("snapshot_restore_py", None)


def _pools(client: Any) -> int:
    return len(client._endpoint.http_session._manager.pools)


def test_nothing_is_registered_or_primed_outside_lambda(stack: Stack) -> None:
    assert importlib.util.find_spec("snapshot_restore_py") is None
    assert priming.install({}) == []
    assert runtime.peek() == {}  # an on-demand environment builds on first use, as before


def test_snapstart_hooks_prime_then_refresh_and_notify_still_works(
    stack: Stack, hooks_module: Any, htouhui_private_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.register(USER, "13812340001")["statusCode"] == 201
    runtime.reset()  # a fresh environment: the registration above built one
    monkeypatch.setenv(priming.PRIME_KEYS, "true")

    assert priming.install({}) == ["hooks"]
    assert [hook for hook, _, _ in hooks_module.before] == [priming.before_snapshot]
    assert [hook for hook, _, _ in hooks_module.after] == [priming.after_restore]

    for hook, args, kwargs in reversed(hooks_module.before):  # Lambda: before the snapshot
        hook(*args, **kwargs)
    state = runtime.peek()
    client = state["onboarding"].store.built_client()
    assert client is not None  # boto3 imported and the DynamoDB client made before the snapshot
    assert state["settings"].loaded_kinds() == ("htouhui",)  # PRIME_HTOUHUI_KEYS=true: keys read too

    fields = stack.signed_notification(htouhui_private_key, USER, 1)
    assert stack.notify(fields)["statusCode"] == 200
    assert _pools(client) == 1  # a kept-alive connection: after a restore it would be dead

    seed = random.getstate()
    for hook, args, kwargs in hooks_module.after:  # Lambda: in each restored environment
        hook(*args, **kwargs)
    assert _pools(client) == 0
    assert random.getstate() != seed

    fields = stack.signed_notification(htouhui_private_key, USER, 2)
    answer = stack.notify(fields)
    assert (answer["statusCode"], answer["body"]) == (200, "SUCCESS")
    assert stack.user_item(USER)["status"]["N"] == "2"
    assert runtime.onboarding().store.client() is client  # the primed client served it, with a new connection


def test_keys_stay_out_of_the_snapshot_unless_asked(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(priming.PRIME_KEYS, "false")
    priming.before_snapshot()
    assert runtime.peek()["onboarding"].store.built_client() is not None
    assert runtime.settings().loaded_kinds() == ()


def test_provisioned_concurrency_primes_at_init(stack: Stack) -> None:
    assert priming.install({priming.INITIALIZATION_TYPE: "provisioned-concurrency"}) == ["primed"]
    assert runtime.peek()["onboarding"].store.built_client() is not None
    assert runtime.settings().loaded_kinds() == ("htouhui",)


def test_a_failing_prime_is_left_to_the_first_request(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USERS_TABLE")
    priming.before_snapshot()  # must not raise: a failed snapshot hook would fail the deploy
    assert "onboarding" not in runtime.peek()


def test_restamp_ages_the_keys_from_the_restore() -> None:
    settings = Settings.from_env(
        {
            "HTOUHUI_PARTNER_ID": "P2026000001",
            "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
            "KEY_CACHE_SECONDS": "300",
        }
    )
    first = settings.htouhui_public_keys(clock=lambda: 0.0)  # read before the snapshot
    settings.restamp(clock=lambda: 10_000.0)  # restored much later
    assert settings.htouhui_public_keys(clock=lambda: 10_299.0) is first  # still within 300 s of the restore
    assert settings.htouhui_public_keys(clock=lambda: 10_300.0) is not first  # reloaded 300 s after it
