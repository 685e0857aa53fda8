"""Reconciliation against the Htouhui sandbox over real HTTP and a moto DynamoDB server.

A user finished onboarding at Htouhui but every notification was lost: the dispatcher finds the user through
the due-time index when the first step of the ladder is due, a worker asks the sandbox's query interface and
stores the truth; the sandbox counts what it was asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import PARTNER_ID, TEST_KEYS, create_tables, dynamodb_client, moto_dynamodb, valid_id_card
from sandbox.server import RunningSandbox

from htouhui.client import HtouhuiClient
from onboarding.config import Settings
from onboarding.models import OpenAccountBody, RegisterBody
from onboarding.rules import Onboarding
from onboarding.store import UserStore

API = "http://127.0.0.1:9"  # our own API's address: only put into the form, never called here


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


CLOCK = Clock()
CALLS: list[Any] = []  # every attempt the client made (what the sandbox was asked)


class ListQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> None:
        self.messages.extend(messages)

    def depth(self) -> int:
        return len(self.messages)


def run_due(service: Onboarding) -> list[str]:
    queue = ListQueue()
    service.checks.dispatch_due(queue, limit=100)
    return [str(service.checks.check_scheduled(m["third_party_user_id"], m["due"])) for m in queue.messages]


@pytest.fixture
def onboarding(start_sandbox: Callable[..., RunningSandbox]) -> Iterator[tuple[Onboarding, RunningSandbox]]:
    sandbox = start_sandbox(time_scale=0.001)
    settings = Settings.from_env(
        {
            "HTOUHUI_PARTNER_ID": PARTNER_ID,
            "HTOUHUI_BASE_URL": sandbox.url,
            "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
            "PUBLIC_BASE_URL": API,
            "HTOUHUI_MAX_ATTEMPTS": "1",
        }
    )

    def factory() -> HtouhuiClient:
        keys = settings.keys()
        return HtouhuiClient(settings.client, keys.merchant_private, keys.htouhui_public, on_attempt=CALLS.append)

    with moto_dynamodb() as endpoint:
        client: Any = dynamodb_client(endpoint)
        suffix = uuid.uuid4().hex[:8]
        create_tables(client, f"users-{suffix}", f"notifications-{suffix}")
        store = UserStore(f"users-{suffix}", f"notifications-{suffix}", dynamodb=client)
        yield Onboarding.configured(settings, store, factory, clock=CLOCK), sandbox


def seed(sandbox: RunningSandbox, **user: Any) -> None:
    answer = httpx.post(sandbox.url + "/_sandbox/users", json=user)
    assert answer.status_code == 201, answer.text


def test_dropped_notifications_are_recovered_by_reconciliation(
    onboarding: tuple[Onboarding, RunningSandbox],
) -> None:
    service, sandbox = onboarding
    id_cards = {name: valid_id_card(f"1101051949123{number:03d}1") for number, name in enumerate("abcd")}
    for number, name in enumerate("abcd"):
        view, created = service.registration.register(
            RegisterBody(third_party_user_id=name, mobile=f"1380013800{number}")
        )
        assert created and view.stage == "REGISTERED"
        service.registration.open_account(
            name,
            OpenAccountBody(id_card=id_cards[name], real_name="张三"),
            notify_url=API + "/htouhui/notify",
            default_return_url=API + "/htouhui/return",
            own_host="127.0.0.1",
        )
    service.registration.register(RegisterBody(third_party_user_id="e", mobile="13800138009"))  # never opened: skipped
    # At Htouhui: a completed everything, b opened the account, c set the password; d has not started.
    seed(sandbox, third_party_user_id="a", status=3, id_card=id_cards["a"])
    seed(sandbox, third_party_user_id="b", status=1, id_card=id_cards["b"])
    seed(sandbox, third_party_user_id="c", status=2, id_card=id_cards["c"])

    asked = _query_count(sandbox)
    assert run_due(service) == []  # nobody is due yet: nothing asked
    CLOCK.now += timedelta(minutes=7)
    assert sorted(run_due(service)) == ["CHECKED"] * 4  # a, b, c, d (e never asked for a form)
    assert _query_count(sandbox) == asked + 4
    a = service.registration.view("a")
    assert a.status == 3 and a.stage == "COMPLETED" and a.ready_for_debt_matching
    assert (
        service.registration.view("b").stage == "ACCOUNT_OPENED"
        and service.registration.view("c").stage == "PASSWORD_SET"
    )
    assert service.registration.view("d").stage == "OPEN_REQUESTED"
    record = service.store.get("a")
    assert record is not None and not record.scheduled  # status 3: off the schedule
    assert run_due(service) == []  # a repeated sweep asks nobody again
    CLOCK.now += timedelta(minutes=20)
    assert sorted(run_due(service)) == ["CHECKED"] * 3  # b, c, d at their second step; a is done
    assert _query_count(sandbox) == asked + 7


def _query_count(_sandbox: RunningSandbox) -> int:
    return sum(1 for record in CALLS if record.interface == "query")
