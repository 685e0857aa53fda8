"""Typed models for every message of the seed and PROTOCOL.md, and for our own API's bodies.

Wire models (`*Request`, `*Response`, `Notification`, `BrowserReturn`, `OpenAccountForm`) carry the
seed's maximum lengths and rules. Every rule raises an error that names the rule, so that a 400
can say exactly which field broke which rule without echoing the value (it may be personal data).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

# --- field rules ----------------------------------------------------------------------------------

MOBILE_PATTERN: Final = re.compile(r"^1[3-9][0-9]{9}$")
HTOUHUI_USER_ID_PATTERN: Final = re.compile(r"^[0-9]{1,11}$")
# The merchant's own user id travels in our URL paths and in Htouhui's canonical string: keep it to
# characters that need no escaping in either (no '&', '=', '/', '?', spaces).
THIRD_PARTY_USER_ID_PATTERN: Final = re.compile(r"^[0-9A-Za-z_.:@-]{1,50}$")
ID_CARD_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_CHECK_CHARACTERS: Final = "10X98765432"
LOOPBACK_HOSTS: Final = frozenset({"localhost"})

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
    return value


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_callback_url(value: str) -> str:
    # urlsplit silently drops tabs and line ends, so check the value itself: it is signed and sent as is.
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in value):
        raise _rule("url_characters", "URL must not contain spaces or control characters")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host:
        raise _rule("url_host", "URL must be absolute, with a host")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        if parts.username or parts.password:
            raise _rule("url_credentials", "URL must not carry credentials")
        return value
    raise _rule("url_scheme", "URL must be https (plain http only for a loopback host)")


def _check_no_control_characters(value: str) -> str:
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        raise _rule("control_characters", "must not contain control characters")
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
RealName = Annotated[str, Field(min_length=1, max_length=60), AfterValidator(_check_no_control_characters)]
BankCardNumber = Annotated[str, Field(min_length=1, max_length=30, pattern=r"^[0-9]+$")]
Timestamp = Annotated[str, Field(pattern=r"^[0-9]{14}$")]
ResultCode = Annotated[str, Field(pattern=r"^[0-9]{4}$")]
Serial = Annotated[str, Field(pattern=r"^[0-9A-Za-z_-]{1,32}$")]


def _real_name_when_type_needs_it(value: str | None, info: ValidationInfo) -> str | None:
    # `type` is declared before `real_name`, so it is validated first and is in info.data when valid.
    if value is None and info.data.get("type") in ("0", "1"):
        raise _rule("real_name_required", "real_name is required when type is 0 or 1")
    return value


RealNameForType = Annotated[
    RealName | None, Field(default=None, validate_default=True), AfterValidator(_real_name_when_type_needs_it)
]


class _Wire(BaseModel):
    """A message from Htouhui: unknown fields are kept out of the model but not an error."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)

    def fields(self) -> dict[str, str]:
        """The message as the flat string fields that go on the wire (None dropped)."""
        return {name: value for name, value in self.model_dump(exclude_none=True).items() if value != ""}


