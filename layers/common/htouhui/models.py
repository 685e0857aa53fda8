"""Typed models for every message of the seed and PROTOCOL.md, and for our own API's bodies.

Wire models (`*Request`, `*Response`, `Notification`, `BrowserReturn`, `OpenAccountForm`) carry the
seed's maximum lengths and rules. Every rule raises an error that names the rule, so that a 400
can say exactly which field broke which rule without echoing the value (it may be personal data).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from htouhui.options import LOOPBACK_HOSTS as LOOPBACK_HOSTS  # re-exported: defined with the client options
from htouhui.options import is_loopback_host as is_loopback_host
from htouhui.protocol import SUCCESS, present

logger = logging.getLogger(__name__)

# --- field rules ----------------------------------------------------------------------------------

MOBILE_PATTERN: Final = re.compile(r"^1[3-9][0-9]{9}$")
HTOUHUI_USER_ID_PATTERN: Final = re.compile(r"^[0-9]{1,11}$")
# The merchant's own user id travels in our URL paths and in Htouhui's canonical string: keep it to
# characters that need no escaping in either (no '&', '=', '/', '?', spaces).
THIRD_PARTY_USER_ID_PATTERN: Final = re.compile(r"^[0-9A-Za-z_.:@-]{1,50}$")
ID_CARD_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_CHECK_CHARACTERS: Final = "10X98765432"
DOT_SEGMENTS: Final = frozenset({".", ".."})

Status = Literal["0", "1", "2", "3"]
OpenAccountType = Literal["0", "1", "2"]
Borrower = Literal["0", "1"]


def _rule(name: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(name, message)


def id_card_check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a resident identity number."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, ID_CARD_WEIGHTS, strict=True))
    return ID_CARD_CHECK_CHARACTERS[total % 11]


def _check_id_card(value: str) -> str:
    if not re.fullmatch(r"[0-9]{17}[0-9Xx]", value):
        raise _rule("id_card_format", "id_card must be 17 digits followed by a digit or X")
    if value[17].upper() != id_card_check_character(value[:17]):
        raise _rule("id_card_check_digit", "id_card check digit does not match (GB 11643)")
    return value.upper()


def _check_mobile(value: str) -> str:
    if not MOBILE_PATTERN.fullmatch(value):
        raise _rule("mobile_pattern", "mobile must be 11 digits starting with 13 to 19")
    return value


def _check_htouhui_user_id(value: str) -> str:
    if not HTOUHUI_USER_ID_PATTERN.fullmatch(value):
        raise _rule("htouhui_user_id_pattern", "htouhui_user_id must be 1 to 11 digits")
    return value


def _check_third_party_user_id(value: str) -> str:
    if not THIRD_PARTY_USER_ID_PATTERN.fullmatch(value):
        raise _rule(
            "third_party_user_id_pattern",
            "third_party_user_id must be 1 to 50 of letters, digits and _ . : @ -",
        )
    if value in DOT_SEGMENTS:  # a URL path segment of its own: /users/.. would name another resource
        raise _rule("third_party_user_id_dot_segment", "third_party_user_id must not be . or ..")
    return value


# Unicode categories no value we send may hold: controls (Cc, U+0085 among them), invisible formatting (Cf),
# line and paragraph separators (Zl, Zp). Spaces (Zs) other than U+0020 are refused where a space is allowed.
REFUSED_CATEGORIES: Final = {
    "Cc": ("control_characters", "must not contain control characters"),
    "Cf": ("invisible_characters", "must not contain zero-width or other invisible characters"),
    "Zl": ("line_separators", "must not contain line or paragraph separators"),
    "Zp": ("line_separators", "must not contain line or paragraph separators"),
}


def _refused_character(value: str, *, prefix: str = "") -> None:
    """Raise the rule of the first character of a refused category, or of a space other than U+0020."""
    for character in value:
        category = unicodedata.category(character)
        if category in REFUSED_CATEGORIES:
            rule, message = REFUSED_CATEGORIES[category]
            raise _rule(rule if category == "Cc" else prefix + rule, message)  # controls: one rule everywhere
        if category == "Zs" and character != " ":
            raise _rule(prefix + "non_ascii_space", "must not contain a space other than U+0020")


def _check_callback_url(value: str) -> str:
    # urlsplit silently drops tabs and line ends, so check the value itself: it is signed and sent as is.
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in value):
        raise _rule("url_characters", "URL must not contain spaces or control characters")
    try:
        _refused_character(value)
    except PydanticCustomError:
        raise _rule("url_characters", "URL must not contain spaces, separators or invisible characters") from None
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host:
        raise _rule("url_host", "URL must be absolute, with a host")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        if parts.username or parts.password:
            raise _rule("url_credentials", "URL must not carry credentials")
        return value
    raise _rule("url_scheme", "URL must be https (plain http only for a loopback host)")


def _check_printable(value: str) -> str:
    if not value.isprintable():
        raise _rule("not_printable", "must hold printable characters only")
    return value


def _check_no_control_characters(value: str) -> str:
    _refused_character(value)
    return value


def _check_name(value: str) -> str:
    # The bank compares the name with the identity register: an invisible difference fails there, far from here.
    if value != value.strip():
        raise _rule("real_name_surrounding_spaces", "real_name must not start or end with spaces")
    _refused_character(value, prefix="real_name_")
    return value


# json_schema_extra: the rule also shows in the OpenAPI document (the validators stay the checks that count,
# with their own error names); a fuzzer or a client generator then produces values that can pass.
Mobile = Annotated[
    str,
    Field(min_length=11, max_length=11, json_schema_extra={"pattern": MOBILE_PATTERN.pattern}),
    AfterValidator(_check_mobile),
]
IdCard = Annotated[
    str,
    Field(min_length=18, max_length=18, json_schema_extra={"pattern": r"^[0-9]{17}[0-9Xx]$"}),
    AfterValidator(_check_id_card),
]
HtouhuiUserId = Annotated[str, Field(max_length=11), AfterValidator(_check_htouhui_user_id)]
ThirdPartyUserId = Annotated[
    str,
    Field(max_length=50, json_schema_extra={"pattern": THIRD_PARTY_USER_ID_PATTERN.pattern}),
    AfterValidator(_check_third_party_user_id),
]
NotifyUrl = Annotated[str, Field(max_length=200), AfterValidator(_check_callback_url)]
ReturnUrl = Annotated[str, Field(max_length=256), AfterValidator(_check_callback_url)]
Password = Annotated[str, Field(min_length=1, max_length=16), AfterValidator(_check_no_control_characters)]
RealName = Annotated[str, Field(min_length=1, max_length=60), AfterValidator(_check_name)]
ResultCode = Annotated[str, Field(pattern=r"^[0-9]{4}$")]
# What Htouhui sends that we only store or show (§9): any printable text within its maximum length.
BankCardOnFile = Annotated[str, Field(max_length=30), AfterValidator(_check_printable)]
NotifyNo = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_check_printable)]


def field_name(location: Any, whole: str) -> str:
    """A pydantic error location as a dotted field name; `whole` when the error is about the whole value."""
    return ".".join(map(str, location)) or whole


def field_rules(error: ValidationError, *, whole: str) -> list[tuple[str, str]]:
    """(field, rule) for each error of a validation: the rule's name, never the rejected value (the one place)."""
    return [(field_name(detail["loc"], whole), str(detail["type"])) for detail in error.errors()]


