"""`python -m onboarding.ops probe` and `explain`: run as a merchant's engineer would, as a subprocess, against
the sandbox started with each built-in profile; the last line names the profile that works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from helpers import LAYER, PARTNER_ID, TEST_KEYS
from sandbox.server import RunningSandbox

from htouhui import protocol

MERCHANT_PRIVATE = TEST_KEYS / "merchant_private.pem"
HTOUHUI_PUBLIC = TEST_KEYS / "htouhui_public.pem"


def cli(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onboarding.ops", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONPATH": str(LAYER), "PYTHONIOENCODING": "utf-8"},
        timeout=120,
        check=False,
    )


def run_probe(url: str, *extra: str | Path, key: Path = HTOUHUI_PUBLIC) -> subprocess.CompletedProcess[str]:
    return cli(
        "probe", "--base-url", url, "--partner-id", PARTNER_ID, "--key", MERCHANT_PRIVATE, "--htouhui-key", key, *extra
    )


@pytest.mark.parametrize("name", sorted(protocol.BUILT_IN))
def test_the_probe_names_the_profile_each_sandbox_speaks(
    name: str, start_sandbox: Callable[..., RunningSandbox]
) -> None:
    box = start_sandbox(profile=protocol.BUILT_IN[name])
    done = run_probe(box.url)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[-1] == f"the profile that works: {name}"
    report = {line.split()[0]: line for line in lines[1:-1]}
    assert set(report) == set(protocol.BUILT_IN)
    assert "accepted; answer verifies" in report[name]
    assert all("accepted" not in line for other, line in report.items() if other != name)
    assert box.sandbox.store.users == {}  # a query only: nobody registered


def test_key_arguments_take_the_functions_key_sources(start_sandbox: Callable[..., RunningSandbox]) -> None:
    box = start_sandbox()
    done = cli(
        "probe", "--base-url", box.url, "--partner-id", PARTNER_ID,
        "--key", f"file:{MERCHANT_PRIVATE}", "--htouhui-key", f"file:{HTOUHUI_PUBLIC}", "--profile", "default",
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("the profile that works: default"), done.stdout


def test_register_test_user_registers_one_made_up_user(start_sandbox: Callable[..., RunningSandbox]) -> None:
    box = start_sandbox(profile=protocol.BUILT_IN["legacy-sha1"])
    done = run_probe(box.url, "--profile", "legacy-sha1", "--register-test-user")
    assert done.returncode == 0, done.stdout
    assert [user.third_party_user_id.startswith("probe-") for user in box.sandbox.store.users.values()] == [True]


def test_with_the_wrong_htouhui_key_no_profile_works_and_it_says_why(
    start_sandbox: Callable[..., RunningSandbox],
) -> None:
    box = start_sandbox()
    done = run_probe(box.url, key=TEST_KEYS / "merchant_public.pem")
    assert done.returncode == 1
    assert done.stdout.strip().splitlines()[-1] == (
        "no profile works: default accepted our request but the answer does not verify (check --htouhui-key)"
    )


def test_nobody_answering_is_said_plainly() -> None:
    done = run_probe("http://127.0.0.1:9", "--profile", "default")
    assert done.returncode == 1 and "never answered" in done.stdout.strip().splitlines()[-1]


def test_the_production_address_is_refused_without_allow_prod() -> None:
    done = run_probe("https://www.htouhui.com")
    assert done.returncode == 2 and "--allow-prod" in done.stderr


@pytest.mark.parametrize("name", sorted(protocol.BUILT_IN))
def test_explain_names_the_profile_a_captured_notification_verifies_under(
    name: str, htouhui_private_key: Any, tmp_path: Path
) -> None:
    profile = protocol.BUILT_IN[name]
    fields = profile.external({"partner_id": PARTNER_ID, "notify_no": "N1", "notify_type": "OPEN_ACCOUNT"})
    signed = protocol.signed({**fields, "status": "3", "timestamp": profile.timestamp()}, htouhui_private_key, profile)
    done = cli("explain", "--key", HTOUHUI_PUBLIC, stdin=urlencode(signed) + "\r\n")
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == f"verifies under: {name}", done.stdout
    others = [other for other in protocol.BUILT_IN if other != name]
    for other in others:
        assert f"{other:<16} does not verify" in done.stdout
    as_json = cli("explain", "--key", HTOUHUI_PUBLIC, "--profile", name, stdin=json.dumps(signed))
    assert as_json.returncode == 0 and as_json.stdout.strip().endswith(f"verifies under: {name}")


def test_explain_shows_each_profiles_canonical_string_when_nothing_verifies(htouhui_private_key: Any) -> None:
    signed = protocol.signed({"partner_id": PARTNER_ID, "status": "3"}, htouhui_private_key)
    done = cli("explain", "--key", HTOUHUI_PUBLIC, stdin=json.dumps({**signed, "status": "2"}))
    assert done.returncode == 1 and done.stdout.strip().splitlines()[-1].startswith("verifies under no profile")
    assert "canonical string: partner_id=P2026000001&sign_type=RSA2&status=2" in done.stdout
    assert "canonical string: partner_id=P2026000001&status=2" in done.stdout  # alipay-style leaves sign_type out