class _Outbound(BaseModel):
    """A message we send: unknown fields are a programming error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    message: Annotated[str, Field(max_length=256)]
    partner_id: Annotated[str, Field(min_length=1, max_length=32)]
    request_no: Serial
    timestamp: Timestamp
    sign_type: Annotated[str, Field(max_length=10)]
    sign: Annotated[str, Field(min_length=1, max_length=1024)]


def _user_id_on_success(value: str | None, info: ValidationInfo) -> str | None:
    # A field validator (not a model validator) so that the error's loc names htouhui_user_id;
    # `code` is declared first (ResponseCommon), so it is in info.data when valid.
    if value is None and info.data.get("code") == "0000":
        raise _rule("htouhui_user_id_required", "htouhui_user_id is required on a successful register")
    return value


class RegisterResponse(ResponseCommon):
    htouhui_user_id: Annotated[
        HtouhuiUserId | None, Field(default=None, validate_default=True), AfterValidator(_user_id_on_success)
    ]
    third_party_user_id: Annotated[str, Field(min_length=1, max_length=50)]


class QueryResponse(ResponseCommon):
    htouhui_user_id: HtouhuiUserId | None = None
    third_party_user_id: Annotated[str, Field(min_length=1, max_length=50)]
    status: Status
    borrower: Borrower
    bank_card_number: BankCardNumber | None = None


class Notification(_Wire):
    """The status notification Htouhui POSTs to our notify_url (form fields)."""

    partner_id: Annotated[str, Field(min_length=1, max_length=32)]
    notify_no: Serial
    notify_type: Annotated[str, Field(min_length=1, max_length=32)]
    timestamp: Timestamp
    sign_type: Annotated[str, Field(max_length=10)]
    sign: Annotated[str, Field(min_length=1, max_length=1024)]
    htouhui_user_id: HtouhuiUserId
    third_party_user_id: ThirdPartyUserId
    status: Status
    bank_card_number: BankCardNumber | None = None


class BrowserReturn(ResponseCommon):
    """The signed query fields of Htouhui's GET redirect to our return_url."""

    htouhui_user_id: HtouhuiUserId
    third_party_user_id: ThirdPartyUserId
    status: Status


# --- our own API's bodies (API.md §1) -----------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class RegisterBody(_Body):
    third_party_user_id: ThirdPartyUserId
    mobile: Mobile
    password: Password | None = None


class OpenAccountBody(_Body):
    id_card: IdCard
    type: OpenAccountType = "0"
    real_name: RealNameForType = None
    return_url: ReturnUrl | None = None


# --- the user view (API.md "User view") ----------------------------------------------------------------

Stage = Literal["REGISTERED", "OPEN_REQUESTED", "OPEN_FAILED", "ACCOUNT_OPENED", "PASSWORD_SET", "COMPLETED"]
STAGE_BY_STATUS: Final[dict[int, Stage]] = {0: "OPEN_FAILED", 1: "ACCOUNT_OPENED", 2: "PASSWORD_SET", 3: "COMPLETED"}
COMPLETED_STATUS: Final = 3


def derive_stage(status: int | None, open_requested: bool) -> Stage:
    """The stage is derived from Htouhui's level, never stored as a source of truth."""
    if status is None:
        return "OPEN_REQUESTED" if open_requested else "REGISTERED"
    return STAGE_BY_STATUS[status]


def mask_id_card(value: str | None) -> str | None:
    """First 3 and last 4 characters kept, the rest starred (an id_card is always 18 characters)."""
    if not value:
        return None
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_bank_card(value: str | None) -> str | None:
    """Only the last four digits kept; a fixed-width prefix so the card's length is not told either."""
    if not value:
        return None
    return "****" + value[-4:] if len(value) > 4 else "****"


class UserView(BaseModel):
    """What the merchant's backend sees of a user: personal data masked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    third_party_user_id: str
    htouhui_user_id: str | None = None
    stage: Stage
    status: Annotated[int, Field(ge=0, le=3)] | None = None
    borrower: Borrower | None = None
    bank_card_number: str | None = None
    id_card: str | None = None
    updated_at: str | None = None
    ready_for_debt_matching: bool = False

    @classmethod
    def of(
        cls,
        *,
        third_party_user_id: str,
        htouhui_user_id: str | None,
        status: int | None,
        open_requested: bool,
        borrower: str | None,
        bank_card_number: str | None,
        id_card: str | None,
        updated_at: str | None,
    ) -> UserView:
        """The view of the stored fields, masking the personal ones: the only way a view is built."""
        return cls.model_validate(
            {
                "third_party_user_id": third_party_user_id,
                "htouhui_user_id": htouhui_user_id,
                "stage": derive_stage(status, open_requested),
                "status": status,
                "borrower": borrower,
                "bank_card_number": mask_bank_card(bank_card_number),
                "id_card": mask_id_card(id_card),
                "updated_at": updated_at,
                "ready_for_debt_matching": status == COMPLETED_STATUS,
            }
        )
