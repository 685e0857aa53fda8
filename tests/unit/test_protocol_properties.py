"""Property tests of htouhui.protocol: round trips, tampering, and verify never raising."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from htouhui import protocol

# RSA signing costs about a millisecond: keep the example counts modest so the file runs in seconds.
FEW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

names = st.text(min_size=1, max_size=20).filter(lambda name: name != protocol.SIGN_FIELD)
values = st.text(min_size=1, max_size=40)
# Plain field names: no '=' or '&', so one field's text can never pass for another's (see the ambiguity test).
plain_names = st.text(
    alphabet=st.characters(exclude_characters="=&", exclude_categories=("Cs",)), min_size=1, max_size=20
).filter(lambda name: name not in (protocol.SIGN_FIELD, "sign_type"))
field_sets = st.dictionaries(names, values, min_size=1, max_size=8)


@FEW
@given(fields=field_sets)
def test_sign_then_verify_round_trips_for_arbitrary_unicode(
    fields: dict[str, str], merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    message = protocol.signed(fields, merchant_private_key)
    assert message["sign_type"] == "RSA2"
    assert protocol.verify(message, merchant_public_key)
    assert protocol.verify(message, [merchant_public_key])


@FEW
@given(fields=field_sets)
def test_canonical_sorts_by_utf8_bytes_drops_empty_and_sign(fields: dict[str, str]) -> None:
    with_noise = {**fields, "sign": "whatever", "zz-empty": "", "zz-none": None}
    expected = sorted(
        (name.encode("utf-8"), value) for name, value in fields.items() if name not in ("zz-empty", "zz-none")
    )
    assert protocol.canonical(with_noise) == "&".join(f"{name.decode()}={value}" for name, value in expected)


@st.composite
def value_tampering(draw: st.DrawFn) -> tuple[dict[str, str], str, str]:
    """A field set, one of its names and a different value for it: one character changed, inserted or dropped."""
    fields = draw(st.dictionaries(names, values, min_size=1, max_size=6))
    name = draw(st.sampled_from(sorted(fields)))
    value = fields[name]
    position = draw(st.integers(0, len(value) - 1))
    how = draw(st.sampled_from(["replace", "insert", "delete", "empty"]))
    if how == "replace":
        other = draw(st.characters(exclude_categories=("Cs",)).filter(lambda c: c != value[position]))
        changed = value[:position] + other + value[position + 1 :]
    elif how == "insert":
        changed = value[:position] + draw(st.characters(exclude_categories=("Cs",))) + value[position:]
    elif how == "delete":
        changed = value[:position] + value[position + 1 :]
    else:
        changed = ""  # the field drops out of the canonical string: that too must fail
    return fields, name, changed


@FEW
@given(case=value_tampering())
def test_changing_one_character_of_any_signed_value_fails(
    case: tuple[dict[str, str], str, str],
    merchant_private_key: protocol.PrivateKey,
    merchant_public_key: protocol.PublicKey,
) -> None:
    fields, name, changed = case
    message = protocol.signed(fields, merchant_private_key)
    assert protocol.verify({**message, name: changed}, merchant_public_key) is False


@FEW
@given(
    fields=st.dictionaries(plain_names, values, min_size=1, max_size=6),
    data=st.data(),
)
def test_changing_one_character_of_any_plain_field_name_fails(
    fields: dict[str, str],
    data: st.DataObject,
    merchant_private_key: protocol.PrivateKey,
    merchant_public_key: protocol.PublicKey,
) -> None:
    message = protocol.signed(fields, merchant_private_key)
    name = data.draw(st.sampled_from(sorted(fields)))
    position = data.draw(st.integers(0, len(name) - 1))
    other = data.draw(st.characters(exclude_characters="=&", exclude_categories=("Cs",)))
    renamed = name[:position] + other + name[position + 1 :]
    assume(renamed != name and renamed not in message and renamed != protocol.SIGN_FIELD)
    tampered = {(renamed if key == name else key): value for key, value in message.items()}
    assert protocol.verify(tampered, merchant_public_key) is False


@FEW
@given(data=st.data())
def test_a_changed_sign_type_or_a_dropped_field_fails(
    data: st.DataObject, merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    fields = data.draw(st.dictionaries(plain_names, values, min_size=2, max_size=6))
    message = protocol.signed(fields, merchant_private_key)
    dropped = data.draw(st.sampled_from(sorted(fields)))
    other_sign_type = data.draw(values.filter(lambda value: value != "RSA2"))
    assume("extra" not in fields)
    assert protocol.verify({k: v for k, v in message.items() if k != dropped}, merchant_public_key) is False
    assert protocol.verify({**message, "sign_type": other_sign_type}, merchant_public_key) is False
    assert protocol.verify({**message, "extra": data.draw(values)}, merchant_public_key) is False


def test_the_canonical_string_is_ambiguous_when_values_carry_separators(
    merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    """What is true of PROTOCOL.md §3: values are raw, so '&' and '=' inside one can pass for two fields.

    This is why models.py keeps `third_party_user_id` (and every id) free of '&' and '='.
    """
    one = protocol.signed({"a": "1&b=2"}, merchant_private_key)
    two = {"a": "1", "b": "2", "sign_type": "RSA2", "sign": one["sign"]}
    assert protocol.canonical(one) == protocol.canonical(two)
    assert protocol.verify(two, merchant_public_key)


junk_text = st.one_of(st.none(), st.text(max_size=60), st.text(alphabet="ABCDEFabcdef0123456789+/=", max_size=400))
junk_values = st.one_of(junk_text, st.integers(), st.binary(max_size=20), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(st.text(max_size=10), junk_text, max_size=6),
    sign_type=st.one_of(st.none(), st.just("RSA2"), st.text(max_size=10)),
    sign=junk_values,
    key_count=st.integers(0, 2),
)
def test_verify_never_raises_on_junk(
    fields: dict[str, Any],
    sign_type: Any,
    sign: Any,
    key_count: int,
    merchant_public_key: protocol.PublicKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    message = {**fields, "sign_type": sign_type, "sign": sign}
    keys = [merchant_public_key, htouhui_public_key][:key_count]
    assert protocol.verify(message, keys) is False


@pytest.mark.parametrize(
    "sign",
    [
        "",
        "not base64!",
        "QUJD",  # valid base64, far too short
        base64.b64encode(b"\0" * 256).decode(),  # the right length, all zeros
        base64.b64encode(b"\xff" * 256).decode(),  # larger than the modulus
        base64.b64encode(b"\0" * 512).decode(),  # too long
        "签名",
        "\ud800",
    ],
)
def test_verify_is_false_for_malformed_signatures(sign: str, merchant_public_key: protocol.PublicKey) -> None:
    assert protocol.verify({"a": "1", "sign_type": "RSA2", "sign": sign}, merchant_public_key) is False


def test_verify_survives_fields_that_are_not_valid_unicode(
    merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    """json.loads('"\\ud800"') gives a lone surrogate: such a field cannot be encoded, so it cannot verify."""
    message = protocol.signed({"a": "1"}, merchant_private_key)
    assert protocol.verify({**message, "b": "\ud800"}, merchant_public_key) is False
    assert protocol.verify({**message, "\udfff": "x"}, merchant_public_key) is False


def test_verify_with_no_keys_is_false(merchant_private_key: protocol.PrivateKey) -> None:
    assert protocol.verify(protocol.signed({"a": "1"}, merchant_private_key), []) is False


def test_either_of_two_keys_verifies(
    merchant_private_key: protocol.PrivateKey,
    htouhui_private_key: protocol.PrivateKey,
    merchant_public_key: protocol.PublicKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    keys = (key for key in [htouhui_public_key, merchant_public_key])  # any iterable, even a generator
    assert protocol.verify(protocol.signed({"a": "1"}, merchant_private_key), keys)
    assert protocol.verify(protocol.signed({"a": "1"}, htouhui_private_key), [merchant_public_key, htouhui_public_key])


def test_a_failed_verification_logs_hash_and_fingerprints_never_values(
    caplog: pytest.LogCaptureFixture,
    merchant_private_key: protocol.PrivateKey,
    merchant_public_key: protocol.PublicKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    secret_values = {"mobile": "13800138000", "id_card": "11010519491231002X", "real_name": "张三丰"}
    message = protocol.signed(secret_values, merchant_private_key)
    tampered = {**message, "real_name": "李四"}
    with caplog.at_level(logging.WARNING, logger="htouhui.protocol"):
        assert protocol.verify(tampered, [htouhui_public_key, merchant_public_key]) is False
    (record,) = [r for r in caplog.records if r.name == "htouhui.protocol"]
    assert record.levelno == logging.WARNING
    expected_hash = hashlib.sha256(protocol.canonical(tampered).encode("utf-8")).hexdigest()
    assert record.canonical_sha256 == expected_hash  # type: ignore[attr-defined]
    assert record.key_fingerprints == [  # type: ignore[attr-defined]
        protocol.fingerprint(htouhui_public_key),
        protocol.fingerprint(merchant_public_key),
    ]
    assert record.reason == "no key matches"  # type: ignore[attr-defined]
    everything = record.getMessage() + repr(record.__dict__)
    for value in [*secret_values.values(), "李四", message["sign"]]:
        assert value not in everything


def test_a_successful_verification_logs_nothing(
    caplog: pytest.LogCaptureFixture, merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    with caplog.at_level(logging.DEBUG, logger="htouhui.protocol"):
        assert protocol.verify(protocol.signed({"a": "1"}, merchant_private_key), merchant_public_key)
    assert not caplog.records


def test_fingerprint_is_the_same_for_a_private_key_and_its_public_key(
    merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    assert protocol.fingerprint(merchant_private_key) == protocol.fingerprint(merchant_public_key)
    assert len(protocol.fingerprint(merchant_public_key)) == 64
