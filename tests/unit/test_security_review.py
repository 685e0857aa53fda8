"""The outside security review's findings (issue 19), each pinned: Unicode separators in what we sign, the
return-host allow-list's ports, the canonical string's separators in signed values, bounded log values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from htouhui import protocol
from htouhui.models import OpenAccountForm, RegisterRequest

FORM = {
    "htouhui_user_id": "10001",
    "id_card": "11010519491231002X",
    "type": "0",
    "real_name": "张三",
    "third_party_user_id": "u-1",
    "notify_url": "https://merchant.example.com/htouhui/notify",
    "return_url": "https://merchant.example.com/htouhui/return",
}


def rule_of(model: type, data: dict[str, str], field: str) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = [error for error in caught.value.errors() if error["loc"] == (field,)]
    assert errors, caught.value.errors()
    return str(errors[0]["type"])


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("A\u0085B", "control_characters"),  # NEXT LINE (Cc)
        ("A\u2028B", "real_name_line_separators"),  # LINE SEPARATOR (Zl)
        ("A\u2029B", "real_name_line_separators"),  # PARAGRAPH SEPARATOR (Zp)
        ("A\u00a0B", "real_name_non_ascii_space"),  # NO-BREAK SPACE (Zs)
        ("A\u3000B", "real_name_non_ascii_space"),  # IDEOGRAPHIC SPACE (Zs)
        ("A\u200bB", "real_name_invisible_characters"),  # ZERO WIDTH SPACE (Cf)
    ],
)
def test_real_name_refuses_unicode_separators_naming_the_rule(name: str, rule: str) -> None:
    assert rule_of(OpenAccountForm, {**FORM, "real_name": name}, "real_name") == rule


def test_real_name_keeps_the_ascii_space() -> None:
    assert OpenAccountForm.model_validate({**FORM, "real_name": "Anna Li"}).real_name == "Anna Li"


@pytest.mark.parametrize("character", ["\u2028", "\u2029", "\u0085", "\u00a0", "\u200b"])
def test_urls_refuse_unicode_separators(character: str) -> None:
    url = f"https://merchant.example.com/a{character}b"
    assert rule_of(OpenAccountForm, {**FORM, "return_url": url}, "return_url") == "url_characters"


@pytest.mark.parametrize("character", ["\u2028", "\u0085", "\u00a0"])
def test_password_refuses_unicode_separators(character: str) -> None:
    data = {"third_party_user_id": "u-1", "mobile": "13800138000", "password": f"a{character}b"}
    assert rule_of(RegisterRequest, data, "password") in {"control_characters", "line_separators", "non_ascii_space"}


def test_a_value_with_a_separator_regroups_into_another_message_with_the_same_canonical_string() -> None:
    """Why the rule exists: the review's example, shown on the canonical string itself."""
    honest = {"real_name": "A&request_no=Q0&return_url=https://x.io&zz", "request_no": "R1"}
    forged = {"real_name": "A", "request_no": "Q0", "return_url": "https://x.io", "zz&request_no": "R1"}
    for profile in protocol.BUILT_IN.values():
        assert protocol.canonical(honest, profile) == protocol.canonical(forged, profile)
        assert protocol.ambiguous_fields(honest, profile) == ["real_name"]
    assert protocol.ambiguous_fields({"real_name": "Anna Li", "return_url": "https://x.io/a"}) == []


def test_ambiguous_fields_ignore_what_the_profile_does_not_sign() -> None:
    assert protocol.ambiguous_fields({"sign": "a=b&c", "real_name": "x"}) == []
