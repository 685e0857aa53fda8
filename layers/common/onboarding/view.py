"""The user view's rules without pydantic: the stage derived from Htouhui's level, and the masks of personal data.

onboarding.models (the pydantic bodies and UserView) re-exports every name here; the store and the log masking
import this module, so a function that never builds a view (the reconciliation dispatcher) does not import pydantic.
"""

from __future__ import annotations

from typing import Final, Literal

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


def card_digits(value: str) -> str:
    """A card number without the spaces and hyphens that group its digits (the one place that strips them)."""
    return value.replace(" ", "").replace("-", "")


def mask_bank_card(value: str | None) -> str | None:
    """Only the last four characters kept (spaces and hyphens aside); a fixed-width prefix hides the length too."""
    if not value:
        return None
    compact = card_digits(value)
    return "****" + compact[-4:] if len(compact) > 4 else "****"