def _ignored_when_broken(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """A field we only store or show that breaks its rule is read as absent, never a reason to lose the message.

    The field and the rule it broke (never the value) go to the `ignored` list of the validation context.
    """
    try:
        return handler(value)
    except ValidationError as exc:
        ignored = (info.context or {}).get(IGNORED)
        if isinstance(ignored, list):
            ignored.append(field_rules(exc, whole=info.field_name or "?")[0])
        return None


Tolerant = WrapValidator(_ignored_when_broken)
IGNORED: Final = "ignored"


def _real_name_when_type_needs_it(value: str | None, info: ValidationInfo) -> str | None:
    # `type` is declared before `real_name`, so it is validated first and is in info.data when valid.
    if value is None and info.data.get("type") in ("0", "1"):
        raise _rule("real_name_required", "real_name is required when type is 0 or 1")
    return value


RealNameForType = Annotated[
    RealName | None, Field(default=None, validate_default=True), AfterValidator(_real_name_when_type_needs_it)
]


class _Wire(BaseModel):
    """A message from Htouhui, read as PROTOCOL.md §9 says (after its signature was verified as received).

    Empty values and JSON nulls are absent; unknown fields are ignored; fields declared `Tolerant` are read
    as absent when they break their rule. Fields that decide state or security stay strict.
    """

    # defer_build: a model's schema is built when the model is first used, so a path pays only for the messages it
    # reads or sends (register: two of ten). Never give one to a pydantic adapter (a Powertools route signature):
    # an adapter of a model not yet built builds the schema again for itself.
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _absent_when_empty(cls, data: Any) -> Any:
        return present(data) if isinstance(data, Mapping) else data

    @classmethod
    def read(cls, fields: Mapping[str, Any]) -> Self:
        """The message of these fields; a tolerant field that was ignored is logged by name and rule."""
        ignored: list[tuple[str, str]] = []
        message = cls.model_validate(fields, context={IGNORED: ignored})
        for name, rule in ignored:
            logger.warning("htouhui field ignored", extra={"message_kind": cls.__name__, "field": name, "rule": rule})
        return message

    def fields(self) -> dict[str, str]:
        """The message as the flat string fields that go on the wire (None dropped)."""
        return {name: value for name, value in self.model_dump(exclude_none=True).items() if value != ""}


class _Outbound(BaseModel):
    """A message we send: unknown fields are a programming error."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # as _Wire's

    def fields(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump(exclude_none=True).items() if value != ""}


# --- requests to Htouhui (business fields; protocol.request_common_fields adds the rest) ----------


class RegisterRequest(_Outbound):
    mobile: Mobile
    password: Password | None = None
    third_party_user_id: ThirdPartyUserId


class QueryRequest(_Outbound):
    id_card: IdCard
    third_party_user_id: ThirdPartyUserId


class OpenAccountForm(_Outbound):
    htouhui_user_id: HtouhuiUserId
    id_card: IdCard
    type: OpenAccountType = "0"
    real_name: RealNameForType = None
    third_party_user_id: ThirdPartyUserId
    notify_url: NotifyUrl
    return_url: ReturnUrl


# --- answers from Htouhui ----------------------------------------------------------------------------


class ResponseCommon(_Wire):
    code: ResultCode
    message: Annotated[Annotated[str, Field(max_length=256), AfterValidator(_check_printable)] | None, Tolerant] = None
    partner_id: Annotated[str, Field(min_length=1, max_length=32)]
    request_no: Annotated[str | None, Tolerant] = None  # echoed: the client compares it with what it sent
    timestamp: Annotated[Annotated[str, Field(max_length=32)] | None, Tolerant] = None
    sign_type: str | None = None  # both checked by protocol.verify before the message is read
    sign: str | None = None


def _required_on_success(rule: str) -> Callable[[Any, ValidationInfo], Any]:
    # A field validator (not a model validator) so that the error's loc names the field;
    # `code` is declared first (ResponseCommon), so it is in info.data when valid.
    def check(value: Any, info: ValidationInfo) -> Any:
        if value is None and info.data.get("code") == SUCCESS:
            raise _rule(rule, f"{info.field_name} is required on a successful answer")
        return value

    return check


class RegisterResponse(ResponseCommon):
    htouhui_user_id: Annotated[
        HtouhuiUserId | None,
        Field(default=None, validate_default=True),
        AfterValidator(_required_on_success("htouhui_user_id_required")),
    ]
    third_party_user_id: Annotated[str, Field(min_length=1, max_length=50)]


class QueryResponse(ResponseCommon):
    htouhui_user_id: HtouhuiUserId | None = None
    third_party_user_id: Annotated[str, Field(min_length=1, max_length=50)]
    status: Status
    borrower: Annotated[Borrower | None, Tolerant] = None
    bank_card_number: Annotated[BankCardOnFile | None, Tolerant] = None


class Notification(_Wire):
    """The status notification Htouhui POSTs to our notify_url (form fields).

    `notify_type` is optional here: a notification of another (or no) type is acknowledged and kept, not
    refused (§9); only an OPEN_ACCOUNT one needs `status` and the user ids, which `OpenAccountNotification` adds.
    """

    partner_id: Annotated[str, Field(min_length=1, max_length=32)]
    notify_no: NotifyNo
    notify_type: Annotated[Annotated[str, Field(max_length=32)] | None, Tolerant] = None
    timestamp: Annotated[Annotated[str, Field(max_length=32)] | None, Tolerant] = None
    sign_type: str | None = None
    sign: str | None = None


class OpenAccountNotification(Notification):
    htouhui_user_id: HtouhuiUserId
    third_party_user_id: ThirdPartyUserId
    status: Status
    bank_card_number: Annotated[BankCardOnFile | None, Tolerant] = None


class BrowserReturn(ResponseCommon):
    """The signed query fields of Htouhui's GET redirect to our return_url.

    On success the user ids and the level are required; a return with another `code` only tells the page why.
    """

    htouhui_user_id: Annotated[
        HtouhuiUserId | None,
        Field(default=None, validate_default=True),
        AfterValidator(_required_on_success("htouhui_user_id_required")),
    ]
    third_party_user_id: Annotated[
        ThirdPartyUserId | None,
        Field(default=None, validate_default=True),
        AfterValidator(_required_on_success("third_party_user_id_required")),
    ]
    status: Annotated[
        Status | None,
        Field(default=None, validate_default=True),
        AfterValidator(_required_on_success("status_required")),
    ]

    @property
    def succeeded(self) -> bool:
        return self.code == SUCCESS
