"""`python -m htouhui` as a merchant's engineer runs it: a subprocess with layers/common on PYTHONPATH."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import LAYER, TEST_KEYS

from htouhui import protocol

MERCHANT_PRIVATE = TEST_KEYS / "merchant_private.pem"
MERCHANT_PUBLIC = TEST_KEYS / "merchant_public.pem"
HTOUHUI_PRIVATE = TEST_KEYS / "htouhui_private.pem"
HTOUHUI_PUBLIC = TEST_KEYS / "htouhui_public.pem"


def run(*args: str | Path, stdin: str | bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(LAYER), "PYTHONIOENCODING": "utf-8"}
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "htouhui", *map(str, args)],
        input=data,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def vector(vectors: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in vectors["valid"] if entry["name"] == name)


def test_a_vector_reproduced_through_the_cli(vectors: dict[str, Any]) -> None:
    """canonical, sign and verify of every valid vector, byte for byte, in three processes each."""
    for entry in vectors["valid"]:
        fields = json.dumps(entry["fields"], ensure_ascii=False)
        private = TEST_KEYS / f"{entry['signer']}_private.pem"
        public = TEST_KEYS / f"{entry['signer']}_public.pem"
        canonical = run("canonical", stdin=fields)
        assert canonical.returncode == 0, canonical.stderr
        assert canonical.stdout == entry["canonical"] + "\n", entry["name"]
        signed = run("sign", "--key", private, stdin=fields)
        assert signed.returncode == 0, signed.stderr
        assert signed.stdout.strip() == entry["sign"], entry["name"]
        verified = run("verify", "--key", public, stdin=json.dumps({**entry["fields"], "sign": entry["sign"]}))
        assert (verified.returncode, verified.stdout) == (0, "valid\n"), entry["name"]
        if entry is vectors["valid"][1]:
            break  # two vectors are proof enough; each process costs a fraction of a second


def test_verify_invalid_exits_1_with_hash_and_fingerprint_but_no_values(vectors: dict[str, Any]) -> None:
    entry = vector(vectors, "register-request")
    tampered = {**entry["fields"], "sign": entry["sign"], "mobile": "13900139000"}
    done = run("verify", "--key", MERCHANT_PUBLIC, stdin=json.dumps(tampered))
    assert (done.returncode, done.stdout) == (1, "invalid\n")
    expected_hash = hashlib.sha256(protocol.canonical(tampered).encode()).hexdigest()
    assert f"canonical_sha256={expected_hash}" in done.stderr
    assert protocol.fingerprint(protocol.load_public_key(MERCHANT_PUBLIC.read_text())) in done.stderr
    assert "13900139000" not in done.stderr and "Pa55word" not in done.stderr


def test_verify_with_two_keys_accepts_either(tmp_path: Path) -> None:
    fields = {"partner_id": "P1", "request_no": "R1", "real_name": "张三"}
    by_merchant = json.dumps(protocol.signed(fields, protocol.load_private_key(MERCHANT_PRIVATE.read_text())))
    by_htouhui = json.dumps(protocol.signed(fields, protocol.load_private_key(HTOUHUI_PRIVATE.read_text())))
    for message in (by_merchant, by_htouhui):
        assert run("verify", "--key", HTOUHUI_PUBLIC, "--key", MERCHANT_PUBLIC, stdin=message).returncode == 0
    assert run("verify", "--key", HTOUHUI_PUBLIC, stdin=by_merchant).returncode == 1


def test_verify_accepts_every_key_form(tmp_path: Path, vectors: dict[str, Any]) -> None:
    message = json.dumps(protocol.signed({"a": "1"}, protocol.load_private_key(HTOUHUI_PRIVATE.read_text())))
    for form, text in vectors["key_forms"]["htouhui"].items():
        if "public" in form:
            path = tmp_path / f"{form}.pem"
            path.write_bytes(text.encode())
            assert run("verify", "--key", path, stdin=message).stdout == "valid\n", form


def test_sign_with_a_pkcs1_private_key(tmp_path: Path, vectors: dict[str, Any]) -> None:
    entry = vector(vectors, "register-request")
    path = tmp_path / "pkcs1.pem"
    path.write_text(vectors["key_forms"]["merchant"]["private_pkcs1_pem"])
    assert run("sign", "--key", path, stdin=json.dumps(entry["fields"])).stdout.strip() == entry["sign"]


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "error:"),
        (b"not json", "error:"),
        (b"[1, 2]", "one JSON object whose values are all strings"),
        (b'{"a": 1}', "one JSON object whose values are all strings"),
        (b'{"a": null}', "one JSON object whose values are all strings"),
        (b"\xff\xfe{}", "error:"),
    ],
    ids=["empty", "not-json", "array", "number", "null", "not-utf8"],
)
def test_bad_stdin_exits_2_with_a_message(stdin: bytes, message: str) -> None:
    for command in (["canonical"], ["sign", "--key", str(MERCHANT_PRIVATE)], ["verify", "--key", str(HTOUHUI_PUBLIC)]):
        done = run(*command, stdin=stdin)
        assert done.returncode == 2, (command, done.stderr)
        assert message in done.stderr
        assert done.stdout == ""
        assert "Traceback" not in done.stderr


def test_a_bad_key_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a key")
    for command in ("sign", "verify"):
        done = run(command, "--key", tmp_path / "bad.pem", stdin="{}")
        assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
        done = run(command, "--key", tmp_path / "missing.pem", stdin="{}")
        assert done.returncode == 2 and "missing.pem" in done.stderr


def test_sign_with_a_public_key_exits_2() -> None:
    done = run("sign", "--key", MERCHANT_PUBLIC, stdin="{}")
    assert done.returncode == 2 and "private key" in done.stderr


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("sign").returncode == 2  # --key is required
    assert run("frobnicate").returncode == 2


def test_keygen_writes_a_pkcs8_and_spki_pair_private_0600(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "new"
    done = run("keygen", "--out", out)
    assert done.returncode == 0, done.stderr
    private, public = out / "merchant_private.pem", out / "merchant_public.pem"
    private_text, public_text = private.read_text(), public.read_text()
    assert private_text.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, not "RSA PRIVATE KEY"
    assert public_text.startswith("-----BEGIN PUBLIC KEY-----\n")  # SPKI, not "RSA PUBLIC KEY"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = protocol.load_private_key(private_text)
    assert key.key_size == 2048
    assert protocol.fingerprint(key) == protocol.fingerprint(protocol.load_public_key(public_text))
    assert protocol.fingerprint(key) in done.stdout

    # The new pair works with the other commands.
    message = json.dumps({"a": "1", "sign_type": "RSA2"})
    signature = run("sign", "--key", private, stdin=message).stdout.strip()
    assert (
        run("verify", "--key", public, stdin=json.dumps({"a": "1", "sign_type": "RSA2", "sign": signature})).returncode
        == 0
    )
    assert run("fingerprint", "--key", private).stdout.strip() == protocol.fingerprint(key)
    assert run("fingerprint", "--key", public).stdout.strip() == protocol.fingerprint(key)


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    assert run("keygen", "--out", tmp_path).returncode == 0
    before = (tmp_path / "merchant_private.pem").read_text()
    done = run("keygen", "--out", tmp_path)
    assert done.returncode == 2 and "exists" in done.stderr and "--force" in done.stderr
    assert (tmp_path / "merchant_private.pem").read_text() == before

    (tmp_path / "merchant_private.pem").chmod(0o644)
    assert run("keygen", "--out", tmp_path, "--force").returncode == 0
    assert (tmp_path / "merchant_private.pem").read_text() != before
    assert stat.S_IMODE((tmp_path / "merchant_private.pem").stat().st_mode) == 0o600


def test_keygen_refuses_when_only_the_public_file_exists(tmp_path: Path) -> None:
    (tmp_path / "merchant_public.pem").write_text("keep me")
    assert run("keygen", "--out", tmp_path).returncode == 2
    assert not (tmp_path / "merchant_private.pem").exists()


@pytest.mark.parametrize("how", ["name", "path"])
def test_every_profile_vector_through_the_cli(how: str, tmp_path: Path) -> None:
    profiles = json.loads((TEST_KEYS.parent / "profiles.json").read_text(encoding="utf-8"))["profiles"]
    for name, entry in profiles.items():
        reference: str | Path = name
        if how == "path":
            reference = tmp_path / f"{name}.json"
            reference.write_text(json.dumps(entry["profile"]), encoding="utf-8")
        case = entry["valid"][-1]
        fields = json.dumps(case["fields"], ensure_ascii=False)
        assert run("canonical", "--profile", reference, stdin=fields).stdout.strip() == case["canonical"]
        private, public = (TEST_KEYS / f"{case['signer']}_{kind}.pem" for kind in ("private", "public"))
        assert run("sign", "--key", private, "--profile", reference, stdin=fields).stdout.strip() == case["sign"]
        signed = json.dumps({**case["fields"], "sign": case["sign"]}, ensure_ascii=False)
        assert run("verify", "--key", public, "--profile", reference, stdin=signed).returncode == 0
        others = [other for other in profiles if other != name]
        assert run("verify", "--key", public, "--profile", others[0], stdin=signed).returncode == 1


def test_an_unknown_profile_is_a_usage_error() -> None:
    done = run("canonical", "--profile", "alipay", stdin="{}")
    assert done.returncode == 2 and "unknown profile 'alipay'" in done.stderr
