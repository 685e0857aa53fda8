"""onboarding.rules against a moto DynamoDB server and an in-process Htouhui (httpx.MockTransport)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import TEST_KEYS
from htouhui_fake import FakeHtouhui

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.errors import HtouhuiBusy, HtouhuiRejected
from onboarding.config import Settings
from onboarding.errors import (
    InvalidInput,
    MobileMismatch,
    NotificationRejected,
    RegistrationInProgress,
    RegistrationRequired,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.models import OpenAccountBody, RegisterBody
from onboarding.rules import Onboarding
from onboarding.store import ApplyOutcome, UserStore

PARTNER = "P2026000001"
ID_CARD = "11010519491231002X"
API = "https://api.example.com"
NOTIFY_URL = API + "/htouhui/notify"
RETURN_URL = API + "/htouhui/return"
CARD = "6222020200112233445"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def settings_for(**extra: str) -> Settings:
    return Settings.from_env(
        {
            "HTOUHUI_PARTNER_ID": PARTNER,
            "HTOUHUI_BASE_URL": "https://htouhui.test",
            "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
            "ALLOWED_RETURN_HOSTS": "shop.example.com",
            "PUBLIC_BASE_URL": API,
            "HTOUHUI_MAX_ATTEMPTS": "2",
            **extra,
        }
    )


@pytest.fixture
def store(dynamodb: Any, tables: tuple[str, str]) -> UserStore:
    return UserStore(*tables, dynamodb=dynamodb, sleep=lambda _: None)


@pytest.fixture
def fake(htouhui_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey) -> FakeHtouhui:
    return FakeHtouhui(PARTNER, htouhui_private_key, merchant_public_key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client_factory(settings: Settings, fake: FakeHtouhui) -> Callable[[], HtouhuiClient]:
    def build() -> HtouhuiClient:
        keys = settings.keys()
        return HtouhuiClient(
            settings.client, keys.merchant_private, keys.htouhui_public, transport=fake.transport, sleep=lambda _: None
        )

    return build


@pytest.fixture
def onboarding(store: UserStore, fake: FakeHtouhui, clock: Clock) -> Onboarding:
    settings = settings_for()
    return Onboarding.configured(settings, store, client_factory(settings, fake), clock=clock)


def body(user: str = "shop-1", mobile: str = "13800138000") -> RegisterBody:
    return RegisterBody(third_party_user_id=user, mobile=mobile, password="secret-1")


def opened(onboarding: Onboarding, user: str = "shop-1", mobile: str = "13800138000") -> None:
    """Registered, open-account requested, Htouhui knows the id_card and the bank card."""
    onboarding.registration.register(body(user, mobile))
    onboarding.registration.open_account(
        user,
        OpenAccountBody(id_card=ID_CARD, real_name="张三"),
        notify_url=NOTIFY_URL,
        default_return_url=RETURN_URL,
        own_host="api.example.com",
    )


def history_count(dynamodb: Any, store: UserStore) -> int:
    return len(dynamodb.scan(TableName=store.notifications_table)["Items"])


# --- register -------------------------------------------------------------------------------------


def test_register_then_again_with_the_same_mobile_calls_htouhui_once(onboarding: Onboarding, fake: FakeHtouhui) -> None:
    view, created = onboarding.registration.register(body())
    assert created and view.stage == "REGISTERED" and view.htouhui_user_id == fake.users["shop-1"].htouhui_user_id
    again, created_again = onboarding.registration.register(body())
    assert not created_again and again == view
    with pytest.raises(MobileMismatch):
        onboarding.registration.register(body(mobile="13900139000"))
    assert fake.calls["register"] == 1


def test_concurrent_double_submit_makes_one_call(onboarding: Onboarding, fake: FakeHtouhui) -> None:
    fake.delay["register"] = 0.3
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def submit() -> None:
        barrier.wait()
        try:
            results.append(onboarding.registration.register(body()))
        except RegistrationInProgress as exc:
            results.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.calls["register"] == 1
    assert sum(isinstance(result, RegistrationInProgress) for result in results) == 1
    assert sum(isinstance(result, tuple) and result[1] for result in results) == 1
    fake.delay.clear()
    assert onboarding.registration.register(body())[1] is False  # the second submit, retried: 200, no call
    assert fake.calls["register"] == 1


def test_htouhui_conflict_releases_the_claim(onboarding: Onboarding, fake: FakeHtouhui) -> None:
    onboarding.registration.register(body("someone", "13800138000"))
    with pytest.raises(HtouhuiRejected) as rejected:
        onboarding.registration.register(body("shop-2", "13800138000"))  # 2003: mobile belongs to another user
    assert rejected.value.code == "2003" and rejected.value.is_conflict
    assert onboarding.store.get("shop-2") is None
    view, created = onboarding.registration.register(body("shop-2", "13700137000"))
    assert created and view.htouhui_user_id


def test_busy_htouhui_releases_the_claim_and_a_retry_converges(onboarding: Onboarding, fake: FakeHtouhui) -> None:
    fake.fail("register", "9999", "9999")
    with pytest.raises(HtouhuiBusy):
        onboarding.registration.register(body())
    assert onboarding.store.get("shop-1") is None
    view, created = onboarding.registration.register(body())
    assert created and view.htouhui_user_id


def test_failure_after_htouhui_answered_converges_on_retry(
    onboarding: Onboarding, fake: FakeHtouhui, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = onboarding.store.complete_registration
    monkeypatch.setattr(
        onboarding.store, "complete_registration", lambda *args: (_ for _ in ()).throw(StoreUnavailable("down"))
    )
    with pytest.raises(StoreUnavailable):
        onboarding.registration.register(body())
    assert onboarding.store.get("shop-1") is None  # lease released: nothing half-done on our side
    monkeypatch.setattr(onboarding.store, "complete_registration", original)
    view, created = onboarding.registration.register(body())
    assert created and view.htouhui_user_id == fake.users["shop-1"].htouhui_user_id
    assert fake.calls["register"] == 2  # Htouhui answered the retry with the same htouhui_user_id


def test_crashed_registration_blocks_only_until_the_lease_expires(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    # A Lambda that claimed and died: the claim stays, nobody releases it.
    onboarding.store.claim_registration("shop-1", onboarding.registration.mobile_digest("13800138000"), clock())
    with pytest.raises(RegistrationInProgress):
        onboarding.registration.register(body())
    clock.advance(31)
    view, created = onboarding.registration.register(body())
    assert created and view.stage == "REGISTERED"


# --- open account ---------------------------------------------------------------------------------


def open_body(**extra: Any) -> OpenAccountBody:
    return OpenAccountBody(id_card=ID_CARD, real_name="张三", **extra)


def test_a_rotated_merchant_key_reaches_a_warm_onboarding(
    store: UserStore, htouhui_private_key: protocol.PrivateKey, clock: Clock, tmp_path: Path
) -> None:
    key_file = tmp_path / "merchant_private.pem"
    key_file.write_bytes((TEST_KEYS / "merchant_private.pem").read_bytes())
    settings = settings_for(MERCHANT_PRIVATE_KEY=f"file:{key_file}", KEY_CACHE_SECONDS="0")
    old_fake = FakeHtouhui(
        PARTNER, htouhui_private_key, protocol.load_public_key((TEST_KEYS / "merchant_public.pem").read_text())
    )
    new_key = protocol.generate_private_key()
    new_fake = FakeHtouhui(PARTNER, htouhui_private_key, new_key.public_key())
    fakes = [old_fake]

    def build() -> HtouhuiClient:  # Htouhui, as of the moment the client is built: before or after the rotation
        keys = settings.keys()
        transport = fakes[-1].transport
        return HtouhuiClient(settings.client, keys.merchant_private, keys.htouhui_public, transport=transport)

    onboarding = Onboarding.configured(settings, store, build, clock=clock)
    onboarding.registration.register(body("rotate-1", "13800138001"))
    key_file.write_bytes(protocol.private_pem(new_key))  # the secret is rotated; Htouhui has the new public key
    fakes.append(new_fake)
    onboarding.registration.register(body("rotate-2", "13800138002"))
    assert old_fake.calls["register"] == 1 and new_fake.calls["register"] == 1


def test_open_account_needs_a_registered_user(onboarding: Onboarding, clock: Clock) -> None:
    kwargs: dict[str, Any] = {"notify_url": NOTIFY_URL, "default_return_url": RETURN_URL, "own_host": None}
    with pytest.raises(UserNotFound):
        onboarding.registration.open_account("nobody", open_body(), **kwargs)
    onboarding.store.claim_registration("half", "digest", clock())
    with pytest.raises(RegistrationRequired):
        onboarding.registration.open_account("half", open_body(), **kwargs)


def test_open_account_page_is_signed_and_the_id_card_kept_first(
    onboarding: Onboarding, merchant_public_key: protocol.PublicKey
) -> None:
    onboarding.registration.register(body())
    page = onboarding.registration.open_account(
        "shop-1",
        open_body(),
        notify_url=NOTIFY_URL,
        default_return_url=RETURN_URL,
        own_host="api.example.com",
    )
    assert page.method == "POST" and page.action == "https://htouhui.test/openapi/user/openAccount"
    assert page.fields["notify_url"] == NOTIFY_URL and page.fields["return_url"] == RETURN_URL
    assert page.fields["partner_id"] == PARTNER and protocol.verify(page.fields, merchant_public_key)
    assert ID_CARD not in page.action
    record = onboarding.store.get("shop-1")
    assert record is not None and record.id_card == ID_CARD and record.open_requested
    view = onboarding.registration.view("shop-1")
    assert view.stage == "OPEN_REQUESTED" and view.id_card == "110***********002X"

    allowed = onboarding.registration.open_account(
        "shop-1",
        open_body(return_url="https://shop.example.com/done"),
        notify_url=NOTIFY_URL,
        default_return_url=RETURN_URL,
        own_host="api.example.com",
    )
    assert allowed.fields["return_url"] == "https://shop.example.com/done"
    with pytest.raises(InvalidInput) as invalid:
        onboarding.registration.open_account(
            "shop-1",
            open_body(return_url="https://evil.example.net/x"),
            notify_url=NOTIFY_URL,
            default_return_url=RETURN_URL,
            own_host="api.example.com",
        )
    assert invalid.value.fields == [("return_url", "return_url_not_allowed")]


# --- notifications and browser returns ------------------------------------------------------------


def test_notifications_are_verified_deduplicated_and_monotonic(
    onboarding: Onboarding, fake: FakeHtouhui, dynamodb: Any
) -> None:
    opened(onboarding)
    fake.set_status("shop-1", 3, id_card=ID_CARD, bank_card_number=CARD)
    three, one = fake.notification("shop-1", 3, "N3"), fake.notification("shop-1", 1, "N1")
    assert onboarding.inbound.accept_notification(three) is ApplyOutcome.APPLIED
    assert onboarding.inbound.accept_notification(three) is ApplyOutcome.DUPLICATE
    assert onboarding.inbound.accept_notification(one) is ApplyOutcome.STALE  # late, out of order: kept as history
    view = onboarding.registration.view("shop-1")
    assert view.status == 3 and view.stage == "COMPLETED" and view.ready_for_debt_matching
    assert view.bank_card_number == "****" + CARD[-4:]
    assert history_count(dynamodb, onboarding.store) == 2


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda f: {**f, "status": "3"}, "bad_signature"),  # changed after signing
        (lambda f: {k: v for k, v in f.items() if k != "sign"}, "bad_signature"),
        (lambda f: {**f, "sign": "not base64!"}, "bad_signature"),
        (lambda f: {**f, "sign_type": "RSA"}, "bad_signature"),
    ],
)
def test_tampered_notifications_change_nothing(
    onboarding: Onboarding,
    fake: FakeHtouhui,
    dynamodb: Any,
    tamper: Callable[[dict[str, str]], dict[str, str]],
    reason: str,
) -> None:
    opened(onboarding)
    with pytest.raises(NotificationRejected) as rejected:
        onboarding.inbound.accept_notification(tamper(fake.notification("shop-1", 1, "T1")))
    assert rejected.value.reason == reason
    assert onboarding.registration.view("shop-1").status is None and history_count(dynamodb, onboarding.store) == 0


def test_other_partner_malformed_and_unknown_are_rejected(
    onboarding: Onboarding, fake: FakeHtouhui, dynamodb: Any
) -> None:
    opened(onboarding)
    cases = {
        ("other_partner", "partner_id"): fake.notification("shop-1", 1, "X1", partner_id="P9999"),
        ("invalid_field", "status"): fake.notification("shop-1", 7, "X2"),
        ("unknown_user", "third_party_user_id"): fake.notification("shop-1", 1, "X4", third_party_user_id="stranger"),
        ("user_mismatch", "htouhui_user_id"): fake.notification("shop-1", 1, "X5", htouhui_user_id="99999"),
    }
    for (reason, field), fields in cases.items():
        with pytest.raises(NotificationRejected) as rejected:
            onboarding.inbound.accept_notification(fields)
        assert (rejected.value.reason, rejected.value.field) == (reason, field) and rejected.value.rule
        assert "shop-1" not in str(rejected.value) and "99999" not in str(rejected.value)
    assert onboarding.registration.view("shop-1").status is None and history_count(dynamodb, onboarding.store) == 0
    assert onboarding.store.get("stranger") is None


def test_key_rotation_accepts_either_htouhui_key(
    store: UserStore, fake: FakeHtouhui, clock: Clock, tmp_path: Any, merchant_public_key: protocol.PublicKey
) -> None:
    new_key = protocol.generate_private_key()
    (tmp_path / "next.pem").write_bytes(protocol.public_pem(new_key))
    settings = settings_for(HTOUHUI_PUBLIC_KEY_NEXT=f"file:{tmp_path / 'next.pem'}")
    onboarding = Onboarding.configured(settings, store, client_factory(settings, fake), clock=clock)
    opened(onboarding)
    assert onboarding.inbound.accept_notification(fake.notification("shop-1", 1, "K1")) is ApplyOutcome.APPLIED
    rotated = FakeHtouhui(PARTNER, new_key, merchant_public_key, state=fake.state)
    assert onboarding.inbound.accept_notification(rotated.notification("shop-1", 2, "K2")) is ApplyOutcome.APPLIED
    stranger = FakeHtouhui(PARTNER, protocol.generate_private_key(), merchant_public_key, state=fake.state)
    with pytest.raises(NotificationRejected):
        onboarding.inbound.accept_notification(stranger.notification("shop-1", 3, "K3"))
    assert onboarding.registration.view("shop-1").status == 2


def test_storage_failure_propagates_and_redelivery_succeeds(
    onboarding: Onboarding, fake: FakeHtouhui, dynamodb: Any
) -> None:
    opened(onboarding)
    notification = fake.notification("shop-1", 1, "S1")
    dynamodb.delete_table(TableName=onboarding.store.notifications_table)
    with pytest.raises(StoreUnavailable):
        onboarding.inbound.accept_notification(notification)
    assert onboarding.registration.view("shop-1").status is None
    dynamodb.create_table(
        TableName=onboarding.store.notifications_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "notify_no", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "notify_no", "KeyType": "HASH"}],
    )
    assert onboarding.inbound.accept_notification(notification) is ApplyOutcome.APPLIED
    assert onboarding.registration.view("shop-1").status == 1


def test_browser_return_applies_without_history(onboarding: Onboarding, fake: FakeHtouhui, dynamodb: Any) -> None:
    opened(onboarding)
    answer = onboarding.inbound.accept_return(fake.browser_return("shop-1", 2))
    assert (answer.status, answer.third_party_user_id, answer.succeeded) == (2, "shop-1", True)
    assert onboarding.registration.view("shop-1").stage == "PASSWORD_SET"
    lower = onboarding.inbound.accept_return(fake.browser_return("shop-1", 1))  # never lowers
    # stored: never lowered; shown: the return's own signed level, never the stored one (issue 19)
    assert onboarding.registration.view("shop-1").status == 2 and lower.status == 1
    failed = onboarding.inbound.accept_return(fake.browser_return("shop-1", 3, code="3001"))
    assert (failed.code, failed.succeeded, failed.status) == ("3001", False, 3)
    with pytest.raises(NotificationRejected, match="bad_signature"):
        onboarding.inbound.accept_return({**fake.browser_return("shop-1", 2), "status": "3"})
    assert onboarding.registration.view("shop-1").status == 2 and history_count(dynamodb, onboarding.store) == 0


# --- query ---------------------------------------------------------------------------------------


def test_refresh_asks_htouhui_and_stores_through_the_monotonic_update(
    onboarding: Onboarding, fake: FakeHtouhui
) -> None:
    onboarding.registration.register(body())
    assert onboarding.registration.refresh("shop-1").status is None and fake.calls["query"] == 0  # no id_card yet
    opened(onboarding)
    assert (
        onboarding.registration.refresh("shop-1").stage == "OPEN_REQUESTED"
    )  # Htouhui: 0 = not opened yet: not stored
    fake.set_status("shop-1", 2, id_card=ID_CARD, bank_card_number=CARD)
    fake.users["shop-1"].borrower = "1"
    view = onboarding.registration.refresh("shop-1")
    assert view.status == 2 and view.borrower == "1" and view.bank_card_number == "****" + CARD[-4:]
    with pytest.raises(UserNotFound):
        onboarding.registration.refresh("nobody")
