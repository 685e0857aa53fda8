"""The user record: the registration lease, the id_card kept for the form, and the one monotonic status write."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from onboarding import dynamo
from onboarding.errors import (
    HtouhuiUserIdMismatch,
    IdCardMismatch,
    RegistrationRequired,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.store.history import history_put
from onboarding.store.records import (
    CLAIMED,
    DONE,
    SCHEDULE_ATTRIBUTES,
    ApplyOutcome,
    Claim,
    ClaimOutcome,
    StatusUpdate,
    UserRecord,
    card_number_improves,
    is_full_card_number,
    iso_utc,
    user_key,
)
from onboarding.store.tables import (
    CONDITION_FAILED,
    CONFLICT_CODES,
    TRANSACTION_ATTEMPTS,
    Cancelled,
    ConditionFailed,
    Conflicted,
    Tables,
)
from onboarding.view import COMPLETED_STATUS

CLAIM_LEASE_SECONDS: Final = 30


class Users(Tables):
    # Over the ~250-line guide on purpose: every write of the user item is one conditional request spelled out in
    # full (its condition is the rule), and the registration lease, the form and the status share `_explain`.
    # --- reading ------------------------------------------------------------------------------------

    def get(self, third_party_user_id: str) -> UserRecord | None:
        stored = self._item(third_party_user_id)
        return UserRecord.from_item(stored) if stored else None

    def stored(self, third_party_user_id: str) -> dict[str, Any] | None:
        """The user's item as plain values, every attribute (the operator's and the user's own copy)."""
        stored = self._item(third_party_user_id)
        return dynamo.plain(stored) if stored else None

    def _item(self, third_party_user_id: str) -> Mapping[str, Any] | None:
        answer = self._call(
            "get_item", TableName=self.users_table, Key=user_key(third_party_user_id), ConsistentRead=True
        )
        stored: Mapping[str, Any] | None = answer.get("Item")
        return stored

    def erase_personal(self, third_party_user_id: str, personal: Sequence[str], now: datetime) -> bool:
        """Remove `personal` attributes and the schedule from the user item, stamp `erased_at`; False: no user."""
        return self._erase(self.users_table, user_key(third_party_user_id), [*personal, *SCHEDULE_ATTRIBUTES], now)

    def stalled_pages(
        self, updated_before: str, *, status: str | None = None, page_size: int = 500
    ) -> Iterator[Mapping[str, Any]]:
        """Pages of a Scan for registered users below status 3 not updated since `updated_before` (ISO 8601).

        `status` narrows to one level ("1", "2") or to users with no status yet ("none"). An operator's occasional
        question (admin stuck): each page carries its ScannedCount and ConsumedCapacity.
        """
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "FilterExpression": (
                "registration = :done AND updated_at < :cutoff AND attribute_not_exists(erased_at) "
                "AND (attribute_not_exists(#status) OR #status < :three)"
            ),
            "ProjectionExpression": "third_party_user_id, htouhui_user_id, #status, updated_at, created_at",
            "ExpressionAttributeNames": {"#status": "status"},
            "ReturnConsumedCapacity": "TOTAL",
            "Limit": page_size,
        }
        placeholders: dict[str, Any] = {":done": DONE, ":cutoff": updated_before, ":three": COMPLETED_STATUS}
        if status == "none":
            request["FilterExpression"] += " AND attribute_not_exists(#status)"
        elif status is not None:
            request["FilterExpression"] += " AND #status = :status"
            placeholders[":status"] = int(status)
        request["ExpressionAttributeValues"] = dynamo.values(placeholders)
        yield from self._pages("scan", request)

    def with_status_pages(self, updated_since: str, *, page_size: int = 500) -> Iterator[Mapping[str, Any]]:
        """Pages of a Scan for users with a status updated at or after `updated_since` (ISO 8601): what admin
        republish publishes again. An operator's occasional replay, not a hot path, so no index is kept for it."""
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "FilterExpression": "attribute_exists(#status) AND updated_at >= :since",
            "ProjectionExpression": "third_party_user_id, htouhui_user_id, #status, updated_at",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": dynamo.values({":since": updated_since}),
            "Limit": page_size,
        }
        yield from self._pages("scan", request)

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
                    Key=user_key(third_party_user_id),
                    UpdateExpression=(
                        "SET registration = :claimed, claim_expires_at = :expires, claim_token = :token, "
                        "mobile_digest = :digest, created_at = if_not_exists(created_at, :now), updated_at = :now"
                    ),
                    ConditionExpression=(
                        "attribute_not_exists(third_party_user_id) "
                        "OR (registration = :claimed AND claim_expires_at < :epoch)"
                    ),
                    ExpressionAttributeValues=dynamo.values(
                        {
                            ":claimed": CLAIMED,
                            ":expires": epoch + CLAIM_LEASE_SECONDS,
                            ":token": token,
                            ":digest": mobile_digest,
                            ":now": iso_utc(now),
                            ":epoch": epoch,
                        }
                    ),
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ConditionFailed as failed:
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
                Key=user_key(third_party_user_id),
                UpdateExpression=(
                    "SET htouhui_user_id = :htouhui, registration = :done, updated_at = :now "
                    "REMOVE claim_expires_at, claim_token"
                ),
                ConditionExpression=(
                    "attribute_exists(third_party_user_id) AND registration = :claimed "
                    "AND (attribute_not_exists(htouhui_user_id) OR htouhui_user_id = :htouhui)"
                ),
                ExpressionAttributeValues=dynamo.values(
                    {":htouhui": htouhui_user_id, ":done": DONE, ":claimed": CLAIMED, ":now": iso_utc(now)}
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
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
        placeholders: dict[str, Any] = {":claimed": CLAIMED}
        if token is not None:
            condition += " AND claim_token = :token"
            placeholders[":token"] = token
        with contextlib.suppress(ConditionFailed):  # registered meanwhile, or the lease passed on: theirs
            self._call(
                "delete_item",
                TableName=self.users_table,
                Key=user_key(third_party_user_id),
                ConditionExpression=condition,
                ExpressionAttributeValues=dynamo.values(placeholders),
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
                Key=user_key(third_party_user_id),
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
                ExpressionAttributeValues=dynamo.values(
                    {":card": id_card, ":true": True, ":now": iso_utc(now), ":done": DONE, ":zero": 0}
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
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
                except ConditionFailed as failed:
                    return self._not_higher(update, failed.item)
                except Conflicted:
                    self._backoff()
                    continue
                return ApplyOutcome.APPLIED
            raise StoreUnavailable("the user kept being changed by other transactions")

        history = {"TableName": self.notifications_table, **history_put(update, self.history_days)}
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=[{"Put": history}, {"Update": user_update}])
            except Cancelled as cancelled:
                codes = [str(reason.get("Code", "None")) for reason in cancelled.reasons]
                if len(codes) != 2:
                    raise StoreUnavailable("transaction cancelled without a reason per item") from None
                if codes[0] == CONDITION_FAILED:
                    return ApplyOutcome.DUPLICATE
                if codes[0] == "None" and codes[1] == CONDITION_FAILED:
                    return self._not_higher(update, cancelled.reasons[1].get("Item"))
                if CONFLICT_CODES & set(codes):
                    self._backoff()
                    continue
                raise StoreUnavailable(f"transaction cancelled: {', '.join(codes)}") from None
            except Conflicted:
                self._backoff()
                continue
            return ApplyOutcome.APPLIED
        raise StoreUnavailable("the user kept being changed by other transactions")

    def _status_update(self, update: StatusUpdate) -> dict[str, Any]:
        sets = ["#status = :new", "updated_at = :now", "status_source = :source"]
        placeholders: dict[str, Any] = {
            ":new": update.status,
            ":now": iso_utc(update.received_at),
            ":source": update.source,
            ":htouhui": update.htouhui_user_id,
        }
        if update.bank_card_number:
            # A full number replaces whatever is stored; a masked one only fills a gap (§9).
            full = is_full_card_number(update.bank_card_number)
            sets.append("bank_card_number = " + (":card" if full else "if_not_exists(bank_card_number, :card)"))
            placeholders[":card"] = update.bank_card_number
        if update.borrower:
            sets.append("borrower = :borrower")
            placeholders[":borrower"] = update.borrower
        expression = "SET " + ", ".join(sets)
        if update.status >= COMPLETED_STATUS:
            expression += " REMOVE " + ", ".join(SCHEDULE_ATTRIBUTES)  # finished: off the schedule
        return {
            "TableName": self.users_table,
            "Key": user_key(update.third_party_user_id),
            "UpdateExpression": expression,
            "ConditionExpression": (
                "attribute_exists(third_party_user_id) AND htouhui_user_id = :htouhui "
                "AND (attribute_not_exists(#status) OR #status < :new)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": dynamo.values(placeholders),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

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
                self._call("put_item", TableName=self.notifications_table, **history_put(update, self.history_days))
            except ConditionFailed:
                return ApplyOutcome.DUPLICATE
        self._fill_details(update, record)
        return ApplyOutcome.STALE

    def _fill_details(self, update: StatusUpdate, record: UserRecord) -> None:
        """A stale answer may still tell what we lack (a query's borrower flag, a missing bank card)."""
        sets: list[str] = []
        placeholders: dict[str, Any] = {":htouhui": update.htouhui_user_id}
        if update.borrower and update.borrower != record.borrower:
            sets.append("borrower = :borrower")
            placeholders[":borrower"] = update.borrower
        if update.bank_card_number and card_number_improves(record.bank_card_number, update.bank_card_number):
            sets.append("bank_card_number = :card")
            placeholders[":card"] = update.bank_card_number
        if not sets:
            return
        with contextlib.suppress(ConditionFailed, Conflicted):  # details only: the next answer fills them
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=user_key(update.third_party_user_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(third_party_user_id) AND htouhui_user_id = :htouhui",
                ExpressionAttributeValues=dynamo.values(placeholders),
            )

    def _explain(self, third_party_user_id: str, old: Mapping[str, Any] | None) -> UserRecord | None:
        """The item as it was when a condition failed (returned by DynamoDB, else read consistently)."""
        if old:
            return UserRecord.from_item(old)
        return self.get(third_party_user_id)
