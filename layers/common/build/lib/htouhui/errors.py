"""Every failure the layer names: a call to Htouhui that went wrong, a business rule that said no, a refused
notification, the store unavailable. `onboarding.api.ERRORS` maps each to API.md's answer; none carries a value."""

from __future__ import annotations

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
