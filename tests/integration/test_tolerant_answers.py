"""PROTOCOL.md §9 for Htouhui's answers (register, query) and, as properties, for notifications.

The in-process Htouhui answers through a transport that rewrites each answer the way real gateways do
(JSON nulls, empty strings, masked cards, extra fields), re-signed with the test Htouhui key; every case
asserts what the onboarding rules then store.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_onboarding import (  # the module's fixtures and helpers, one definition of each
    ID_CARD,
    Clock,
    clock,  # noqa: F401 - a fixture
    fake,  # noqa: F401 - a fixture
    opened,
    settings_for,
    store,  # noqa: F401 - a fixture
)

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.errors import HtouhuiProtocolError
from onboarding.errors import NotificationRejected
from onboarding.rules import Onboarding
from onboarding.store import ApplyOutcome, UserStore

MASKED_CARD = "622202******3445"
FULL_CARD = "6222020200112233445"


class GatewayLike(httpx.BaseTransport):
    """Wraps the in-process Htouhui: adds `signed` fields and re-signs, then adds `unsigned` ones (nulls, "")."""

    def __init__(self, inner: httpx.BaseTransport, key: protocol.PrivateKey) -> None:
        self.inner = inner
        self.key = key
        self.signed: dict[str, str] = {}
        self.unsigned: dict[str, str | None] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.inner.handle_request(request)
        body = {k: v for k, v in json.loads(answer.read()).items() if k not in ("sign", "sign_type")}
        body = {k: v for k, v in {**body, **self.signed}.items() if k not in self.unsigned}
        return httpx.Response(answer.status_code, json={**protocol.signed(body, self.key), **self.unsigned})


@pytest.fixture
def gateway(fake: Any, htouhui_private_key: protocol.PrivateKey) -> GatewayLike:  # noqa: F811
    return GatewayLike(fake.transport, htouhui_private_key)


@pytest.fixture
def onboarding(store: UserStore, gateway: GatewayLike, clock: Clock) -> Onboarding:  # noqa: F811
    settings = settings_for()

    def build() -> HtouhuiClient:
        keys = settings.keys()
        return HtouhuiClient(
            settings.client, keys.merchant_private, keys.htouhui_public, transport=gateway, sleep=lambda _: None
        )

    return Onboarding.configured(settings, store, build, clock=clock)


def at_level(onboarding: Onboarding, fake: Any, status: int, card: str | None = FULL_CARD) -> None:  # noqa: F811
    opened(onboarding)
    fake.set_status("shop-1", status, id_card=ID_CARD, bank_card_number=card)


# --- query answers -----------------------------------------------------------------------------------------------

QUERY_CASES = {
    "nulls-for-optional-fields": (
        {},
        {"borrower": None, "bank_card_number": None, "message": None},
        (1, None, None),
    ),
    "empty-strings": (
        {},
        {"bank_card_number": "", "message": "", "timestamp": "", "htouhui_user_id": ""},
        (2, None, "0"),
    ),
    "masked-card": ({"bank_card_number": MASKED_CARD}, {}, (1, MASKED_CARD, "0")),
    "spaced-card": ({"bank_card_number": "6222 0202 0011 2233 445"}, {}, (2, "6222 0202 0011 2233 445", "0")),
    "extra-signed-and-null-fields": (
        {"sub_code": "ACQ.SUCCESS", "sub_msg": "成功", "data": "{}"},
        {"extra": None, "trace_id": ""},
        (3, FULL_CARD, "0"),
    ),
    "borrower-not-0-or-1": ({"borrower": "Y"}, {}, (3, FULL_CARD, None)),
    "other-timestamp-format": ({"timestamp": "2026-11-28 15:40:00"}, {}, (3, FULL_CARD, "0")),
}


@pytest.mark.parametrize("case", QUERY_CASES.values(), ids=QUERY_CASES.keys())
def test_query_answers_read_tolerantly_are_stored(
    onboarding: Onboarding,
    fake: Any,  # noqa: F811
    gateway: GatewayLike,
    case: tuple[dict[str, str], dict[str, str | None], tuple[int, str | None, str | None]],
) -> None:
    signed, unsigned, (status, card, borrower) = case
    at_level(onboarding, fake, status)
    gateway.signed, gateway.unsigned = signed, unsigned
    view = onboarding.registration.refresh("shop-1")
    record = onboarding.store.get("shop-1")
    assert record is not None and (record.status, record.bank_card_number, record.borrower) == (status, card, borrower)
    assert view.status == status


@pytest.mark.parametrize(
    ("unsigned", "field", "rule"),
    [
        ({"status": None}, "status", "missing"),
        ({"status": ""}, "status", "missing"),
        ({"third_party_user_id": None}, "third_party_user_id", "missing"),
        ({"code": None}, "code", "not_a_result_code"),
    ],
)
def test_a_query_answer_missing_what_decides_state_stores_nothing_and_names_the_field(
    onboarding: Onboarding,
    fake: Any,  # noqa: F811
    gateway: GatewayLike,
    unsigned: dict[str, str | None],
    field: str,
    rule: str,
    log_sink: Any,
) -> None:
    at_level(onboarding, fake, 2)
    gateway.unsigned = unsigned
    with pytest.raises(HtouhuiProtocolError) as caught:
        onboarding.registration.refresh("shop-1")
    assert (field, rule) in caught.value.fields
    record = onboarding.store.get("shop-1")
    assert record is not None and record.status is None
    assert f"{field}: {rule}" in log_sink.getvalue()  # the log says which field broke which rule


# --- register answers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed", "unsigned"),
    [
        ({}, {"message": None, "timestamp": None}),
        ({}, {"message": "", "data": None, "extra": ""}),
        ({"biz_content": "{}", "message": "注册成功，请继续开户"}, {"sub_code": None}),
    ],
    ids=["nulls", "empties-and-unknown-nulls", "extra-signed"],
)
def test_register_answers_read_tolerantly_register_the_user(
    onboarding: Onboarding, gateway: GatewayLike, signed: dict[str, str], unsigned: dict[str, str | None]
) -> None:
    gateway.signed, gateway.unsigned = signed, unsigned
    opened(onboarding)
    record = onboarding.store.get("shop-1")
    assert record is not None and record.registered and record.htouhui_user_id


def test_a_register_answer_without_the_user_id_registers_nobody(onboarding: Onboarding, gateway: GatewayLike) -> None:
    gateway.unsigned = {"htouhui_user_id": None}
    with pytest.raises(HtouhuiProtocolError) as caught:
        opened(onboarding)
    assert ("htouhui_user_id", "htouhui_user_id_required") in caught.value.fields
    assert onboarding.store.get("shop-1") is None  # the claim was released: a retry starts over


# --- properties: any valid signed message with extra signed fields and empty optional fields is accepted -----------

_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12).filter(
    lambda name: name not in KNOWN_FIELDS and "=" not in name and "&" not in name
)
_values = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
KNOWN_FIELDS = frozenset(
    {
        "partner_id",
        "notify_no",
        "notify_type",
        "timestamp",
        "sign_type",
        "sign",
        "htouhui_user_id",
        "third_party_user_id",
        "status",
        "bank_card_number",
        "code",
        "message",
        "request_no",
        "borrower",
    }
)
_users = itertools.count(1)


def fresh_user(onboarding: Onboarding) -> str:
    """A user of its own for one hypothesis example: registered, open-account requested."""
    user = f"prop-{next(_users)}"
    opened(onboarding, user, f"139{next(_users):08d}")
    return user


def notification_of(fake: Any, user: str, status: int) -> dict[str, str]:  # noqa: F811
    return {
        "partner_id": "P2026000001",
        "notify_no": f"N-prop-{user}",
        "notify_type": "OPEN_ACCOUNT",
        "timestamp": protocol.china_timestamp(),
        "htouhui_user_id": fake.users[user].htouhui_user_id,
        "third_party_user_id": user,
        "status": str(status),
    }


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([0, 1, 2, 3]),
    extra=st.dictionaries(_names, _values, max_size=5),
    empty=st.sets(st.sampled_from(["bank_card_number", "timestamp"])),
    card=st.sampled_from([FULL_CARD, MASKED_CARD, "6222 0202 0011 2233 445"]),
)
def test_any_valid_signed_notification_with_extra_and_empty_fields_is_accepted(
    onboarding: Onboarding,
    fake: Any,  # noqa: F811
    htouhui_private_key: protocol.PrivateKey,
    status: int,
    extra: dict[str, str],
    empty: set[str],
    card: str,
) -> None:
    user = fresh_user(onboarding)
    fields = {**extra, **notification_of(fake, user, status), "bank_card_number": card}
    signed = protocol.signed({k: v for k, v in fields.items() if k not in empty}, htouhui_private_key)
    body = httpx.QueryParams({**signed, **dict.fromkeys(empty, "")})  # the form Htouhui posts
    received = protocol.parse_form(str(body))
    assert onboarding.inbound.accept_notification(received) is ApplyOutcome.APPLIED
    record = onboarding.store.get(user)
    assert record is not None and record.status == status
    assert record.bank_card_number == (None if "bank_card_number" in empty else card)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(_names, _values, min_size=1, max_size=5))
def test_an_extra_field_added_after_signing_is_still_refused(
    onboarding: Onboarding,
    fake: Any,  # noqa: F811
    htouhui_private_key: protocol.PrivateKey,
    extra: dict[str, str],
) -> None:
    """Tolerance never reaches the signature: an unsigned non-empty field fails verification."""
    user = fresh_user(onboarding)
    forged = {**protocol.signed(notification_of(fake, user, 3), htouhui_private_key), **extra}
    with pytest.raises(NotificationRejected) as caught:
        onboarding.inbound.accept_notification(forged)
    assert caught.value.reason == "bad_signature"
    record = onboarding.store.get(user)
    assert record is not None and record.status is None
