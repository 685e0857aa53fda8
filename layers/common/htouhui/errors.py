"""Typed failures of a call to Htouhui. The API's error mapper turns each into API.md's answer."""

from __future__ import annotations

# Result codes (PROTOCOL.md §5) that mean "the user's data conflicts", not "our integration is wrong".
CONFLICT_CODES = frozenset({"2001", "2003", "2004", "3001"})
BUSY_CODE = "9999"


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


class HtouhuiProtocolError(HtouhuiError):
    """An answer we cannot read: not JSON, not an object of strings, fields missing or not echoed."""
