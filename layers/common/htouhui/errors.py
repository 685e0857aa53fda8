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


class NotificationRejected(OnboardingError):
    """A notification or browser return we will not accept (notify answers 400 FAIL, nothing changed).

    `reason` is one of a few fixed words ("bad signature", "other partner", "malformed", "unsupported
    type", "unknown user", "user mismatch", "not success"): safe to log and to count.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"notification rejected: {reason}")
        self.reason = reason


class StoreUnavailable(Exception):
    """DynamoDB failed in a way other than an expected condition failure (500: retry later)."""
