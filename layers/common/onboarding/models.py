"""Our own API's bodies (API.md §1) and the user view the merchant sees: personal data masked."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from htouhui.models import (
    Borrower,
    IdCard,
    Mobile,
    OpenAccountType,
    Password,
    RealNameForType,
    ReturnUrl,
    ThirdPartyUserId,
)

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


def card_digits(value: str) -> str:
    """A card number without the spaces and hyphens that group its digits (the one place that strips them)."""
    return value.replace(" ", "").replace("-", "")


def mask_bank_card(value: str | None) -> str | None:
    """Only the last four characters kept (spaces and hyphens aside); a fixed-width prefix hides the length too."""
    if not value:
        return None
    compact = card_digits(value)
    return "****" + compact[-4:] if len(compact) > 4 else "****"


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
