"""Settings.from_env: every problem reported at once, every key source, rotation, and the own-key refusal."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities import parameters
from helpers import TEST_KEYS
from moto import mock_aws

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, ENVIRONMENTS, HtouhuiClient
from htouhui.models import RegisterRequest
from onboarding.config import ConfigError, Settings

MERCHANT_PRIVATE_PEM = (TEST_KEYS / "merchant_private.pem").read_text()
MERCHANT_PUBLIC_PEM = (TEST_KEYS / "merchant_public.pem").read_text()
HTOUHUI_PUBLIC_PEM = (TEST_KEYS / "htouhui_public.pem").read_text()
BASE = {
    "HTOUHUI_PARTNER_ID": "P2026000001",
    "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
    "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
}


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    for problem in caught.value.problems:
        assert problem in str(caught.value)
    return caught.value.problems


def key_problems_of(env: dict[str, str]) -> list[str]:
    settings = Settings.from_env(env)
    with pytest.raises(ConfigError) as caught:
        settings.keys()
    return caught.value.problems


# --- plain settings ------------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.partner_id == "P2026000001"
    assert settings.client.partner_id == "P2026000001"
    assert settings.client.base_url == ENVIRONMENTS["uat"]
    assert settings.client.query_path == DEFAULT_QUERY_PATH
    assert (settings.client.timeouts.connect, settings.client.timeouts.read) == (2.0, 5.0)
    assert (settings.client.retry.max_attempts, settings.client.retry.total_seconds) == (3, 12.0)
    assert settings.key_cache_seconds == 300
    assert settings.allowed_return_hosts == frozenset()
    assert settings.client.open_account_url == "https://new-uat.test.htouhui.com/openapi/user/openAccount"


def test_every_setting_read() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "HTOUHUI_ENV": "prod",
            "HTOUHUI_QUERY_PATH": "/openapi/v2/user/info",
            "ALLOWED_RETURN_HOSTS": " www.Example.com, app.example.com ,,",
            "PUBLIC_BASE_URL": "https://api.example.com/",
            "FRONTEND_RETURN_URL": "https://www.example.com/onboarding/done",
            "USERS_TABLE": "users",
            "HTOUHUI_CONNECT_TIMEOUT": "1.5",
            "HTOUHUI_READ_TIMEOUT": "8",
            "HTOUHUI_MAX_ATTEMPTS": "5",
            "HTOUHUI_RETRY_SECONDS": "20",
            "KEY_CACHE_SECONDS": "60",
            "HTOUHUI_PUBLIC_KEY_NEXT": MERCHANT_PUBLIC_PEM,
        }
    )
    assert settings.client.base_url == "https://www.htouhui.com"
    assert settings.client.query_path == "/openapi/v2/user/info"
    assert settings.allowed_return_hosts == frozenset({"www.example.com", "app.example.com"})
    assert settings.public_base_url == "https://api.example.com"
    assert settings.frontend_return_url == "https://www.example.com/onboarding/done"
    assert settings.users_table == "users"
    assert (settings.client.timeouts.connect, settings.client.timeouts.read) == (1.5, 8.0)
    assert (settings.client.retry.max_attempts, settings.client.retry.total_seconds) == (5, 20.0)
    assert settings.key_cache_seconds == 60
    assert len(settings.htouhui_public_key_sources) == 2


@pytest.mark.parametrize(("environment", "url"), ENVIRONMENTS.items())
def test_environment_names(environment: str, url: str) -> None:
    assert Settings.from_env({**BASE, "HTOUHUI_ENV": environment}).client.base_url == url


def test_an_explicit_base_url_wins_and_loopback_http_is_allowed() -> None:
    settings = Settings.from_env({**BASE, "HTOUHUI_ENV": "prod", "HTOUHUI_BASE_URL": "http://127.0.0.1:3100"})
    assert settings.client.base_url == "http://127.0.0.1:3100"


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {
            "HTOUHUI_ENV": "production",
            "HTOUHUI_QUERY_PATH": "openapi/user/query",
            "PUBLIC_BASE_URL": "http://api.example.com",
            "FRONTEND_RETURN_URL": "not a url",
            "HTOUHUI_CONNECT_TIMEOUT": "fast",
            "HTOUHUI_READ_TIMEOUT": "0",
            "HTOUHUI_MAX_ATTEMPTS": "2.5",
            "HTOUHUI_RETRY_SECONDS": "1e9",
            "KEY_CACHE_SECONDS": "-1",
        }
    )
    expected = [
        "HTOUHUI_PARTNER_ID is required",
        "HTOUHUI_ENV must be one of uat, stage, prod",
        "HTOUHUI_QUERY_PATH must start with '/'",
        "MERCHANT_PRIVATE_KEY is required",
        "HTOUHUI_PUBLIC_KEY is required",
        "PUBLIC_BASE_URL must be an https URL",
        "FRONTEND_RETURN_URL must be an https URL",
        "HTOUHUI_CONNECT_TIMEOUT must be a number",
        "HTOUHUI_READ_TIMEOUT must be between",
        "HTOUHUI_MAX_ATTEMPTS must be a whole number",
        "HTOUHUI_RETRY_SECONDS must be between",
        "KEY_CACHE_SECONDS must be between",
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), (start, problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HTOUHUI_PARTNER_ID", "P" * 33, "HTOUHUI_PARTNER_ID must be at most 32"),
        ("HTOUHUI_PARTNER_ID", "   ", "HTOUHUI_PARTNER_ID is required"),
        ("HTOUHUI_BASE_URL", "http://new-uat.test.htouhui.com", "HTOUHUI_BASE_URL must be an https URL"),
        ("HTOUHUI_BASE_URL", "new-uat.test.htouhui.com", "HTOUHUI_BASE_URL must be an https URL"),
        ("HTOUHUI_MAX_ATTEMPTS", "0", "HTOUHUI_MAX_ATTEMPTS must be between 1 and 10"),
        ("HTOUHUI_MAX_ATTEMPTS", "11", "HTOUHUI_MAX_ATTEMPTS must be between 1 and 10"),
        ("HTOUHUI_READ_TIMEOUT", "nan", "HTOUHUI_READ_TIMEOUT must be between"),
        ("HTOUHUI_CONNECT_TIMEOUT", "inf", "HTOUHUI_CONNECT_TIMEOUT must be between"),
        ("KEY_CACHE_SECONDS", "5m", "KEY_CACHE_SECONDS must be a whole number"),
    ],
)
def test_one_problem(name: str, value: str, message: str) -> None:
    assert [problem for problem in problems_of({**BASE, name: value}) if problem.startswith(message)]


# --- keys -------------------------------------------------------------------------------------------------------


def test_keys_from_files() -> None:
    keys = Settings.from_env(BASE).keys()
    assert protocol.fingerprint(keys.merchant_private) == protocol.fingerprint(
        protocol.load_public_key(MERCHANT_PUBLIC_PEM)
    )
    (htouhui,) = keys.htouhui_public
    assert protocol.fingerprint(htouhui) == protocol.fingerprint(protocol.load_public_key(HTOUHUI_PUBLIC_PEM))


def test_htouhui_keys_alone_never_read_the_merchant_key(tmp_path: Path) -> None:
    settings = Settings.from_env({**BASE, "MERCHANT_PRIVATE_KEY": f"file:{tmp_path / 'unreadable.pem'}"})
    (htouhui,) = settings.htouhui_public_keys()
    assert protocol.fingerprint(htouhui) == protocol.fingerprint(protocol.load_public_key(HTOUHUI_PUBLIC_PEM))
    with pytest.raises(ConfigError, match="MERCHANT_PRIVATE_KEY"):
        settings.keys()


def test_keys_inline_pem() -> None:
    keys = Settings.from_env(
        {**BASE, "MERCHANT_PRIVATE_KEY": MERCHANT_PRIVATE_PEM, "HTOUHUI_PUBLIC_KEY": HTOUHUI_PUBLIC_PEM}
    ).keys()
    assert protocol.fingerprint(keys.merchant_private) == protocol.fingerprint(
        protocol.load_public_key(MERCHANT_PUBLIC_PEM)
    )


def test_keys_inline_pem_with_escaped_line_ends() -> None:
    """What a PEM looks like after `KEY="$(awk ...)"` or a JSON config: literal backslash-n, one line."""
    escaped_private = MERCHANT_PRIVATE_PEM.replace("\n", "\\n")
    escaped_public = HTOUHUI_PUBLIC_PEM.replace("\n", "\\n")
    assert "\n" not in escaped_private
    keys = Settings.from_env(
        {**BASE, "MERCHANT_PRIVATE_KEY": escaped_private, "HTOUHUI_PUBLIC_KEY": escaped_public}
    ).keys()
    assert len(keys.htouhui_public) == 1


def test_keys_bare_base64_der(vectors: dict[str, Any]) -> None:
    forms = vectors["key_forms"]
    env = {
        **BASE,
        "MERCHANT_PRIVATE_KEY": forms["merchant"]["private_pkcs8_bare_base64"],
        "HTOUHUI_PUBLIC_KEY": forms["htouhui"]["public_spki_bare_base64"],
    }
    keys = Settings.from_env(env).keys()
    assert protocol.fingerprint(keys.htouhui_public[0]) == protocol.fingerprint(
        protocol.load_public_key(HTOUHUI_PUBLIC_PEM)
    )


def test_keys_are_loaded_once_and_reused() -> None:
    settings = Settings.from_env(BASE)
    assert settings.keys() is settings.keys()


def test_the_merchants_own_public_key_as_htouhuis_is_refused() -> None:
    for own in (MERCHANT_PUBLIC_PEM, f"file:{TEST_KEYS / 'merchant_public.pem'}"):
        problems = key_problems_of({**BASE, "HTOUHUI_PUBLIC_KEY": own})
        assert any("merchant's own public key" in problem for problem in problems), problems


def test_the_merchants_own_public_key_as_the_next_key_is_refused_too() -> None:
    problems = key_problems_of({**BASE, "HTOUHUI_PUBLIC_KEY_NEXT": MERCHANT_PUBLIC_PEM})
    assert any("merchant's own public key" in problem for problem in problems)


def test_key_problems_name_the_setting_and_never_the_key_text(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    garbage = "-----BEGIN PRIVATE KEY-----\nTOPSECRETNOTAKEY\n-----END PRIVATE KEY-----"
    problems = key_problems_of(
        {
            **BASE,
            "MERCHANT_PRIVATE_KEY": garbage,
            "HTOUHUI_PUBLIC_KEY": f"file:{missing}",
            "HTOUHUI_PUBLIC_KEY_NEXT": "@@@",
        }
    )
    assert len(problems) == 3, problems
    assert problems[0].startswith("MERCHANT_PRIVATE_KEY: ")
    assert problems[1].startswith("HTOUHUI_PUBLIC_KEY: ") and str(missing) in problems[1]
    assert problems[2].startswith("HTOUHUI_PUBLIC_KEY_NEXT: ")
    assert "TOPSECRET" not in " ".join(problems)


def test_a_key_file_that_is_not_text_is_a_config_problem(tmp_path: Path) -> None:
    binary = tmp_path / "key.der"
    binary.write_bytes(b"\x30\x82\xff\xfe")
    problems = key_problems_of({**BASE, "MERCHANT_PRIVATE_KEY": f"file:{binary}"})
    assert problems[0].startswith("MERCHANT_PRIVATE_KEY: cannot read key file")


def test_a_public_key_where_the_private_key_belongs_is_a_config_problem() -> None:
    problems = key_problems_of({**BASE, "MERCHANT_PRIVATE_KEY": HTOUHUI_PUBLIC_PEM})
    assert problems[0].startswith("MERCHANT_PRIVATE_KEY: ")


def test_two_htouhui_keys_either_signature_verifies_through_the_client(
    tmp_path: Path, htouhui_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    next_private = protocol.generate_private_key()
    (tmp_path / "next.pem").write_bytes(protocol.public_pem(next_private))
    settings = Settings.from_env({**BASE, "HTOUHUI_PUBLIC_KEY_NEXT": f"file:{tmp_path / 'next.pem'}"})
    keys = settings.keys()
    assert len(keys.htouhui_public) == 2

    for signer in (htouhui_private_key, next_private):

        def handle(request: httpx.Request, signer: protocol.PrivateKey = signer) -> httpx.Response:
            body = json.loads(request.content)
            assert protocol.verify(body, merchant_public_key)
            answer = {
                "code": "0000",
                "message": "成功",
                "partner_id": body["partner_id"],
                "request_no": body["request_no"],
                "timestamp": protocol.china_timestamp(),
                "third_party_user_id": body["third_party_user_id"],
                "htouhui_user_id": "10000000001",
            }
            return httpx.Response(200, json=protocol.signed(answer, signer))

        client = HtouhuiClient(
            settings.client, keys.merchant_private, keys.htouhui_public, transport=httpx.MockTransport(handle)
        )
        request = RegisterRequest(mobile="13800138000", third_party_user_id="u-1")
        assert client.register(request).htouhui_user_id == "10000000001"
        client.close()


# --- Secrets Manager and SSM through Powertools Parameters, against moto ----------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()  # providers hold a boto3 client made outside the mock
    with mock_aws():
        yield
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()


def test_keys_from_secrets_manager_and_ssm(aws: None) -> None:
    boto3.client("secretsmanager").create_secret(Name="htouhui/merchant-private", SecretString=MERCHANT_PRIVATE_PEM)
    boto3.client("ssm").put_parameter(Name="/htouhui/public", Value=HTOUHUI_PUBLIC_PEM, Type="SecureString")
    env = {
        **BASE,
        "MERCHANT_PRIVATE_KEY": "secretsmanager:htouhui/merchant-private",
        "HTOUHUI_PUBLIC_KEY": "ssm:/htouhui/public",
    }
    keys = Settings.from_env(env).keys()
    assert protocol.fingerprint(keys.merchant_private) == protocol.fingerprint(
        protocol.load_public_key(MERCHANT_PUBLIC_PEM)
    )
    assert protocol.fingerprint(keys.htouhui_public[0]) == protocol.fingerprint(
        protocol.load_public_key(HTOUHUI_PUBLIC_PEM)
    )


def test_a_binary_secret_holding_a_pem_is_read(aws: None) -> None:
    boto3.client("secretsmanager").create_secret(Name="bin", SecretBinary=MERCHANT_PRIVATE_PEM.encode())
    keys = Settings.from_env({**BASE, "MERCHANT_PRIVATE_KEY": "secretsmanager:bin"}).keys()
    assert keys.merchant_private.key_size == 2048


def test_a_missing_secret_is_a_config_problem_naming_the_source(aws: None) -> None:
    problems = key_problems_of(
        {**BASE, "MERCHANT_PRIVATE_KEY": "secretsmanager:missing", "HTOUHUI_PUBLIC_KEY": "ssm:/missing"}
    )
    assert problems[0].startswith("MERCHANT_PRIVATE_KEY: cannot read secretsmanager:missing")
    assert problems[1].startswith("HTOUHUI_PUBLIC_KEY: cannot read ssm:/missing")


def test_a_rotated_secret_reaches_warm_settings_after_the_cache_time(
    aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="htouhui/public", SecretString=HTOUHUI_PUBLIC_PEM)
    env = {**BASE, "HTOUHUI_PUBLIC_KEY": "secretsmanager:htouhui/public", "KEY_CACHE_SECONDS": "60"}
    settings = Settings.from_env(env)
    now = [0.0]
    first = settings.keys(clock=lambda: now[0])

    rotated = protocol.generate_private_key()
    secrets.put_secret_value(SecretId="htouhui/public", SecretString=protocol.public_pem(rotated).decode())
    now[0] = 30.0
    assert settings.keys(clock=lambda: now[0]) is first  # still cached
    parameters.clear_caches()  # Powertools' own cache (same max age, real time) has expired too
    now[0] = 61.0
    second = settings.keys(clock=lambda: now[0])
    assert protocol.fingerprint(second.htouhui_public[0]) == protocol.fingerprint(rotated)

    # A reload that fails keeps the keys that work, and says so.
    secrets.delete_secret(SecretId="htouhui/public", ForceDeleteWithoutRecovery=True)
    parameters.clear_caches()
    now[0] = 200.0
    with caplog.at_level(logging.WARNING, logger="onboarding.config"):
        assert settings.keys(clock=lambda: now[0]) is second
    assert any("reloading the keys failed" in record.getMessage() for record in caplog.records)


def test_the_first_load_failing_is_an_error(aws: None) -> None:
    settings = Settings.from_env({**BASE, "HTOUHUI_PUBLIC_KEY": "secretsmanager:not-yet"})
    with pytest.raises(ConfigError):
        settings.keys()


def test_the_policy_allows_return_urls_on_configured_hosts_only() -> None:
    from onboarding.core import Policy

    policy = Policy.of(
        Settings.from_env(
            {**BASE, "ALLOWED_RETURN_HOSTS": "www.example.com", "PUBLIC_BASE_URL": "https://api.example.com"}
        )
    )
    assert policy.allows_return_url("https://www.example.com/done")
    assert policy.allows_return_url("https://api.example.com/x")
    assert policy.allows_return_url("https://own.example.com/x", own_host="own.example.com")
    assert not policy.allows_return_url("https://evil.example.com/")
    assert not policy.allows_return_url("http://www.example.com/done")
    assert not policy.allows_return_url("https://www.example.com.evil.com/")
