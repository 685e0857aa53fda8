"""The application's failures: a business rule that said no, a refused notification, the store unavailable.
`onboarding.api.ERRORS` maps each (and the SDK's htouhui.errors) to API.md's answer; none carries a value."""

from __future__ import annotations

import enum

# --- domain errors (the business rules of onboarding.rules) -----------------------------------------
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


class RefreshBudgetSpent(OnboardingError):
    """GET ?refresh=true over REFRESH_RATE_BUDGET (503 upstream_busy, Retry-After): Htouhui was not asked."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("refresh budget spent this second; try again")
        self.retry_after = retry_after


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
