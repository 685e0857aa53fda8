"""Our own API's bodies (API.md §1) and the user view the merchant sees: personal data masked."""

from __future__ import annotations

from typing import Annotated

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
from onboarding.view import (  # re-exported (__all__): the view's rules, importable without pydantic
    COMPLETED_STATUS,
    STAGE_BY_STATUS,
    Stage,
    card_digits,
    derive_stage,
    mask_bank_card,
    mask_id_card,
)

__all__ = [
    "COMPLETED_STATUS",
    "STAGE_BY_STATUS",
    "OpenAccountBody",
    "RegisterBody",
    "Stage",
    "UserView",
    "card_digits",
    "derive_stage",
    "mask_bank_card",
    "mask_id_card",
]

# --- our own API's bodies (API.md §1) -----------------------------------------------------------------


# Not deferred (defer_build), unlike the wire models: these appear in the routes' signatures and responses, and
# Powertools validates through adapters of them; an adapter of a model not yet built builds the model's schema
# again for itself (a view named in three adapters was built four times).
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
