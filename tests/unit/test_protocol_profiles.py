"""PROTOCOL.md §8: every profile's vectors reproduced byte for byte, by name and from a file; no message
signed under one profile verifies under another; a bad profile fails with one message naming the knob."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import PROTOCOL_DIR

from htouhui import protocol
from htouhui.protocol import BUILT_IN, KNOBS, Profile, ProfileError, load_profile

PROFILES: dict[str, Any] = json.loads((PROTOCOL_DIR / "profiles.json").read_text(encoding="utf-8"))["profiles"]
VALID = [(name, case) for name, entry in PROFILES.items() for case in entry["valid"]]
INVALID = [(name, case) for name, entry in PROFILES.items() for case in entry["invalid"]]


@pytest.fixture(scope="module")
def keys(
    merchant_private_key: Any, merchant_public_key: Any, htouhui_private_key: Any, htouhui_public_key: Any
) -> dict[str, tuple[Any, Any]]:
    return {
        "merchant": (merchant_private_key, merchant_public_key),
        "htouhui": (htouhui_private_key, htouhui_public_key),
    }


def as_file(name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(PROFILES[name]["profile"]), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_built_in_profiles_are_the_shared_definitions(name: str) -> None:
    assert BUILT_IN[name].to_json() == PROFILES[name]["profile"]
    assert set(PROFILES[name]["profile"]) == set(KNOBS)


@pytest.mark.parametrize("how", ["name", "file:", "path"])
@pytest.mark.parametrize(("name", "case"), VALID, ids=[f"{n}/{c['name']}" for n, c in VALID])
def test_valid_vectors_reproduce_byte_for_byte(
    name: str, case: dict[str, Any], how: str, keys: dict[str, Any], tmp_path: Path
) -> None:
    reference = {"name": name, "file:": f"file:{as_file(name, tmp_path)}", "path": str(as_file(name, tmp_path))}[how]
    profile = load_profile(reference)
    private, public = keys[case["signer"]]
    assert protocol.canonical(case["fields"], profile) == case["canonical"]
    assert protocol.sign(case["fields"], private, profile) == case["sign"]
    assert protocol.verify({**case["fields"], "sign": case["sign"]}, public, profile)


@pytest.mark.parametrize(("name", "case"), INVALID, ids=[f"{n}/{c['name']}" for n, c in INVALID])
def test_invalid_vectors_do_not_verify(name: str, case: dict[str, Any], keys: dict[str, Any]) -> None:
    _, public = keys[case["signer"]]
    assert protocol.verify(case["fields"], public, BUILT_IN[name]) is False


@pytest.mark.parametrize(("name", "case"), VALID, ids=[f"{n}/{c['name']}" for n, c in VALID])
def test_a_message_signed_under_one_profile_verifies_under_no_other(
    name: str, case: dict[str, Any], keys: dict[str, Any]
) -> None:
    private, public = keys[case["signer"]]
    message = protocol.signed(case["fields"], private, BUILT_IN[name])
    for other_name, other in BUILT_IN.items():
        assert protocol.verify(message, public, other) is (other_name == name), other_name


def test_a_sender_cannot_choose_sha1_by_its_sign_type(htouhui_private_key: Any, htouhui_public_key: Any) -> None:
    legacy = BUILT_IN["legacy-sha1"]
    fields = {"partner_id": "P1", "status": "3"}
    downgraded = protocol.signed(fields, htouhui_private_key, legacy)  # SHA-1, sign_type "RSA"
    assert protocol.verification_failure(downgraded, htouhui_public_key) == "unknown sign_type"
    relabelled = {**downgraded, "sign_type": "RSA2"}  # SHA-1 signature presented as RSA2
    assert protocol.verification_failure(relabelled, htouhui_public_key) == "no key matches"


def test_default_profile_bytes_are_todays(vectors: dict[str, Any], merchant_private_key: Any) -> None:
    case = vectors["valid"][0]
    assert protocol.sign(case["fields"], merchant_private_key) == case["sign"]
    assert protocol.sign(case["fields"], merchant_private_key, BUILT_IN["default"]) == case["sign"]


@pytest.mark.parametrize(
    ("change", "knob"),
    [
        ({"hash": "MD5"}, "hash"),
        ({"sign_type_in_canonical": "yes"}, "sign_type_in_canonical"),
        ({"empty_values": "skip"}, "empty_values"),
        ({"timestamp_format": "yyyyMMdd"}, "timestamp_format"),
        ({"timestamp_format": "yyyy-MM-dd HH:mm:ss.SSS"}, "timestamp_format"),
        ({"partner_field": "partner id"}, "partner_field"),
        ({"request_field": "sign"}, "request_field"),
        ({"request_encoding": "xml"}, "request_encoding"),
        ({"success_code": "OK"}, "success_code"),
        ({"ack": ""}, "ack"),
        ({"sign_type": ""}, "sign_type"),
        ({"request_field": "partner_id"}, "partner_field and request_field"),
    ],
)
def test_a_bad_profile_fails_with_one_message_naming_the_knob(change: dict[str, Any], knob: str) -> None:
    with pytest.raises(ProfileError, match=knob):
        Profile.from_json({**PROFILES["default"]["profile"], **change}, "mine")


def test_a_profile_file_with_missing_or_unknown_keys_is_named(tmp_path: Path) -> None:
    definition = {k: v for k, v in PROFILES["default"]["profile"].items() if k != "ack"}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**definition, "acknowledge": "OK"}), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"missing ack; unknown acknowledge"):
        load_profile(f"file:{path}")
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ProfileError, match="not JSON"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="unknown profile 'alipay'"):
        load_profile("alipay")


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_timestamps_round_trip_in_each_format(name: str) -> None:
    profile = BUILT_IN[name]
    stamp = profile.timestamp()
    assert profile.timestamp(profile.parse_timestamp(stamp)) == stamp
    with pytest.raises(ValueError, match=profile.timestamp_format):
        profile.parse_timestamp("2026/12/02")


def test_internal_and_external_names() -> None:
    alipay = BUILT_IN["alipay-style"]
    received = {"app_id": "P1", "out_request_no": "R1", "code": "10000", "partner_id": "stray"}
    assert alipay.internal(received) == {"partner_id": "P1", "request_no": "R1", "code": "0000"}
    assert alipay.external({"partner_id": "P1", "request_no": "R1", "code": "0000"}) == {
        "app_id": "P1",
        "out_request_no": "R1",
        "code": "10000",
    }
    assert alipay.internal({"code": "1001"})["code"] == "1001"
