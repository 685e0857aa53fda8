"""The users table and the notification history (DynamoDB), behind a small interface.

Tables, keys and indexes are those of the bundle design (template.yaml declares them):

- users table, hash key `third_party_user_id`; one GSI `due-checks` (hash `check_shard`, range
  `next_check_at`, keys only, sparse: both attributes exist only while the user is on the reconciliation
  schedule, onboarding.schedule), spread over N shards so that no single partition takes every write;
- notifications table, hash key `notify_no`: one history record per accepted notification.

Every rule that matters under concurrency is a DynamoDB condition, never a read-then-write:
a status only rises (`attribute_not_exists(status) OR status < :new`), a notification is recorded
once (`attribute_not_exists(notify_no)`, in the same transaction as the status change), and a
registration is claimed by one request at a time (a lease that a crashed Lambda cannot hold forever).
The reconciliation schedule follows the same rule: a dispatch claims a due user by moving its due time
(`next_check_at = :seen`), a check holds a lease (`check_lease < :now`), and a check's result only moves the
ladder it was taken on (`check_token`, `check_anchor`, `check_step`) and never puts a finished user back.
A read happens only after a condition failed, to say *why* it failed.

The boto3 client is created on first use (or injected), and any DynamoDB failure other than an
expected condition failure surfaces as `StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError

from onboarding.errors import (
    HtouhuiUserIdMismatch,
    IdCardMismatch,
    RegistrationRequired,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.models import COMPLETED_STATUS, UserView
from onboarding.schedule import Slot

__all__ = [
    "ApplyOutcome",
    "Claim",
    "ClaimOutcome",
    "DueUser",
    "StatusUpdate",
    "StoreUnavailable",
    "UserRecord",
    "UserStore",
    "iso_utc",
]

USERS_KEY: Final = "third_party_user_id"
NOTIFICATIONS_KEY: Final = "notify_no"
DUE_INDEX: Final = "due-checks"
SHARD_ATTRIBUTE: Final = "check_shard"
DUE_ATTRIBUTE: Final = "next_check_at"
# Everything the schedule keeps on a user; removed together when the user leaves it.
SCHEDULE_ATTRIBUTES: Final = (SHARD_ATTRIBUTE, DUE_ATTRIBUTE, "check_anchor", "check_step", "check_attempts")
_LEASE_ATTRIBUTES: Final = ("check_lease", "check_token")
CLAIMED: Final = "CLAIMED"
DONE: Final = "DONE"
CLAIM_LEASE_SECONDS: Final = 30
TRANSACTION_ATTEMPTS: Final = 8
_CONFLICT_CODES: Final = frozenset({"TransactionConflict", "TransactionConflictException"})
_CONDITION_FAILED: Final = "ConditionalCheckFailed"

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
        status = _number(item, "status")
        expires = _number(item, "claim_expires_at")
        return cls(
            third_party_user_id=_text(item, USERS_KEY) or "",
            htouhui_user_id=_text(item, "htouhui_user_id"),
            status=status,
            borrower=_text(item, "borrower"),
            bank_card_number=_text(item, "bank_card_number"),
            id_card=_text(item, "id_card"),
            mobile_digest=_text(item, "mobile_digest"),
            open_requested=bool(item.get("open_requested", {}).get("BOOL", False)),
            created_at=_text(item, "created_at"),
            updated_at=_text(item, "updated_at"),
            registration=_text(item, "registration"),
            claim_expires_at=expires,
            check_shard=_text(item, SHARD_ATTRIBUTE),
            next_check_at=_number(item, DUE_ATTRIBUTE),
            check_anchor=_number(item, "check_anchor"),
            check_step=_number(item, "check_step"),
            check_attempts=_number(item, "check_attempts") or 0,
            check_lease=_number(item, "check_lease"),
            check_token=_text(item, "check_token"),
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


class _ConditionFailed(Exception):
    def __init__(self, item: Mapping[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


class _Cancelled(Exception):
    def __init__(self, reasons: list[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons


class _Conflicted(Exception):
    """Another transaction was touching the item: retry."""


class UserStore:
    def __init__(
        self,
        users_table: str,
        notifications_table: str,
        dynamodb: Any = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        history_days: int = 0,
    ) -> None:
        self.users_table = users_table
        self.notifications_table = notifications_table
        self.history_days = history_days  # > 0: history records expire (TTL attribute expires_at) after that many days
        self._dynamodb = dynamodb
        self._lock = threading.Lock()
        self._sleep = sleep

    # --- reading ------------------------------------------------------------------------------------

    def get(self, third_party_user_id: str) -> UserRecord | None:
        answer = self._call("get_item", TableName=self.users_table, Key=_key(third_party_user_id), ConsistentRead=True)
        item = answer.get("Item")
        return UserRecord.from_item(item) if item else None

    # --- registration -------------------------------------------------------------------------------

    def claim_registration(self, third_party_user_id: str, mobile_digest: str, now: datetime) -> Claim:
        """Take the registration lease, unless the user is registered or someone holds a live lease."""
        epoch = int(now.timestamp())
        for _ in range(3):
            token = secrets.token_hex(8)
            try:
                self._call(
                    "update_item",
                    TableName=self.users_table,
                    Key=_key(third_party_user_id),
                    UpdateExpression=(
                        "SET registration = :claimed, claim_expires_at = :expires, claim_token = :token, "
                        "mobile_digest = :digest, created_at = if_not_exists(created_at, :now), updated_at = :now"
                    ),
                    ConditionExpression=(
                        "attribute_not_exists(third_party_user_id) "
                        "OR (registration = :claimed AND claim_expires_at < :epoch)"
                    ),
                    ExpressionAttributeValues={
                        ":claimed": {"S": CLAIMED},
                        ":expires": {"N": str(epoch + CLAIM_LEASE_SECONDS)},
                        ":token": {"S": token},
                        ":digest": {"S": mobile_digest},
                        ":now": {"S": iso_utc(now)},
                        ":epoch": {"N": str(epoch)},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except _ConditionFailed as failed:
                record = self._explain(third_party_user_id, failed.item)
                if record is None:
                    continue  # released between our write and our read: try again
                if record.mobile_digest != mobile_digest:
                    return Claim(ClaimOutcome.OTHER_MOBILE, record=record)
                if record.registration == DONE:
                    return Claim(ClaimOutcome.DONE, record=record)
                return Claim(ClaimOutcome.IN_PROGRESS, record=record)
            return Claim(ClaimOutcome.CLAIMED, token=token)
        raise StoreUnavailable("registration claim kept changing under us")

    def complete_registration(self, third_party_user_id: str, htouhui_user_id: str, now: datetime) -> UserRecord:
        """Record Htouhui's answer: the user is registered (not yet scheduled: only a form schedules checks)."""
        try:
            answer = self._call(
                "update_item",
                TableName=self.users_table,
                Key=_key(third_party_user_id),
                UpdateExpression=(
                    "SET htouhui_user_id = :htouhui, registration = :done, updated_at = :now "
                    "REMOVE claim_expires_at, claim_token"
                ),
                ConditionExpression=(
                    "attribute_exists(third_party_user_id) AND registration = :claimed "
                    "AND (attribute_not_exists(htouhui_user_id) OR htouhui_user_id = :htouhui)"
                ),
                ExpressionAttributeValues={
                    ":htouhui": {"S": htouhui_user_id},
                    ":done": {"S": DONE},
                    ":claimed": {"S": CLAIMED},
                    ":now": {"S": iso_utc(now)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            record = self._explain(third_party_user_id, failed.item)
            if record is None:
                # Our lease expired and a failed competitor released it. Htouhui has the user; a
                # retry claims again and Htouhui answers the same htouhui_user_id.
                raise StoreUnavailable("the registration claim vanished before it was completed") from None
            if record.htouhui_user_id == htouhui_user_id and record.registration == DONE:
                return record  # a competitor whose lease overlapped ours completed the same answer
            raise HtouhuiUserIdMismatch() from None
        return UserRecord.from_item(answer["Attributes"])

    def release_claim(self, third_party_user_id: str, token: str | None = None) -> None:
        """Give the lease back after a failed call to Htouhui, so that a retry need not wait for it."""
        condition = "registration = :claimed"
        values: dict[str, Any] = {":claimed": {"S": CLAIMED}}
        if token is not None:
            condition += " AND claim_token = :token"
            values[":token"] = {"S": token}
        with contextlib.suppress(_ConditionFailed):  # registered meanwhile, or the lease passed on: theirs
            self._call(
                "delete_item",
                TableName=self.users_table,
                Key=_key(third_party_user_id),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )

    # --- open account -------------------------------------------------------------------------------

    def mark_open_requested(self, third_party_user_id: str, id_card: str, now: datetime) -> UserRecord:
        """Keep the id_card (the query interface needs it) before the open-account page is handed out.

        The id_card may change only while no account is opened (status absent or 0).
        """
        try:
            answer = self._call(
                "update_item",
                TableName=self.users_table,
                Key=_key(third_party_user_id),
                UpdateExpression=(
                    "SET id_card = :card, open_requested = :true, updated_at = :now, "
                    "open_requested_at = if_not_exists(open_requested_at, :now)"  # the funnel's form time
                ),
                ConditionExpression=(
                    "attribute_exists(third_party_user_id) AND registration = :done AND ("
                    "attribute_not_exists(id_card) OR id_card = :card "
                    "OR attribute_not_exists(#status) OR #status = :zero)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":card": {"S": id_card},
                    ":true": {"BOOL": True},
                    ":now": {"S": iso_utc(now)},
                    ":done": {"S": DONE},
                    ":zero": {"N": "0"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            record = self._explain(third_party_user_id, failed.item)
            if record is None:
                raise UserNotFound(third_party_user_id) from None
            if record.registration != DONE:
                raise RegistrationRequired() from None
            raise IdCardMismatch() from None
        return UserRecord.from_item(answer["Attributes"])

    # --- status -------------------------------------------------------------------------------------

    def apply_status(self, update: StatusUpdate) -> ApplyOutcome:
        """The one monotonic write: the status rises or nothing changes; a notification is kept once.

        Raises UserNotFound (no registered user of that id) and HtouhuiUserIdMismatch (Htouhui names
        another htouhui_user_id); then nothing is written, not even the history record.
        """
        user_update = self._status_update(update)
        if update.notify_no is None:
            for _ in range(TRANSACTION_ATTEMPTS):
                try:
                    self._call("update_item", **user_update)
                except _ConditionFailed as failed:
                    return self._not_higher(update, failed.item)
                except _Conflicted:
                    self._backoff()
                    continue
                return ApplyOutcome.APPLIED
            raise StoreUnavailable("the user kept being changed by other transactions")

        history = {"TableName": self.notifications_table, **self._history(update)}
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=[{"Put": history}, {"Update": user_update}])
            except _Cancelled as cancelled:
                codes = [str(reason.get("Code", "None")) for reason in cancelled.reasons]
                if len(codes) != 2:
                    raise StoreUnavailable("transaction cancelled without a reason per item") from None
                if codes[0] == _CONDITION_FAILED:
                    return ApplyOutcome.DUPLICATE
                if codes[0] == "None" and codes[1] == _CONDITION_FAILED:
                    return self._not_higher(update, cancelled.reasons[1].get("Item"))
                if _CONFLICT_CODES & set(codes):
                    self._backoff()
                    continue
                raise StoreUnavailable(f"transaction cancelled: {', '.join(codes)}") from None
            except _Conflicted:
                self._backoff()
                continue
            return ApplyOutcome.APPLIED
        raise StoreUnavailable("the user kept being changed by other transactions")

    def _status_update(self, update: StatusUpdate) -> dict[str, Any]:
        sets = ["#status = :new", "updated_at = :now", "status_source = :source"]
        values: dict[str, Any] = {
            ":new": {"N": str(update.status)},
            ":now": {"S": iso_utc(update.received_at)},
            ":source": {"S": update.source},
            ":htouhui": {"S": update.htouhui_user_id},
        }
        if update.bank_card_number:
            # A full number replaces whatever is stored; a masked one only fills a gap (§9).
            full = is_full_card_number(update.bank_card_number)
            sets.append("bank_card_number = " + (":card" if full else "if_not_exists(bank_card_number, :card)"))
            values[":card"] = {"S": update.bank_card_number}
        if update.borrower:
            sets.append("borrower = :borrower")
            values[":borrower"] = {"S": update.borrower}
        expression = "SET " + ", ".join(sets)
        if update.status >= COMPLETED_STATUS:
            expression += " REMOVE " + ", ".join(SCHEDULE_ATTRIBUTES)  # finished: off the schedule
        return {
            "TableName": self.users_table,
            "Key": _key(update.third_party_user_id),
            "UpdateExpression": expression,
            "ConditionExpression": (
                "attribute_exists(third_party_user_id) AND htouhui_user_id = :htouhui "
                "AND (attribute_not_exists(#status) OR #status < :new)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _history(self, update: StatusUpdate) -> dict[str, Any]:
        if update.notify_no is None:  # only notifications write history; a guard, not a path
            raise ValueError("a history record needs the notification's notify_no")
        item: dict[str, Any] = {
            NOTIFICATIONS_KEY: {"S": update.notify_no},
            "third_party_user_id": {"S": update.third_party_user_id},
            "htouhui_user_id": {"S": update.htouhui_user_id},
            "status": {"N": str(update.status)},
            "received_at": {"S": iso_utc(update.received_at)},
            "source": {"S": update.source},
        }
        if update.timestamp:
            item["timestamp"] = {"S": update.timestamp}
        if update.raw is not None:  # re-verifiable and re-appliable later (python -m onboarding.ops.admin reapply)
            item["raw"] = _string_map(update.raw)
        if self.history_days > 0:
            item["expires_at"] = {"N": str(int(update.received_at.timestamp()) + self.history_days * 86_400)}
        return {"Item": item, "ConditionExpression": "attribute_not_exists(notify_no)"}

    def record_unhandled(
        self, notify_no: str, received: Mapping[str, str], now: datetime, *, notify_type: str | None
    ) -> ApplyOutcome:
        """Keep a verified notification we do not act on (another notify_type): UNHANDLED, or DUPLICATE."""
        item: dict[str, Any] = {
            NOTIFICATIONS_KEY: {"S": notify_no},
            "received_at": {"S": iso_utc(now)},
            "source": {"S": "notify"},
            "unhandled": {"BOOL": True},
            "raw": _string_map(received),
        }
        if self.history_days > 0:
            item["expires_at"] = {"N": str(int(now.timestamp()) + self.history_days * 86_400)}
        if notify_type:
            item["notify_type"] = {"S": notify_type}
        for name in ("third_party_user_id", "htouhui_user_id"):
            if received.get(name):
                item[name] = {"S": received[name]}
        try:
            self._call(
                "put_item",
                TableName=self.notifications_table,
                Item=item,
                ConditionExpression="attribute_not_exists(notify_no)",
            )
        except _ConditionFailed:
            return ApplyOutcome.DUPLICATE
        return ApplyOutcome.UNHANDLED

    def _not_higher(self, update: StatusUpdate, old: Mapping[str, Any] | None) -> ApplyOutcome:
        """The user's condition failed: say why, keep the history of a stale notification, fill details."""
        record = self._explain(update.third_party_user_id, old)
        if record is None or record.htouhui_user_id is None:
            raise UserNotFound(update.third_party_user_id)
        if record.htouhui_user_id != update.htouhui_user_id:
            raise HtouhuiUserIdMismatch()
        if record.status is None or record.status < update.status:
            raise StoreUnavailable("status condition failed but the stored status is lower")  # changed meanwhile
        if update.notify_no is not None:
            try:
                self._call("put_item", TableName=self.notifications_table, **self._history(update))
            except _ConditionFailed:
                return ApplyOutcome.DUPLICATE
        self._fill_details(update, record)
        return ApplyOutcome.STALE

    def _fill_details(self, update: StatusUpdate, record: UserRecord) -> None:
        """A stale answer may still tell what we lack (a query's borrower flag, a missing bank card)."""
        sets: list[str] = []
        values: dict[str, Any] = {":htouhui": {"S": update.htouhui_user_id}}
        if update.borrower and update.borrower != record.borrower:
            sets.append("borrower = :borrower")
            values[":borrower"] = {"S": update.borrower}
        if update.bank_card_number and card_number_improves(record.bank_card_number, update.bank_card_number):
            sets.append("bank_card_number = :card")
            values[":card"] = {"S": update.bank_card_number}
        if not sets:
            return
        with contextlib.suppress(_ConditionFailed, _Conflicted):  # details only: the next answer fills them
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=_key(update.third_party_user_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(third_party_user_id) AND htouhui_user_id = :htouhui",
                ExpressionAttributeValues=values,
            )

    # --- reconciliation schedule ----------------------------------------------------------------------

    def due(self, shard: str, now: int, limit: int) -> list[DueUser]:
        """Up to `limit` users of one shard whose check is due at `now`, oldest due first (the index only)."""
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "#shard = :shard AND #due <= :now",
            "ExpressionAttributeNames": {"#shard": SHARD_ATTRIBUTE, "#due": DUE_ATTRIBUTE},
            "ExpressionAttributeValues": {":shard": {"S": shard}, ":now": {"N": str(now)}},
            "ScanIndexForward": True,
        }
        found: list[DueUser] = []
        while len(found) < limit:
            request["Limit"] = min(1000, limit - len(found))
            answer = self._call("query", **request)
            for item in answer.get("Items", []):
                due = _number(item, DUE_ATTRIBUTE)
                if due is not None:
                    found.append(DueUser(_text(item, USERS_KEY) or "", due, shard))
            last = answer.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        return found

    def claim_dispatch(self, user: DueUser, until: int) -> bool:
        """Move a due user's time to `until` (its message is in flight), unless someone moved it since it was read.

        A lost message costs a delay, never the check: the user is due again at `until`.
        """
        try:
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=_key(user.third_party_user_id),
                UpdateExpression="SET #due = :until",
                ConditionExpression="#due = :seen",
                ExpressionAttributeNames={"#due": DUE_ATTRIBUTE},
                ExpressionAttributeValues={":until": {"N": str(until)}, ":seen": {"N": str(user.due)}},
            )
        except _ConditionFailed:
            return False
        return True

    def restart_schedule(self, third_party_user_id: str, slot: Slot, shard: str) -> bool:
        """Put the user on the ladder at `slot` (news below status 3, a fresh form); False when it may not be.

        Only a registered user with an id_card (the query needs it) and a status below 3 is scheduled.
        A check in progress keeps its lease; its result will not move this new ladder.
        """
        try:
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=_key(third_party_user_id),
                UpdateExpression=(
                    "SET #shard = :shard, #due = :due, check_anchor = :anchor, check_step = :step, "
                    "check_attempts = :zero"
                ),
                ConditionExpression=(
                    "registration = :done AND attribute_exists(id_card) "
                    "AND (attribute_not_exists(#status) OR #status < :completed)"
                ),
                ExpressionAttributeNames={"#shard": SHARD_ATTRIBUTE, "#due": DUE_ATTRIBUTE, "#status": "status"},
                ExpressionAttributeValues={
                    ":shard": {"S": shard},
                    ":due": {"N": str(slot.due)},
                    ":anchor": {"N": str(slot.anchor)},
                    ":step": {"N": str(slot.step)},
                    ":zero": {"N": "0"},
                    ":done": {"S": DONE},
                    ":completed": {"N": str(COMPLETED_STATUS)},
                },
            )
        except _ConditionFailed:
            return False
        return True

    def begin_check(
        self, third_party_user_id: str, *, token: str, now: int, lease_until: int, due: int | None = None
    ) -> UserRecord | None:
        """Take the user's check lease; None when another check holds it, the user is gone or (`due` given)
        the dispatched due time is no longer the user's (news restarted the ladder, or another dispatch took it).
        """
        condition = (
            "attribute_exists(third_party_user_id) AND (attribute_not_exists(check_lease) OR check_lease < :now)"
        )
        values: dict[str, Any] = {
            ":until": {"N": str(lease_until)},
            ":token": {"S": token},
            ":now": {"N": str(now)},
        }
        names: dict[str, str] = {}
        if due is not None:
            condition += " AND #due = :due"
            values[":due"] = {"N": str(due)}
            names["#due"] = DUE_ATTRIBUTE
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "Key": _key(third_party_user_id),
            "UpdateExpression": "SET check_lease = :until, check_token = :token",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            answer = self._call("update_item", **request)
        except _ConditionFailed:
            return None
        return UserRecord.from_item(answer["Attributes"])

    def settle_check(
        self,
        third_party_user_id: str,
        *,
        token: str,
        taken_on: Slot | None,
        next_slot: Slot | None,
        shard: str,
        attempts: int = 0,
    ) -> bool:
        """End our check: move the ladder to `next_slot` (None: off the schedule) and give the lease back.

        Only the ladder the check was taken on moves (`taken_on`; None: whatever ladder there is, as for
        CheckUserStatus) and a finished user is never put back; otherwise only the lease is given back and
        False is returned.
        """
        names = {"#status": "status", "#due": DUE_ATTRIBUTE, "#shard": SHARD_ATTRIBUTE}
        values: dict[str, Any] = {":token": {"S": token}}
        condition = "check_token = :token"
        if taken_on is not None:
            condition += " AND check_anchor = :anchor AND check_step = :step"
            values[":anchor"] = {"N": str(taken_on.anchor)}
            values[":step"] = {"N": str(taken_on.step)}
        lease = ", ".join(_LEASE_ATTRIBUTES)
        if next_slot is None:
            names = {}
            expression = f"REMOVE {', '.join(SCHEDULE_ATTRIBUTES)}, {lease}"
        else:
            expression = (
                "SET #shard = :shard, #due = :due, check_anchor = :next_anchor, check_step = :next_step, "
                f"check_attempts = :attempts REMOVE {lease}"
            )
            condition += " AND (attribute_not_exists(#status) OR #status < :completed)"
            values.update(
                {
                    ":shard": {"S": shard},
                    ":due": {"N": str(next_slot.due)},
                    ":next_anchor": {"N": str(next_slot.anchor)},
                    ":next_step": {"N": str(next_slot.step)},
                    ":attempts": {"N": str(attempts)},
                    ":completed": {"N": str(COMPLETED_STATUS)},
                }
            )
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "Key": _key(third_party_user_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            self._call("update_item", **request)
        except _ConditionFailed:
            self.release_check(third_party_user_id, token)
            return False
        return True

    def release_check(self, third_party_user_id: str, token: str) -> None:
        """Give our check lease back (nothing else changes); a lease already gone or passed on is left alone."""
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=_key(third_party_user_id),
                UpdateExpression="REMOVE " + ", ".join(_LEASE_ATTRIBUTES),
                ConditionExpression="check_token = :token",
                ExpressionAttributeValues={":token": {"S": token}},
            )

    # --- plumbing -----------------------------------------------------------------------------------

    def _explain(self, third_party_user_id: str, old: Mapping[str, Any] | None) -> UserRecord | None:
        """The item as it was when a condition failed (returned by DynamoDB, else read consistently)."""
        if old:
            return UserRecord.from_item(old)
        return self.get(third_party_user_id)

    def _backoff(self) -> None:
        self._sleep(0.02 + secrets.randbelow(80) / 1000)

    def client(self) -> Any:
        if self._dynamodb is None:
            with self._lock:
                if self._dynamodb is None:
                    import boto3  # the Lambda runtime's; only paid for on first use
                    from botocore.config import Config

                    self._dynamodb = boto3.client(
                        "dynamodb",
                        config=Config(
                            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5
                        ),
                    )
        return self._dynamodb

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = getattr(self.client(), operation)(**request)
        except ClientError as exc:
            response: dict[str, Any] = dict(exc.response)
            error: dict[str, Any] = response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed(response.get("Item")) from None
            if code == "TransactionCanceledException":
                reasons = response.get("CancellationReasons") or error.get("CancellationReasons") or []
                raise _Cancelled(list(reasons)) from None
            if code in _CONFLICT_CODES:
                raise _Conflicted() from None
            raise StoreUnavailable(f"DynamoDB {operation} failed: {code or 'unknown error'}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc
        return answer


def is_full_card_number(value: str) -> bool:
    """A card number as the bank issued it: digits, perhaps grouped by spaces or hyphens; not masked."""
    digits = value.replace(" ", "").replace("-", "")
    return bool(digits) and digits.isascii() and digits.isdigit()


def card_number_improves(stored: str | None, received: str) -> bool:
    """§9: a masked number fills a gap, a full one replaces a masked one or a different full one."""
    if not stored:
        return True
    if not is_full_card_number(received):
        return False
    return not is_full_card_number(stored) or _digits(stored) != _digits(received)


def _digits(value: str) -> str:
    return value.replace(" ", "").replace("-", "")


def _string_map(fields: Mapping[str, str]) -> dict[str, Any]:
    return {"M": {name: {"S": value} for name, value in fields.items() if isinstance(value, str)}}


def _key(third_party_user_id: str) -> dict[str, Any]:
    return {USERS_KEY: {"S": third_party_user_id}}


def _text(item: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if value and "S" in value else None


def _number(item: Mapping[str, Mapping[str, Any]], name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value and "N" in value else None
