"""The reconciliation schedule on the users table: the sparse `due-checks` index, dispatch claims, check leases.

A dispatch claims a due user by moving its due time (`next_check_at = :seen`), a check holds a lease
(`check_lease < :now`), and a check's result only moves the ladder it was taken on (`check_token`,
`check_anchor`, `check_step`) and never puts a finished user back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Final

from onboarding import dynamo
from onboarding.schedule import Slot
from onboarding.store.records import (
    DONE,
    DUE_ATTRIBUTE,
    DUE_INDEX,
    SCHEDULE_ATTRIBUTES,
    SHARD_ATTRIBUTE,
    USERS_KEY,
    DueUser,
    UserRecord,
    user_key,
)
from onboarding.store.tables import ConditionFailed, Tables
from onboarding.view import COMPLETED_STATUS

LEASE_ATTRIBUTES: Final = ("check_lease", "check_token")
# Claims in flight at once: an UpdateItem waits a few milliseconds on DynamoDB, so 16 in flight take a run from ~150
# to ~2,000 claims a second while that wait is the limit; past it, the client's CPU is (docs/performance.md).
CLAIM_THREADS: Final = 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _claim_pool() -> ThreadPoolExecutor:
    """One pool per container, made on first use and kept for the warm invocations."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=CLAIM_THREADS, thread_name_prefix="claim")
        return _pool


class Schedule(Tables):
    def due(self, shard: str, now: int, limit: int, *, newest_first: bool = False) -> list[DueUser]:
        """Up to `limit` users of one shard whose check is due at `now`, oldest due first (or most recently due
        first), from the index only."""
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "#shard = :shard AND #due <= :now",
            "ExpressionAttributeNames": {"#shard": SHARD_ATTRIBUTE, "#due": DUE_ATTRIBUTE},
            "ExpressionAttributeValues": dynamo.values({":shard": shard, ":now": now}),
            "ScanIndexForward": not newest_first,
            "Limit": min(1000, limit),
        }
        found: list[DueUser] = []
        if limit <= 0:
            return found
        for page in self._pages("query", request):
            for stored in page.get("Items", []):
                due = dynamo.number(stored, DUE_ATTRIBUTE)
                if due is not None:
                    found.append(DueUser(dynamo.text(stored, USERS_KEY) or "", due, shard))
            if len(found) >= limit:
                break
        return found[:limit]

    def claim_dispatch(self, user: DueUser, until: int) -> bool:
        """Move a due user's time to `until` (its message is in flight), unless someone moved it since it was read.

        A lost message costs a delay, never the check: the user is due again at `until`.
        """
        try:
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=user_key(user.third_party_user_id),
                UpdateExpression="SET #due = :until",
                ConditionExpression="#due = :seen",
                ExpressionAttributeNames={"#due": DUE_ATTRIBUTE},
                ExpressionAttributeValues=dynamo.values({":until": until, ":seen": user.due}),
            )
        except ConditionFailed:
            return False
        return True

    def claim_dispatches(self, users: Sequence[DueUser], until: int) -> list[bool]:
        """`claim_dispatch` for each of `users`, `CLAIM_THREADS` at a time (one conditional UpdateItem each, on
        the thread-safe client): whether each was claimed, in order. Not a transaction: one user moved by someone
        else (False) takes nothing from the others. A storage failure surfaces after every claim has ended."""
        if len(users) <= 1:
            return [self.claim_dispatch(user, until) for user in users]
        self.client()  # made once, before the threads share it
        pool = _claim_pool()
        claims = [pool.submit(self.claim_dispatch, user, until) for user in users]
        wait(claims)
        return [claim.result() for claim in claims]

    def restart_schedule(self, third_party_user_id: str, slot: Slot, shard: str) -> bool:
        """Put the user on the ladder at `slot` (news below status 3, a fresh form); False when it may not be.

        Only a registered user with an id_card (the query needs it) and a status below 3 is scheduled.
        A check in progress keeps its lease; its result will not move this new ladder.
        """
        try:
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=user_key(third_party_user_id),
                UpdateExpression=(
                    "SET #shard = :shard, #due = :due, check_anchor = :anchor, check_step = :step, "
                    "check_attempts = :zero"
                ),
                ConditionExpression=(
                    "registration = :done AND attribute_exists(id_card) "
                    "AND (attribute_not_exists(#status) OR #status < :completed)"
                ),
                ExpressionAttributeNames={"#shard": SHARD_ATTRIBUTE, "#due": DUE_ATTRIBUTE, "#status": "status"},
                ExpressionAttributeValues=dynamo.values(
                    {
                        ":shard": shard,
                        ":due": slot.due,
                        ":anchor": slot.anchor,
                        ":step": slot.step,
                        ":zero": 0,
                        ":done": DONE,
                        ":completed": COMPLETED_STATUS,
                    }
                ),
            )
        except ConditionFailed:
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
        placeholders: dict[str, Any] = {":until": lease_until, ":token": token, ":now": now}
        names: dict[str, str] = {}
        if due is not None:
            condition += " AND #due = :due"
            placeholders[":due"] = due
            names["#due"] = DUE_ATTRIBUTE
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "Key": user_key(third_party_user_id),
            "UpdateExpression": "SET check_lease = :until, check_token = :token",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": dynamo.values(placeholders),
            "ReturnValues": "ALL_NEW",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            answer = self._call("update_item", **request)
        except ConditionFailed:
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
        placeholders: dict[str, Any] = {":token": token}
        condition = "check_token = :token"
        if taken_on is not None:
            condition += " AND check_anchor = :anchor AND check_step = :step"
            placeholders.update({":anchor": taken_on.anchor, ":step": taken_on.step})
        lease = ", ".join(LEASE_ATTRIBUTES)
        if next_slot is None:
            names = {}
            expression = f"REMOVE {', '.join(SCHEDULE_ATTRIBUTES)}, {lease}"
        else:
            expression = (
                "SET #shard = :shard, #due = :due, check_anchor = :next_anchor, check_step = :next_step, "
                f"check_attempts = :attempts REMOVE {lease}"
            )
            condition += " AND (attribute_not_exists(#status) OR #status < :completed)"
            placeholders.update(
                {
                    ":shard": shard,
                    ":due": next_slot.due,
                    ":next_anchor": next_slot.anchor,
                    ":next_step": next_slot.step,
                    ":attempts": attempts,
                    ":completed": COMPLETED_STATUS,
                }
            )
        request: dict[str, Any] = {
            "TableName": self.users_table,
            "Key": user_key(third_party_user_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": dynamo.values(placeholders),
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            self._call("update_item", **request)
        except ConditionFailed:
            self.release_check(third_party_user_id, token)
            return False
        return True

    def release_check(self, third_party_user_id: str, token: str) -> None:
        """Give our check lease back (nothing else changes); a lease already gone or passed on is left alone."""
        with contextlib.suppress(ConditionFailed):
            self._call(
                "update_item",
                TableName=self.users_table,
                Key=user_key(third_party_user_id),
                UpdateExpression="REMOVE " + ", ".join(LEASE_ATTRIBUTES),
                ConditionExpression="check_token = :token",
                ExpressionAttributeValues=dynamo.values({":token": token}),
            )
