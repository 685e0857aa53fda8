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


def test_a_private_key_whose_parameters_do_not_fit_together_is_refused() -> None:
    """The key is loaded without cryptography's slow parameter check (cold start); one signature verified with
    its public half refuses a key that cannot sign, as that check did, in every form the key may come in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    good = protocol.load_private_key((TEST_KEYS / "merchant_private.pem").read_text())
    numbers = good.private_numbers()
    wrong_d = numbers.d + 2  # a private exponent that does not invert e: its signatures do not verify
    broken = rsa.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=wrong_d,
        dmp1=wrong_d % (numbers.p - 1),
        dmq1=wrong_d % (numbers.q - 1),
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    pem = broken.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(protocol.KeyFormatError):
        protocol.load_private_key(pem)
    with pytest.raises(protocol.KeyFormatError):
        protocol.load_private_key(pem.decode("ascii").split("-----")[2].replace("\n", ""))  # bare base64 DER
    assert protocol.sign({"a": "1"}, good)  # the good key still loads and signs
