"""The active profile reaches every edge: the client's requests and answers, the settings, the CLI, and no
protocol literal lives outside htouhui.protocol (PROTOCOL.md §8)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from helpers import PROTOCOL_DIR, ROOT, TEST_KEYS

from htouhui import protocol
from htouhui.client import ClientOptions, HtouhuiClient
from htouhui.models import QueryRequest, RegisterRequest
from onboarding.config import ConfigError, Settings

BANNED_LITERALS = ['"partner_id"', '"request_no"', '"0000"', '"SUCCESS"', '"RSA2"', "%Y%m%d%H%M%S", "yyyyMMddHHmmss"]
SOURCES = [
    *sorted((ROOT / "layers" / "common").rglob("*.py")),
    *sorted((ROOT / "functions").glob("*/app.py")),
    *sorted((ROOT / "local" / "sandbox").glob("*.py")),
]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_protocol_literal_outside_the_protocol_module(path: Path) -> None:
    if path.relative_to(ROOT).as_posix() == "layers/common/htouhui/protocol.py":
        return
    text = path.read_text(encoding="utf-8")
    found = [literal for literal in BANNED_LITERALS if literal in text]
    assert found == [], f"{path.relative_to(ROOT)} spells {found}: take it from htouhui.protocol's profile"


def htouhui_answering(profile: protocol.Profile, key: Any, seen: list[httpx.Request]) -> httpx.MockTransport:
    """Answers register and query as a gateway of `profile` would, after checking how it was asked."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if profile.request_encoding == "form":
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
            fields = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
        else:
            fields = json.loads(request.content)
        answer = {
            "code": profile.success_code,
            "message": "成功",
            profile.partner_field: fields[profile.partner_field],
            profile.request_field: fields[profile.request_field],
            "timestamp": profile.timestamp(),
            "third_party_user_id": fields["third_party_user_id"],
            "htouhui_user_id": "10000000001",
            "status": "2",
            "borrower": "0",
        }
        return httpx.Response(200, json=protocol.signed(answer, key, profile))

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("name", sorted(protocol.BUILT_IN))
def test_the_client_speaks_the_configured_profile(
    name: str, merchant_private_key: Any, merchant_public_key: Any, htouhui_private_key: Any, htouhui_public_key: Any
) -> None:
    profile = protocol.BUILT_IN[name]
    seen: list[httpx.Request] = []
    client = HtouhuiClient(
        ClientOptions("P2026000001", "https://htouhui.test", profile=profile),
        merchant_private_key,
        [htouhui_public_key],
        transport=htouhui_answering(profile, htouhui_private_key, seen),
    )
    registered = client.register(RegisterRequest(mobile="13800138000", third_party_user_id="u-1"))
    queried = client.query(QueryRequest(id_card="11010519491231002X", third_party_user_id="u-1"))
    assert registered.htouhui_user_id == "10000000001" and queried.status == "2"
    assert registered.code == protocol.SUCCESS  # the layer sees one success code whatever the profile
    for request in seen:
        sent = (
            dict(parse_qsl(request.content.decode()))
            if profile.request_encoding == "form"
            else json.loads(request.content)
        )
        assert sent[profile.partner_field] == "P2026000001" and profile.request_field in sent
        assert sent["sign_type"] == profile.sign_type
        profile.parse_timestamp(sent["timestamp"])
        assert protocol.verify(sent, merchant_public_key, profile)
        others = [other for other in protocol.BUILT_IN.values() if other != profile]
        assert not any(protocol.verify(sent, merchant_public_key, other) for other in others)


def settings_env(**extra: str) -> dict[str, str]:
    return {
        "HTOUHUI_PARTNER_ID": "P2026000001",
        "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
        "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
        **extra,
    }


def test_settings_select_a_profile_by_name_or_file(tmp_path: Path) -> None:
    assert Settings.from_env(settings_env()).profile is protocol.DEFAULT
    assert Settings.from_env(settings_env(HTOUHUI_PROFILE="legacy-sha1")).profile.hash == "SHA1"
    definition = json.loads((PROTOCOL_DIR / "profiles.json").read_text())["profiles"]["alipay-style"]["profile"]
    path = tmp_path / "real-htouhui.json"
    path.write_text(json.dumps({**definition, "ack": "OK"}), encoding="utf-8")
    profile = Settings.from_env(settings_env(HTOUHUI_PROFILE=f"file:{path}")).profile
    assert (profile.partner_field, profile.ack) == ("app_id", "OK")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("alipay", r"HTOUHUI_PROFILE: unknown profile 'alipay'"),
        ("file:/nonexistent/profile.json", r"HTOUHUI_PROFILE: cannot read key file"),
    ],
)
def test_a_bad_profile_setting_fails_at_start_with_one_message(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(settings_env(HTOUHUI_PROFILE=value))


def test_a_profile_file_with_a_bad_knob_is_named_at_start(tmp_path: Path) -> None:
    definition = json.loads((PROTOCOL_DIR / "profiles.json").read_text())["profiles"]["default"]["profile"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**definition, "hash": "SHA512"}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(settings_env(HTOUHUI_PROFILE=f"file:{path}"))
    assert len(caught.value.problems) == 1 and re.search(r"HTOUHUI_PROFILE: .*hash must be", caught.value.problems[0])
