"""Erasing a user's personal information (PIPL art. 47), keeping a tombstone.

What goes: from the user item, every personal value this project stores (`PERSONAL_USER_ATTRIBUTES`: the
resident identity number, the bank card number, the digest of the mobile number) and the reconciliation schedule
(an erased user is no longer reconciled: without its identity number Htouhui cannot be asked about it); from
each of its history records (found by Query on the notifications table's `by-user` index, never a Scan), the
notification as received (`raw`: it holds the bank card number).

What stays (the tombstone): the ids (third_party_user_id, htouhui_user_id, notify_no), the statuses, the dates,
and `erased_at`, so that the merchant can still prove what happened and when, and a later notification for the
user is recognised (docs/privacy.md). Erasing twice is harmless. Runs with the operator's credentials
(`python -m onboarding.ops.admin erase`), not in a Lambda function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from onboarding.store import UserStore

PERSONAL_USER_ATTRIBUTES: Final = ("id_card", "bank_card_number", "mobile_digest")
PERSONAL_HISTORY_ATTRIBUTES: Final = ("raw", "bank_card_number")


@dataclass(frozen=True)
class ErasureReport:
    third_party_user_id: str
    user_found: bool
    history_records: int


def erase_user(store: UserStore, third_party_user_id: str, now: datetime) -> ErasureReport:
    """Erase through the store: the user item's personal values and schedule, then each history record's."""
    user_found = store.erase_personal(third_party_user_id, PERSONAL_USER_ATTRIBUTES, now)
    history = sum(
        store.erase_history_record(notify_no, PERSONAL_HISTORY_ATTRIBUTES, now)
        for notify_no in list(store.history_keys(third_party_user_id))
    )
    return ErasureReport(third_party_user_id, user_found, history)
