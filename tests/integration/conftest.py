"""Fixtures of the integration tests: real neighbours over real sockets.

- `aws`: a moto DynamoDB server (one per module), its endpoint URL; `dynamodb`: a client of it; `tables`: a
  fresh pair of the template's tables (users, notifications).
- `stack_sandbox`: the Htouhui sandbox over HTTP (one per module, fast delivery schedule).
- `bridge`: the local stack's HTTP API answering with the functions run in this process (one per module).
- `stack`: one configured stack per test: fresh tables (and a refresh budget table), the template's environment
  pointed at those three.
- `start_sandbox(**SandboxConfig options)`: a sandbox on an ephemeral port, stopped after the test; `sandbox`:
  one at time scale 0.001; `client`: the project's HtouhuiClient pointed at it; `receiver`: a notify_url
  that records posts (helpers.Receiver).
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import (
    PARTNER_ID,
    TEST_KEYS,
    Bridge,
    Receiver,
    SettableClock,
    Stack,
    create_tables,
    dynamodb_client,
    make_client,
    moto_dynamodb,
    sqs_client,
)
from htouhui_fake import FakeHtouhui
from rules_support import PARTNER, Clock, client_factory, settings_for
from sandbox.server import RunningSandbox, Sandbox, SandboxConfig
from stack.aws import create_template_tables

from htouhui import protocol
from htouhui.client import HtouhuiClient
from onboarding import observability, runtime
from onboarding.rules import Onboarding
from onboarding.store import UserStore

TIME_SCALE = 0.05  # the module sandbox's delivery schedule: first retry after 0.75 s, answer time-out 0.25 s


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_dynamodb() as url:
        yield url


@pytest.fixture
def dynamodb(aws: str) -> Any:
    """A boto3 DynamoDB client of the `aws` server."""
    return dynamodb_client(aws)


@pytest.fixture
def tables(dynamodb: Any) -> tuple[str, str]:
    """A fresh pair of the template's tables (users, notifications), named for this test."""
    suffix = uuid.uuid4().hex[:8]
    users, notifications = f"users-{suffix}", f"notifications-{suffix}"
    create_tables(dynamodb, users, notifications)
    return users, notifications


@pytest.fixture(scope="module")
def stack_sandbox(
    merchant_public_key: protocol.PublicKey, htouhui_private_key: protocol.PrivateKey
) -> Iterator[RunningSandbox]:
    config = SandboxConfig(
        merchant_public_key=merchant_public_key,
        htouhui_private_key=htouhui_private_key,
        partner_id=PARTNER_ID,
        time_scale=TIME_SCALE,
    )
    with Sandbox(config).serve(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def bridge() -> Iterator[Bridge]:
    running = Bridge()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(
    aws: str,
    dynamodb: Any,
    tables: tuple[str, str],
    stack_sandbox: RunningSandbox,
    bridge: Bridge,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    users, notifications = tables
    refresh_budget = f"refresh-budget-{users}"  # GET ?refresh=true's window counts (onboarding.refresh)
    create_template_tables(dynamodb, {"RefreshBudgetTable": refresh_budget})
    queue_url = sqs_client(aws).create_queue(QueueName=f"reconcile-{users}")["QueueUrl"]
    environment = bridge.functions.environment(
        {
            "HTOUHUI_PARTNER_ID": PARTNER_ID,
            "HTOUHUI_BASE_URL": stack_sandbox.url,
            "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
            "USERS_TABLE": users,
            "NOTIFICATIONS_TABLE": notifications,
            "HTOUHUI_CONNECT_TIMEOUT": "1",
            "HTOUHUI_READ_TIMEOUT": "1",
            "HTOUHUI_MAX_ATTEMPTS": "2",
            "HTOUHUI_RETRY_SECONDS": "3",
            # reconciliation: a ladder short enough to wait for, a budget that paces tests in milliseconds
            "RECONCILE_LADDER": "1s,10m,1h",
            "RECONCILE_RATE_BUDGET": "2000",
            "RECONCILE_QUEUE_URL": queue_url,
            # a refresh budget no test meets by chance (tests/integration/test_refresh_route.py lowers it)
            "REFRESH_RATE_BUDGET": "1000",
            "REFRESH_BUDGET_TABLE": refresh_budget,
            "AWS_ENDPOINT_URL_SQS": aws,
            "EVENT_BUS_NAME": "htouhui-test",
        }
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("PUBLIC_BASE_URL", "FRONTEND_RETURN_URL", "ALLOWED_RETURN_HOSTS", "HTOUHUI_PUBLIC_KEY_NEXT"):
        if not environment.get(name):
            monkeypatch.delenv(name, raising=False)
    stack_sandbox.sandbox.reset()
    runtime.reset()
    clock = SettableClock()
    runtime.configure(clock=clock)
    calls: list[Any] = []
    original = observability.record_attempt

    def counting(record: Any) -> None:
        calls.append(record)
        original(record)

    monkeypatch.setattr(observability, "record_attempt", counting)
    bridge.before = None
    bridge.invocations.clear()
    try:
        yield Stack(bridge, stack_sandbox, dynamodb, users, notifications, calls, queue_url, aws, clock)
    finally:
        runtime.reset()
        bridge.before = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()
    yield box
    box.stop()


@pytest.fixture
def start_sandbox(
    merchant_public_key: protocol.PublicKey, htouhui_private_key: protocol.PrivateKey
) -> Iterator[Callable[..., RunningSandbox]]:
    running: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        config = SandboxConfig(
            partner_id=PARTNER_ID,
            merchant_public_key=merchant_public_key,
            htouhui_private_key=htouhui_private_key,
            **options,
        )
        server = Sandbox(config).serve(host="127.0.0.1", port=0)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return start_sandbox(time_scale=0.001)


@pytest.fixture
def client(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> Iterator[HtouhuiClient]:
    made = make_client(sandbox.url, merchant_private_key, htouhui_public_key)
    yield made
    made.close()


@pytest.fixture
def captured_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[io.StringIO]:
    """Every line any logger writes while the test runs: Powertools' handler, the layer's, the root's."""
    sink = io.StringIO()
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream = handler.setStream(sink)
    root_handler = logging.StreamHandler(sink)
    root = logging.getLogger()
    root.addHandler(root_handler)
    observability.mask_root_handlers()
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield sink
    finally:
        root.setLevel(previous_level)
        root.removeHandler(root_handler)
        if previous_stream is not None:
            handler.setStream(previous_stream)
        sink.write(capsys.readouterr().out)  # metrics (EMF) and anything printed


# --- the rules over moto and the fake Htouhui (rules_support) --------------------------------------------


@pytest.fixture
def store(dynamodb: Any, tables: tuple[str, str]) -> UserStore:
    return UserStore(*tables, dynamodb=dynamodb, sleep=lambda _: None)


@pytest.fixture
def fake(htouhui_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey) -> FakeHtouhui:
    return FakeHtouhui(PARTNER, htouhui_private_key, merchant_public_key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def onboarding(store: UserStore, fake: FakeHtouhui, clock: Clock) -> Onboarding:
    settings = settings_for()
    return Onboarding.configured(settings, store, client_factory(settings, fake), clock=clock)
