"""Every failure the layer names: a call to Htouhui that went wrong, a business rule that said no, a refused
notification, the store unavailable. `htouhui.api.ERRORS` maps each to API.md's answer; none carries a value."""

from __future__ import annotations

import enum
from collections.abc import Sequence

# Result codes (PROTOCOL.md §5) that mean "the user's data conflicts", not "our integration is wrong".
CONFLICT_CODES = frozenset({"2001", "2003", "2004", "3001"})
BUSY_CODE = "9999"
# PROTOCOL.md §5: what each result code means, in Chinese and English. Our answers and pages show these,
# never Htouhui's free-text `message` (it may echo a value, SECURITY.md).
RESULT_CODE_MEANINGS: dict[str, tuple[str, str]] = {
    "1001": ("签名无效", "signature invalid"),
    "1002": ("参数无效", "parameter invalid"),
    "1003": ("请求流水号重复且内容不同", "request_no reused with different content"),
    "1004": ("时间戳超出允许范围", "timestamp outside the allowed window"),
    "2001": ("商户用户已用其他手机号注册", "third_party_user_id already registered with another mobile"),
    "2002": ("海投汇用户不存在或与商户用户不符", "htouhui_user_id unknown or not matching third_party_user_id"),
    "2003": ("手机号已注册到其他商户用户", "mobile already registered to another third_party_user_id"),
    "2004": ("身份证号与用户不符", "id_card does not match the user"),
    "3001": ("步骤顺序错误", "step out of order"),
    BUSY_CODE: ("系统繁忙，请稍后再试", "system busy, try again later"),
}
UNKNOWN_CODE_MEANING: tuple[str, str] = ("未知结果码", "unknown result code")


def code_meaning(code: str) -> tuple[str, str]:
    """(Chinese, English) meaning of a result code of §5."""
    return RESULT_CODE_MEANINGS.get(code, UNKNOWN_CODE_MEANING)


class HtouhuiError(Exception):
    """Anything that went wrong talking to Htouhui."""


class HtouhuiRejected(HtouhuiError):
    """Htouhui answered, correctly signed, with a result code other than 0000."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"Htouhui answered {code}: {message}")
        self.code = code
        self.message = message

    @property
    def is_conflict(self) -> bool:
        return self.code in CONFLICT_CODES


class HtouhuiBusy(HtouhuiError):
    """Htouhui said 9999 (or answered 5xx) on every attempt within the retry budget."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class HtouhuiTimeout(HtouhuiError):
    """No answer from Htouhui within the time-outs, on every attempt within the retry budget."""


class HtouhuiSignatureError(HtouhuiError):
    """An answer whose signature is missing or does not verify with Htouhui's public key(s)."""


class HtouhuiUnreachable(HtouhuiTimeout):
    """Htouhui could not be reached at all (connection refused, name not resolved), on every attempt."""


class HtouhuiProtocolError(HtouhuiError):
    """An answer we cannot read: not JSON, not an object of strings, fields missing or not echoed.

    `fields` holds (field, rule) pairs, never a value: which field broke which rule, for the log.
    """

    def __init__(self, message: str, *, fields: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.fields = list(fields)


# --- domain errors (the business rules of htouhui.onboarding) -----------------------------------------
# Messages never carry a field's value: they may end up in a log line or an HTTP answer.


class OnboardingError(Exception):
    """A business rule said no. The API's error mapper turns each subclass into one HTTP answer."""


class UserNotFound(OnboardingError):
    """No user with this third_party_user_id (404 not_found)."""

    def __init__(self, third_party_user_id: str) -> None:
        super().__init__("unknown third_party_user_id")
        self.third_party_user_id = third_party_user_id


class Conflict(OnboardingError):
    """The request conflicts with the user's state (409 conflict)."""


class RegistrationRequired(Conflict):
    """The step needs a registered user (409 conflict)."""

    def __init__(self) -> None:
        super().__init__("the user must be registered first")


class RegistrationInProgress(Conflict):
    """Another request is registering this user right now (409 conflict); retry shortly."""

    def __init__(self) -> None:
        super().__init__("registration in progress")


class MobileMismatch(Conflict):
    """The user is registered (or being registered) with another mobile (409 conflict)."""

    def __init__(self) -> None:
        super().__init__("third_party_user_id is already registered with another mobile")


class IdCardMismatch(Conflict):
    """The user's account was opened with another id_card (409 conflict); Htouhui would answer 2004."""

    def __init__(self) -> None:
        super().__init__("id_card does not match the one the account was opened with")


class HtouhuiUserIdMismatch(Conflict):
    """Htouhui named another htouhui_user_id for this third_party_user_id than the one we stored."""

    def __init__(self) -> None:
        super().__init__("htouhui_user_id does not match the stored user")


class InvalidInput(OnboardingError):
    """One or more fields break a rule (400 invalid_request); `fields` is [(field, reason)], no values."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        super().__init__("invalid request: " + ", ".join(f"{name} ({reason})" for name, reason in fields))
        self.fields = fields


class RejectionReason(enum.StrEnum):
    """Why a notification or browser return was refused: a closed list, the `reason` dimension of the metric."""

    MALFORMED = "malformed"  # the body or query string is not a form of unique fields (§9)
    BAD_SIGNATURE = "bad_signature"  # missing, unknown sign_type, or does not verify under our Htouhui key(s)
    OTHER_PARTNER = "other_partner"  # verified, but for another partner_id
    INVALID_FIELD = "invalid_field"  # a field that decides state is missing or breaks its rule
    UNKNOWN_USER = "unknown_user"  # no registered user with that third_party_user_id
    USER_MISMATCH = "user_mismatch"  # the htouhui_user_id is not the one we stored for that user
    SOURCE_NOT_ALLOWED = "source_not_allowed"  # the notify route's allow-list (NotifyAllowedCidrs) refused the sender


class NotificationRejected(OnboardingError):
    """A notification or browser return we will not accept (notify answers 400 FAIL, nothing changed).

    `reason` is from the closed list above; `field` and `rule` say which field broke which rule. None of
    them ever carries a value: all three are safe to log and to count.
    """

    def __init__(self, reason: RejectionReason, *, field: str = "", rule: str = "") -> None:
        super().__init__(f"notification rejected: {reason}" + (f" ({field}: {rule})" if field else ""))
        self.reason = reason
        self.field = field
        self.rule = rule or str(reason)


class StoreUnavailable(Exception):
    """DynamoDB failed in a way other than an expected condition failure.

    The merchant routes answer 503 `unavailable` (retry later); notify answers 500, so Htouhui delivers again.
    """
