"""What the rules' integration tests share: the partner, a settable clock, the settings, the client over the
fake Htouhui, a registered user with a form. The fixtures built from these live in conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers import TEST_KEYS
from htouhui_fake import FakeHtouhui

from htouhui.client import HtouhuiClient
from onboarding.config import Settings
from onboarding.models import OpenAccountBody, RegisterBody
from onboarding.rules import Onboarding
from onboarding.store import UserStore

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


def client_factory(settings: Settings, fake: FakeHtouhui) -> Callable[[], HtouhuiClient]:
    def build() -> HtouhuiClient:
        keys = settings.keys()
        return HtouhuiClient(
            settings.client, keys.merchant_private, keys.htouhui_public, transport=fake.transport, sleep=lambda _: None
        )

    return build


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
