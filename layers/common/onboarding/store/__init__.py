"""The users table and the notification history (DynamoDB), behind a small interface.

Tables, keys and indexes are those of the bundle design (template.yaml declares them):

- users table, hash key `third_party_user_id`; one GSI `due-checks` (hash `check_shard`, range
  `next_check_at`, keys only, sparse: both attributes exist only while the user is on the reconciliation
  schedule, onboarding.schedule), spread over N shards so that no single partition takes every write;
- notifications table, hash key `notify_no`, GSI `by-user`: one history record per accepted notification.

Every rule that matters under concurrency is a DynamoDB condition, never a read-then-write:
a status only rises (`attribute_not_exists(status) OR status < :new`), a notification is recorded
once (`attribute_not_exists(notify_no)`, in the same transaction as the status change), and a
registration is claimed by one request at a time (a lease that a crashed Lambda cannot hold forever).
A read happens only after a condition failed, to say *why* it failed.

Three rooms over one set of tables and one lazily made client (`tables.Tables`):
`users.Users` (the user record), `history.History` (the notification history), `due.Schedule` (the
reconciliation schedule). `UserStore` is all three; the rules see it through the `Store` protocol, which the
bench's in-memory store implements too. Any DynamoDB failure other than an expected condition failure surfaces
as `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from onboarding.errors import StoreUnavailable
from onboarding.schedule import Slot
from onboarding.store.due import LEASE_ATTRIBUTES, Schedule
from onboarding.store.history import History
from onboarding.store.records import (
    CLAIMED,
    DONE,
    DUE_ATTRIBUTE,
    DUE_INDEX,
    HISTORY_BY_USER_INDEX,
    NOTIFICATIONS_KEY,
    SCHEDULE_ATTRIBUTES,
    SHARD_ATTRIBUTE,
    USERS_KEY,
    ApplyOutcome,
    Claim,
    ClaimOutcome,
    DueUser,
    StatusUpdate,
    UserRecord,
    card_number_improves,
    is_full_card_number,
    iso_utc,
)
from onboarding.store.tables import TRANSACTION_ATTEMPTS
from onboarding.store.users import CLAIM_LEASE_SECONDS, Users

__all__ = [
    "CLAIMED",
    "CLAIM_LEASE_SECONDS",
    "DONE",
    "DUE_ATTRIBUTE",
    "DUE_INDEX",
    "HISTORY_BY_USER_INDEX",
    "LEASE_ATTRIBUTES",
    "NOTIFICATIONS_KEY",
    "SCHEDULE_ATTRIBUTES",
    "SHARD_ATTRIBUTE",
    "TRANSACTION_ATTEMPTS",
    "USERS_KEY",
    "ApplyOutcome",
    "Claim",
    "ClaimOutcome",
    "DueUser",
    "StatusUpdate",
    "Store",
    "StoreUnavailable",
    "UserRecord",
    "UserStore",
    "card_number_improves",
    "is_full_card_number",
    "iso_utc",
]


class UserStore(Users, History, Schedule):
    """The DynamoDB store: the user record, the notification history and the schedule, on one client."""


class Store(Protocol):
    """What the onboarding rules need of a store (UserStore on DynamoDB; bench/scale.py's in memory)."""

    def get(self, third_party_user_id: str) -> UserRecord | None: ...

    def claim_registration(self, third_party_user_id: str, mobile_digest: str, now: datetime) -> Claim: ...

    def complete_registration(self, third_party_user_id: str, htouhui_user_id: str, now: datetime) -> UserRecord: ...

    def release_claim(self, third_party_user_id: str, token: str | None = None) -> None: ...

    def mark_open_requested(self, third_party_user_id: str, id_card: str, now: datetime) -> UserRecord: ...

    def apply_status(self, update: StatusUpdate) -> ApplyOutcome: ...

    def record_unhandled(
        self, notify_no: str, received: Mapping[str, str], now: datetime, *, notify_type: str | None
    ) -> ApplyOutcome: ...

    def due(self, shard: str, now: int, limit: int, *, newest_first: bool = False) -> list[DueUser]: ...

    def claim_dispatch(self, user: DueUser, until: int) -> bool: ...

    def claim_dispatches(self, users: Sequence[DueUser], until: int) -> list[bool]: ...

    def restart_schedule(self, third_party_user_id: str, slot: Slot, shard: str) -> bool: ...

    def begin_check(
        self, third_party_user_id: str, *, token: str, now: int, lease_until: int, due: int | None = None
    ) -> UserRecord | None: ...

    def settle_check(
        self,
        third_party_user_id: str,
        *,
        token: str,
        taken_on: Slot | None,
        next_slot: Slot | None,
        shard: str,
        attempts: int = 0,
    ) -> bool: ...

    def release_check(self, third_party_user_id: str, token: str) -> None: ...
