"""What the store reads and writes, as values: a user's record, a status update, the outcomes of a write."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from onboarding import dynamo
from onboarding.schedule import Slot
from onboarding.view import card_digits

if TYPE_CHECKING:  # pydantic is imported when a view is built: a path that builds none never pays for it
    from onboarding.models import UserView

USERS_KEY: Final = "third_party_user_id"
NOTIFICATIONS_KEY: Final = "notify_no"
DUE_INDEX: Final = "due-checks"
HISTORY_BY_USER_INDEX: Final = "by-user"
SHARD_ATTRIBUTE: Final = "check_shard"
DUE_ATTRIBUTE: Final = "next_check_at"
# Everything the schedule keeps on a user; removed together when the user leaves it.
SCHEDULE_ATTRIBUTES: Final = (SHARD_ATTRIBUTE, DUE_ATTRIBUTE, "check_anchor", "check_step", "check_attempts")
CLAIMED: Final = "CLAIMED"
DONE: Final = "DONE"

Source = Literal["notify", "return", "query"]


class ApplyOutcome(enum.StrEnum):
    APPLIED = "APPLIED"  # the status rose and (for a notification) the history record was written
    STALE = "STALE"  # accepted, but the stored status was already as high: nothing lowered
    DUPLICATE = "DUPLICATE"  # this notify_no was recorded before: nothing written
    UNHANDLED = "UNHANDLED"  # a notification of another notify_type: kept in the history, no status changed


class ClaimOutcome(enum.StrEnum):
    CLAIMED = "CLAIMED"  # this request holds the lease: call Htouhui, then complete or release
    DONE = "DONE"  # already registered with the same mobile: nothing to do
    IN_PROGRESS = "IN_PROGRESS"  # another request holds a live lease with the same mobile
    OTHER_MOBILE = "OTHER_MOBILE"  # registered (or being registered) with another mobile


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z: sorts as text."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no zone; pass an aware one")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_key(third_party_user_id: str) -> dict[str, Any]:
    return dynamo.item({USERS_KEY: third_party_user_id})


@dataclass(frozen=True)
class UserRecord:
    third_party_user_id: str
    htouhui_user_id: str | None = None
    status: int | None = None
    borrower: str | None = None
    bank_card_number: str | None = None
    id_card: str | None = None
    mobile_digest: str | None = None
    open_requested: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    registration: str | None = None
    claim_expires_at: int | None = None
    # the reconciliation schedule (epoch seconds); next_check_at is None when the user is not on it
    check_shard: str | None = None
    next_check_at: int | None = None
    check_anchor: int | None = None
    check_step: int | None = None
    check_attempts: int = 0
    check_lease: int | None = None
    check_token: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Mapping[str, Any]]) -> UserRecord:
        text, number = dynamo.text, dynamo.number
        return cls(
            third_party_user_id=text(item, USERS_KEY) or "",
            htouhui_user_id=text(item, "htouhui_user_id"),
            status=number(item, "status"),
            borrower=text(item, "borrower"),
            bank_card_number=text(item, "bank_card_number"),
            id_card=text(item, "id_card"),
            mobile_digest=text(item, "mobile_digest"),
            open_requested=bool(item.get("open_requested", {}).get("BOOL", False)),
            created_at=text(item, "created_at"),
            updated_at=text(item, "updated_at"),
            registration=text(item, "registration"),
            claim_expires_at=number(item, "claim_expires_at"),
            check_shard=text(item, SHARD_ATTRIBUTE),
            next_check_at=number(item, DUE_ATTRIBUTE),
            check_anchor=number(item, "check_anchor"),
            check_step=number(item, "check_step"),
            check_attempts=number(item, "check_attempts") or 0,
            check_lease=number(item, "check_lease"),
            check_token=text(item, "check_token"),
        )

    @property
    def scheduled(self) -> bool:
        return self.next_check_at is not None

    @property
    def slot(self) -> Slot | None:
        """Where the user stands on the ladder, or None when not on the schedule."""
        if self.next_check_at is None or self.check_anchor is None or self.check_step is None:
            return None
        return Slot(self.check_anchor, self.check_step, self.next_check_at)

    @property
    def registered(self) -> bool:
        return self.registration == DONE and self.htouhui_user_id is not None

    def view(self) -> UserView:
        from onboarding.models import UserView

        return UserView.of(
            third_party_user_id=self.third_party_user_id,
            htouhui_user_id=self.htouhui_user_id,
            status=self.status,
            open_requested=self.open_requested,
            borrower=self.borrower,
            bank_card_number=self.bank_card_number,
            id_card=self.id_card,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    token: str | None = None  # set when CLAIMED: pass it to release_claim
    record: UserRecord | None = None  # the stored user when the claim was refused


@dataclass(frozen=True)
class DueUser:
    """One row of the due-time index: whose check is due, and when (what the dispatcher claims)."""

    third_party_user_id: str
    due: int
    shard: str


@dataclass(frozen=True)
class StatusUpdate:
    """A level Htouhui reported: by notification (with notify_no), browser return or query answer."""

    third_party_user_id: str
    htouhui_user_id: str
    status: int
    source: Source
    received_at: datetime
    bank_card_number: str | None = None
    borrower: str | None = None
    notify_no: str | None = None  # only notifications carry one; it makes the history record
    timestamp: str | None = None  # Htouhui's, when the event happened
    raw: Mapping[str, str] | None = None  # a notification's fields as received (sign too): kept in its history


def is_full_card_number(value: str) -> bool:
    """A card number as the bank issued it: digits, perhaps grouped by spaces or hyphens; not masked."""
    digits = card_digits(value)
    return bool(digits) and digits.isascii() and digits.isdigit()


def card_number_improves(stored: str | None, received: str) -> bool:
    """§9: a masked number fills a gap, a full one replaces a masked one or a different full one."""
    if not stored:
        return True
    if not is_full_card_number(received):
        return False
    return not is_full_card_number(stored) or card_digits(stored) != card_digits(received)
