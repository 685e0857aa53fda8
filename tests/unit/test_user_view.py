"""The user view: stage derived from the status, personal data masked."""

from __future__ import annotations

import pytest

from onboarding.models import UserView, derive_stage, mask_bank_card, mask_id_card


@pytest.mark.parametrize(
    ("status", "open_requested", "stage"),
    [
        (None, False, "REGISTERED"),
        (None, True, "OPEN_REQUESTED"),
        (0, True, "OPEN_FAILED"),
        (1, True, "ACCOUNT_OPENED"),
        (2, False, "PASSWORD_SET"),
        (3, True, "COMPLETED"),
    ],
)
def test_stage_is_derived_from_the_status(status: int | None, open_requested: bool, stage: str) -> None:
    assert derive_stage(status, open_requested) == stage


def view(**overrides: object) -> UserView:
    fields: dict[str, object] = {
        "third_party_user_id": "shop-1",
        "htouhui_user_id": "10001",
        "status": 3,
        "open_requested": True,
        "borrower": "1",
        "bank_card_number": "6222020200112233445",
        "id_card": "11010519491231002X",
        "updated_at": "2026-11-28T08:00:00.000Z",
    }
    fields.update(overrides)
    return UserView.of(**fields)  # type: ignore[arg-type]


def test_view_masks_personal_data() -> None:
    shown = view()
    assert shown.id_card == "110***********002X" and len(shown.id_card) == 18
    assert shown.bank_card_number == "****3445"
    dumped = shown.model_dump_json()
    assert "11010519491231002X" not in dumped and "6222020200112233445" not in dumped
    assert "0200112233" not in dumped


def test_ready_for_debt_matching_only_at_status_3() -> None:
    assert view().ready_for_debt_matching and view().stage == "COMPLETED"
    for status in (None, 0, 1, 2):
        assert not view(status=status).ready_for_debt_matching


def test_view_before_open_account() -> None:
    shown = view(status=None, open_requested=False, bank_card_number=None, id_card=None, borrower=None)
    assert shown.stage == "REGISTERED" and shown.status is None
    assert shown.id_card is None and shown.bank_card_number is None and shown.borrower is None
    assert set(shown.model_dump()) == {
        "third_party_user_id",
        "htouhui_user_id",
        "stage",
        "status",
        "borrower",
        "bank_card_number",
        "id_card",
        "updated_at",
        "ready_for_debt_matching",
    }


@pytest.mark.parametrize(("card", "masked"), [("1234", "****"), ("12345", "****2345"), ("", None), (None, None)])
def test_bank_card_mask_hides_length_and_short_numbers(card: str | None, masked: str | None) -> None:
    assert mask_bank_card(card) == masked


def test_id_card_mask_short_values_are_all_stars() -> None:
    assert mask_id_card("1234567") == "*******"
    assert mask_id_card(None) is None
