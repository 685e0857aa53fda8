"""Every entry of shared/protocol/vectors.json, read where it lies, through htouhui.protocol."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import PROTOCOL_DIR, TEST_KEYS

from htouhui import protocol

VECTORS_FILE = PROTOCOL_DIR / "vectors.json"


def _keys(signer: str) -> tuple[protocol.PrivateKey, protocol.PublicKey]:
    return (
        protocol.load_private_key((TEST_KEYS / f"{signer}_private.pem").read_text()),
        protocol.load_public_key((TEST_KEYS / f"{signer}_public.pem").read_text()),
    )


def test_vectors_file_has_every_section(vectors: dict[str, Any]) -> None:
    assert vectors["valid"] and vectors["invalid"] and vectors["key_forms"]


def test_valid_vectors_reproduce_canonical_and_sign_byte_for_byte(vectors: dict[str, Any]) -> None:
    for entry in vectors["valid"]:
        private, public = _keys(entry["signer"])
        assert protocol.canonical(entry["fields"]) == entry["canonical"], entry["name"]
        assert protocol.sign(entry["fields"], private) == entry["sign"], entry["name"]
        assert protocol.verify({**entry["fields"], "sign": entry["sign"]}, public), entry["name"]


def test_invalid_vectors_verify_false_without_raising(vectors: dict[str, Any]) -> None:
    for entry in vectors["invalid"]:
        _, public = _keys(entry["signer"])
        assert protocol.verify(entry["fields"], public) is False, entry["name"]


def test_every_key_form_loads_and_signs_like_its_pem_twin(vectors: dict[str, Any]) -> None:
    message = {"partner_id": "P2026000001", "request_no": "R1", "real_name": "张三", "sign_type": "RSA2"}
    for signer, forms in vectors["key_forms"].items():
        private, public = _keys(signer)
        expected = protocol.sign(message, private)
        for form, text in forms.items():
            if "private" in form:
                assert protocol.sign(message, protocol.load_private_key(text)) == expected, form
            else:
                loaded = protocol.load_public_key(text)
                assert protocol.fingerprint(loaded) == protocol.fingerprint(public), form
                assert protocol.verify({**message, "sign": expected}, loaded), form


@pytest.mark.parametrize("signer", ["merchant", "htouhui"])
def test_a_signature_does_not_verify_with_the_other_sides_key(signer: str) -> None:
    private, _ = _keys(signer)
    _, other_public = _keys("htouhui" if signer == "merchant" else "merchant")
    message = protocol.signed({"partner_id": "P1", "request_no": "R1"}, private)
    assert protocol.verify(message, other_public) is False
