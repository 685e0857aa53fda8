"""Every rule of htouhui.models, and that each error names the field (loc) and the rule (type)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from htouhui import models
from htouhui.models import (
    BrowserReturn,
    Notification,
    OpenAccountForm,
    OpenAccountNotification,
    QueryRequest,
    QueryResponse,
    RegisterRequest,
    RegisterResponse,
)
from onboarding.models import OpenAccountBody, RegisterBody

VALID_ID_CARD = "11010519491231002X"  # the example of GB 11643-1999 itself
OTHER_VALID_ID_CARDS = ["440524188001010014", "110101199001010015", "440301199003071230"]
INVALID_CHECK_DIGIT = ["110105194912310021", "440524188001010015", "11010119900101001X"]

REGISTER = {"mobile": "13800138000", "password": "Pa55word", "third_party_user_id": "u-10001"}
FORM = {
    "htouhui_user_id": "10000000001",
    "id_card": VALID_ID_CARD,
    "type": "0",
    "real_name": "张三",
    "third_party_user_id": "u-10001",
    "notify_url": "https://api.example.com/htouhui/notify",
    "return_url": "https://www.example.com/done?from=htouhui&step=1",
}
RESPONSE_COMMON = {
    "code": "0000",
    "message": "成功",
    "partner_id": "P2026000001",
    "request_no": "REG20261128000001",
    "timestamp": "20261128153001",
    "sign_type": "RSA2",
    "sign": "c2lnbg==",
}
REGISTER_RESPONSE = {**RESPONSE_COMMON, "htouhui_user_id": "10000000001", "third_party_user_id": "u-10001"}
QUERY_RESPONSE = {
    **RESPONSE_COMMON,
    "htouhui_user_id": "10000000001",
    "third_party_user_id": "u-10001",
    "status": "3",
    "borrower": "0",
    "bank_card_number": "6222020200112233445",
}
NOTIFICATION = {
    "partner_id": "P2026000001",
    "notify_no": "N20261128000001",
    "notify_type": "OPEN_ACCOUNT",
    "timestamp": "20261128154000",
    "sign_type": "RSA2",
    "sign": "c2lnbg==",
    "htouhui_user_id": "10000000001",
    "third_party_user_id": "u-10001",
    "status": "1",
    "bank_card_number": "6222020200112233445",
}
BROWSER_RETURN = {
    **RESPONSE_COMMON,
    "htouhui_user_id": "10000000001",
    "third_party_user_id": "u-10001",
    "status": "2",
}


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(tuple(error["loc"]), error["type"]) for error in caught.value.errors()]


def assert_rule(model: type[BaseModel], data: dict[str, Any], field: str, rule: str) -> None:
    found = errors_of(model, data)
    assert found == [((field,), rule)], found


def test_the_valid_examples_are_valid() -> None:
    assert RegisterRequest.model_validate(REGISTER).fields() == REGISTER
    assert OpenAccountForm.model_validate(FORM).fields() == FORM
    assert QueryRequest.model_validate({"id_card": VALID_ID_CARD, "third_party_user_id": "u-1"})
    assert RegisterResponse.model_validate(REGISTER_RESPONSE).htouhui_user_id == "10000000001"
    assert QueryResponse.model_validate(QUERY_RESPONSE).status == "3"
    assert OpenAccountNotification.model_validate(NOTIFICATION).status == "1"
    assert BrowserReturn.model_validate(BROWSER_RETURN).status == "2"
    assert RegisterBody.model_validate({"third_party_user_id": "u-1", "mobile": "13800138000"})
    assert OpenAccountBody.model_validate({"id_card": VALID_ID_CARD, "real_name": "张三"}).type == "0"


# --- maximum lengths of the seed (characters, not bytes): at the limit passes, one over fails -----------

LENGTHS: list[tuple[type[BaseModel], dict[str, Any], str, int, str]] = [
    (RegisterRequest, REGISTER, "password", 16, "p"),
    (RegisterRequest, REGISTER, "third_party_user_id", 50, "u"),
    (OpenAccountForm, FORM, "real_name", 60, "张"),
    (OpenAccountForm, FORM, "third_party_user_id", 50, "u"),
    (OpenAccountForm, FORM, "htouhui_user_id", 11, "1"),
    (RegisterResponse, REGISTER_RESPONSE, "partner_id", 32, "P"),
    (RegisterResponse, REGISTER_RESPONSE, "third_party_user_id", 50, "u"),
    (RegisterResponse, REGISTER_RESPONSE, "htouhui_user_id", 11, "1"),
    (QueryResponse, QUERY_RESPONSE, "third_party_user_id", 50, "u"),
    (OpenAccountNotification, NOTIFICATION, "partner_id", 32, "P"),
    (OpenAccountNotification, NOTIFICATION, "notify_no", 32, "N"),
]


@pytest.mark.parametrize(("model", "base", "field", "limit", "character"), LENGTHS)
def test_maximum_length(model: type[BaseModel], base: dict[str, Any], field: str, limit: int, character: str) -> None:
    model.model_validate({**base, field: character * limit})
    found = errors_of(model, {**base, field: character * (limit + 1)})
    assert found[0][0] == (field,)
    assert found[0][1] in ("string_too_long", "htouhui_user_id_pattern")
    assert [loc for loc, _ in found] == [(field,)]


@pytest.mark.parametrize(
    ("field", "limit"), [("notify_url", 200), ("return_url", 256)], ids=["notify_url", "return_url"]
)
def test_url_maximum_lengths(field: str, limit: int) -> None:
    prefix = "https://www.example.com/"
    OpenAccountForm.model_validate({**FORM, field: prefix + "a" * (limit - len(prefix))})
    assert_rule(OpenAccountForm, {**FORM, field: prefix + "a" * (limit + 1 - len(prefix))}, field, "string_too_long")


# --- tolerant fields (PROTOCOL.md §9): what we only store or show is read as absent when it breaks its rule ---

TOLERANT: list[tuple[type[BaseModel], dict[str, Any], str, str]] = [
    (RegisterResponse, REGISTER_RESPONSE, "message", "错" * 257),
    (RegisterResponse, REGISTER_RESPONSE, "message", "line\nbreak"),
    (RegisterResponse, REGISTER_RESPONSE, "timestamp", "2" * 33),
    (QueryResponse, QUERY_RESPONSE, "bank_card_number", "6" * 31),
    (QueryResponse, QUERY_RESPONSE, "bank_card_number", "6222\t0202"),
    (QueryResponse, QUERY_RESPONSE, "borrower", "Y"),
    (QueryResponse, QUERY_RESPONSE, "borrower", "2"),
    (OpenAccountNotification, NOTIFICATION, "bank_card_number", "6" * 31),
    (OpenAccountNotification, NOTIFICATION, "timestamp", "x" * 33),
    (OpenAccountNotification, NOTIFICATION, "notify_type", "T" * 33),
]


@pytest.mark.parametrize(("model", "base", "field", "value"), TOLERANT)
def test_a_tolerant_field_that_breaks_its_rule_is_read_as_absent(
    model: type[models._Wire], base: dict[str, Any], field: str, value: str
) -> None:
    ignored: list[tuple[str, str]] = []
    message = model.model_validate({**base, field: value}, context={models.IGNORED: ignored})
    assert getattr(message, field) is None
    assert [name for name, _ in ignored] == [field] and ignored[0][1]  # the rule is named, never the value
    assert getattr(model.model_validate(base), field) == base[field]  # and the valid value is read as sent


@pytest.mark.parametrize(
    "card", ["622202******1234", "6222 0202 0011 2233 445", "6222-0202-0011-2233", "6" * 30, "****1234"]
)
def test_bank_card_numbers_are_taken_as_sent_within_30_characters(card: str) -> None:
    assert QueryResponse.model_validate({**QUERY_RESPONSE, "bank_card_number": card}).bank_card_number == card
    assert OpenAccountNotification.model_validate({**NOTIFICATION, "bank_card_number": card}).bank_card_number == card


@pytest.mark.parametrize("notify_no", ["N-1", "通知 0001", "a:b/c?d=e&f", "N" * 32, "#1 (retry)"])
def test_notify_no_may_hold_any_printable_characters(notify_no: str) -> None:
    assert OpenAccountNotification.model_validate({**NOTIFICATION, "notify_no": notify_no}).notify_no == notify_no


@pytest.mark.parametrize(("notify_no", "rule"), [("N" * 33, "string_too_long"), ("N\t1", "not_printable")])
def test_notify_no_decides_dedup_so_it_stays_checked(notify_no: str, rule: str) -> None:
    assert_rule(OpenAccountNotification, {**NOTIFICATION, "notify_no": notify_no}, "notify_no", rule)


@pytest.mark.parametrize("empty", ["", None])
@pytest.mark.parametrize(
    ("model", "base", "field"),
    [
        (RegisterResponse, REGISTER_RESPONSE, "message"),
        (RegisterResponse, REGISTER_RESPONSE, "timestamp"),
        (QueryResponse, QUERY_RESPONSE, "bank_card_number"),
        (QueryResponse, QUERY_RESPONSE, "borrower"),
        (QueryResponse, QUERY_RESPONSE, "htouhui_user_id"),
        (OpenAccountNotification, NOTIFICATION, "bank_card_number"),
        (OpenAccountNotification, NOTIFICATION, "timestamp"),
    ],
)
def test_empty_null_and_missing_mean_the_same(
    model: type[BaseModel], base: dict[str, Any], field: str, empty: str | None
) -> None:
    missing = model.model_validate({k: v for k, v in base.items() if k != field})
    assert model.model_validate({**base, field: empty}) == missing and getattr(missing, field) is None


def test_unknown_fields_are_ignored_whatever_they_hold() -> None:
    extra = {"extra": "x", "memo": "", "nested_looking": "{a:1}", "空": "值"}
    assert OpenAccountNotification.model_validate({**NOTIFICATION, **extra}) == OpenAccountNotification.model_validate(
        NOTIFICATION
    )


def test_a_notification_of_another_type_needs_no_status() -> None:
    other = {k: v for k, v in NOTIFICATION.items() if k not in ("status", "htouhui_user_id", "third_party_user_id")}
    assert Notification.model_validate({**other, "notify_type": "WITHDRAW"}).notify_type == "WITHDRAW"
    assert Notification.model_validate({k: v for k, v in other.items() if k != "notify_type"}).notify_type is None


def test_code_shape_is_strict() -> None:
    assert_rule(RegisterResponse, {**REGISTER_RESPONSE, "code": "00000"}, "code", "string_pattern_mismatch")
    assert_rule(RegisterResponse, {**REGISTER_RESPONSE, "code": ""}, "code", "missing")


# --- mobile ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mobile", ["13800138000", "19912345678", "15000000000"])
def test_mobile_valid(mobile: str) -> None:
    assert RegisterRequest.model_validate({**REGISTER, "mobile": mobile}).mobile == mobile


@pytest.mark.parametrize(
    ("mobile", "rule"),
    [
        ("12800138000", "mobile_pattern"),  # second digit 2
        ("23800138000", "mobile_pattern"),
        ("1380013800a", "mobile_pattern"),
        ("１３８００１３８０００", "mobile_pattern"),  # full-width digits are 11 characters but not ASCII
        ("1380013800", "string_too_short"),
        ("138001380000", "string_too_long"),
    ],
)
def test_mobile_invalid(mobile: str, rule: str) -> None:
    assert_rule(RegisterRequest, {**REGISTER, "mobile": mobile}, "mobile", rule)
    assert_rule(RegisterBody, {"third_party_user_id": "u-1", "mobile": mobile}, "mobile", rule)


def test_password_is_optional_and_rejects_control_characters() -> None:
    assert RegisterRequest.model_validate({**REGISTER, "password": None}).fields().get("password") is None
    assert (
        "password" not in RegisterRequest.model_validate({"mobile": "13800138000", "third_party_user_id": "u"}).fields()
    )
    assert_rule(RegisterRequest, {**REGISTER, "password": "a\nb"}, "password", "control_characters")


# --- id_card: GB 11643 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("id_card", [VALID_ID_CARD, *OTHER_VALID_ID_CARDS])
def test_id_card_valid_check_digit(id_card: str) -> None:
    assert QueryRequest.model_validate({"id_card": id_card, "third_party_user_id": "u-1"}).id_card == id_card
    assert models.id_card_check_character(id_card[:17]) == id_card[17]


def test_id_card_lower_case_x_is_accepted_and_normalised() -> None:
    lower = VALID_ID_CARD.lower()
    assert QueryRequest.model_validate({"id_card": lower, "third_party_user_id": "u-1"}).id_card == VALID_ID_CARD
    assert OpenAccountForm.model_validate({**FORM, "id_card": lower}).fields()["id_card"] == VALID_ID_CARD
    assert OpenAccountBody.model_validate({"id_card": lower, "real_name": "张三"}).id_card == VALID_ID_CARD


@pytest.mark.parametrize("id_card", INVALID_CHECK_DIGIT)
def test_id_card_wrong_check_digit(id_card: str) -> None:
    assert_rule(QueryRequest, {"id_card": id_card, "third_party_user_id": "u-1"}, "id_card", "id_card_check_digit")


@pytest.mark.parametrize(
    ("id_card", "rule"),
    [
        ("1101051949123100XX", "id_card_format"),
        ("X1010519491231002X", "id_card_format"),
        ("11010519491231002Y", "id_card_format"),
        ("11010519491231002", "string_too_short"),
        ("11010519491231002X0", "string_too_long"),
        ("１１010519491231002X", "id_card_format"),
    ],
)
def test_id_card_malformed(id_card: str, rule: str) -> None:
    assert_rule(OpenAccountForm, {**FORM, "id_card": id_card}, "id_card", rule)


# --- type and real_name -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["0", "1", "2"])
def test_type_accepts_0_1_2(kind: str) -> None:
    assert OpenAccountForm.model_validate({**FORM, "type": kind}).type == kind


@pytest.mark.parametrize("kind", ["3", "", "00", "a"])
def test_type_rejects_anything_else(kind: str) -> None:
    found = errors_of(OpenAccountForm, {**FORM, "type": kind})
    assert ((("type",), "literal_error")) in found


def test_type_defaults_to_0_and_then_real_name_is_required() -> None:
    without = {k: v for k, v in FORM.items() if k not in ("type", "real_name")}
    assert_rule(OpenAccountForm, without, "real_name", "real_name_required")


@pytest.mark.parametrize("kind", ["0", "1"])
def test_real_name_required_for_type_0_and_1(kind: str) -> None:
    without = {k: v for k, v in FORM.items() if k != "real_name"}
    assert_rule(OpenAccountForm, {**without, "type": kind}, "real_name", "real_name_required")
    assert_rule(OpenAccountBody, {"id_card": VALID_ID_CARD, "type": kind}, "real_name", "real_name_required")


def test_real_name_not_required_for_type_2() -> None:
    without = {k: v for k, v in FORM.items() if k != "real_name"}
    form = OpenAccountForm.model_validate({**without, "type": "2"})
    assert "real_name" not in form.fields()
    assert OpenAccountBody.model_validate({"id_card": VALID_ID_CARD, "type": "2"}).real_name is None


def test_real_name_empty_or_with_control_characters_fails() -> None:
    assert_rule(OpenAccountForm, {**FORM, "real_name": ""}, "real_name", "string_too_short")
    assert_rule(OpenAccountForm, {**FORM, "real_name": "张\u0000三"}, "real_name", "control_characters")


# --- notify_url / return_url -----------------------------------------------------------------------------------------

GOOD_URLS = [
    "https://www.example.com/done",
    "https://www.example.com:8443/done?a=1&b='2'",
    "http://127.0.0.1:3000/htouhui/notify",
    "http://[::1]:3000/htouhui/notify",
    "http://localhost:3000/htouhui/notify",
    "http://LOCALHOST/x",
]
BAD_URLS = [
    ("http://www.example.com/done", "url_scheme"),
    ("http://localhost.example.com/x", "url_scheme"),
    ("http://10.0.0.1/x", "url_scheme"),
    ("ftp://www.example.com/x", "url_scheme"),
    ("javascript:alert(1)", "url_host"),
    ("/relative/path", "url_host"),
    ("https://", "url_host"),
    ("https://user:pw@www.example.com/", "url_credentials"),
    ("https://www.exa\nmple.com/", "url_characters"),
    ("https://www.example.com/a b", "url_characters"),
]


@pytest.mark.parametrize("field", ["notify_url", "return_url"])
@pytest.mark.parametrize("url", GOOD_URLS)
def test_callback_urls_accepted(field: str, url: str) -> None:
    assert OpenAccountForm.model_validate({**FORM, field: url}).fields()[field] == url


@pytest.mark.parametrize("field", ["notify_url", "return_url"])
@pytest.mark.parametrize(("url", "rule"), BAD_URLS)
def test_callback_urls_rejected(field: str, url: str, rule: str) -> None:
    assert_rule(OpenAccountForm, {**FORM, field: url}, field, rule)


def test_api_body_return_url_is_optional_but_checked() -> None:
    body = {"id_card": VALID_ID_CARD, "real_name": "张三"}
    assert OpenAccountBody.model_validate(body).return_url is None
    assert_rule(OpenAccountBody, {**body, "return_url": "http://evil.example.com/"}, "return_url", "url_scheme")


# --- answers from Htouhui ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["0", "1", "2", "3"])
def test_status_0_to_3(status: str) -> None:
    assert QueryResponse.model_validate({**QUERY_RESPONSE, "status": status}).status == status
    assert OpenAccountNotification.model_validate({**NOTIFICATION, "status": status}).status == status
    assert BrowserReturn.model_validate({**BROWSER_RETURN, "status": status}).status == status


@pytest.mark.parametrize("status", ["4", "-1", "01", " 1", "1 ", "３"])
def test_status_out_of_range(status: str) -> None:
    assert_rule(QueryResponse, {**QUERY_RESPONSE, "status": status}, "status", "literal_error")
    assert_rule(OpenAccountNotification, {**NOTIFICATION, "status": status}, "status", "literal_error")
    assert_rule(BrowserReturn, {**BROWSER_RETURN, "status": status}, "status", "literal_error")


@pytest.mark.parametrize("empty", ["", None])
def test_status_decides_state_so_empty_is_missing(empty: str | None) -> None:
    assert_rule(QueryResponse, {**QUERY_RESPONSE, "status": empty}, "status", "missing")
    assert_rule(OpenAccountNotification, {**NOTIFICATION, "status": empty}, "status", "missing")
    assert_rule(BrowserReturn, {**BROWSER_RETURN, "status": empty}, "status", "status_required")


def test_a_return_that_did_not_succeed_needs_no_level() -> None:
    failed = BrowserReturn.model_validate({**RESPONSE_COMMON, "code": "3001"})
    assert not failed.succeeded and failed.status is None and failed.third_party_user_id is None


@pytest.mark.parametrize("borrower", ["0", "1"])
def test_borrower_valid(borrower: str) -> None:
    assert QueryResponse.model_validate({**QUERY_RESPONSE, "borrower": borrower}).borrower == borrower


def test_register_response_requires_htouhui_user_id_on_success() -> None:
    without = {k: v for k, v in REGISTER_RESPONSE.items() if k != "htouhui_user_id"}
    assert_rule(RegisterResponse, without, "htouhui_user_id", "htouhui_user_id_required")


def test_register_response_without_htouhui_user_id_is_fine_on_an_error_code() -> None:
    without = {k: v for k, v in REGISTER_RESPONSE.items() if k != "htouhui_user_id"}
    assert RegisterResponse.model_validate({**without, "code": "2001", "message": "已注册"}).htouhui_user_id is None


def test_htouhui_user_id_is_digits() -> None:
    assert_rule(
        RegisterResponse,
        {**REGISTER_RESPONSE, "htouhui_user_id": "1000a"},
        "htouhui_user_id",
        "htouhui_user_id_pattern",
    )


def test_wire_models_ignore_unknown_fields_and_outbound_models_forbid_them() -> None:
    assert "extra" not in RegisterResponse.model_validate({**REGISTER_RESPONSE, "extra": "x"}).fields()
    assert_rule(RegisterRequest, {**REGISTER, "extra": "x"}, "extra", "extra_forbidden")


@pytest.mark.parametrize(
    ("model", "base", "field"),
    [
        (RegisterResponse, REGISTER_RESPONSE, "code"),
        (RegisterResponse, REGISTER_RESPONSE, "third_party_user_id"),
        (QueryResponse, QUERY_RESPONSE, "status"),
        (OpenAccountNotification, NOTIFICATION, "notify_no"),
        (OpenAccountNotification, NOTIFICATION, "htouhui_user_id"),
        (OpenAccountNotification, NOTIFICATION, "third_party_user_id"),
        (OpenAccountNotification, NOTIFICATION, "partner_id"),
    ],
)
def test_mandatory_fields_are_missing_errors(model: type[BaseModel], base: dict[str, Any], field: str) -> None:
    assert_rule(model, {k: v for k, v in base.items() if k != field}, field, "missing")


def test_values_must_be_strings_not_numbers() -> None:
    assert_rule(OpenAccountNotification, {**NOTIFICATION, "status": 1}, "status", "literal_error")
    assert_rule(RegisterBody, {"third_party_user_id": "u-1", "mobile": 13800138000}, "mobile", "string_type")


def test_third_party_user_id_keeps_to_safe_characters() -> None:
    for bad in ["u&b=2", "u/1", "u 1", "用户"]:
        assert_rule(
            RegisterRequest,
            {**REGISTER, "third_party_user_id": bad},
            "third_party_user_id",
            "third_party_user_id_pattern",
        )


def test_no_error_message_repeats_the_value() -> None:
    """A 400 may show `msg`: it names the rule, never the personal value."""
    secret = "13800138000"
    with pytest.raises(ValidationError) as caught:
        OpenAccountForm.model_validate({**FORM, "id_card": "440524188001010015", "real_name": "张\u0000三"})
    for error in caught.value.errors():
        assert "440524188001010015" not in error["msg"] and "张" not in error["msg"]
    with pytest.raises(ValidationError) as caught:
        RegisterRequest.model_validate({**REGISTER, "mobile": "2" + secret[1:]})
    assert secret[1:] not in caught.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        (" 张三", "real_name_surrounding_spaces"),
        ("张三 ", "real_name_surrounding_spaces"),
        ("\u3000张三", "real_name_surrounding_spaces"),  # an ideographic space
        ("张\u200b三", "real_name_invisible_characters"),  # zero-width space
        ("\ufeff张三", "real_name_invisible_characters"),  # a byte-order mark pasted from a file
        ("张\u200d三", "real_name_invisible_characters"),  # zero-width joiner
    ],
)
def test_real_name_refuses_what_the_banks_check_would_fail_on_later(name: str, rule: str) -> None:
    assert_rule(OpenAccountBody, {"id_card": VALID_ID_CARD, "real_name": name}, "real_name", rule)


@pytest.mark.parametrize("name", ["张三", "Mary Jane", "阿卜杜·热合曼"])
def test_real_names_with_inner_spaces_and_dots_are_fine(name: str) -> None:
    assert OpenAccountBody.model_validate({"id_card": VALID_ID_CARD, "real_name": name}).real_name == name


@pytest.mark.parametrize("user", [".", ".."])
def test_a_third_party_user_id_must_be_usable_as_a_path_segment(user: str) -> None:
    assert_rule(
        RegisterBody,
        {"third_party_user_id": user, "mobile": "13800138000"},
        "third_party_user_id",
        "third_party_user_id_dot_segment",
    )
    assert RegisterBody.model_validate({"third_party_user_id": "...", "mobile": "13800138000"})
