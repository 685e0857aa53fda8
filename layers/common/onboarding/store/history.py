"""The notification history: one record per accepted notification (hash key `notify_no`, index `by-user`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from onboarding import dynamo
from onboarding.store.records import (
    HISTORY_BY_USER_INDEX,
    NOTIFICATIONS_KEY,
    ApplyOutcome,
    StatusUpdate,
    iso_utc,
)
from onboarding.store.tables import ConditionFailed, Tables

DAY_SECONDS = 86_400


def received_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """A notification's fields as received, the strings only (what is kept to verify and apply it again)."""
    return {name: value for name, value in fields.items() if isinstance(value, str)}


def history_put(update: StatusUpdate, history_days: int) -> dict[str, Any]:
    """The conditional Put of one notification's history record (written once: `attribute_not_exists`)."""
    if update.notify_no is None:  # only notifications write history; a guard, not a path
        raise ValueError("a history record needs the notification's notify_no")
    record: dict[str, Any] = {
        NOTIFICATIONS_KEY: update.notify_no,
        "third_party_user_id": update.third_party_user_id,
        "htouhui_user_id": update.htouhui_user_id,
        "status": update.status,
        "received_at": iso_utc(update.received_at),
        "source": update.source,
        "timestamp": update.timestamp or None,
        # re-verifiable and re-appliable later (python -m onboarding.ops.admin reapply)
        "raw": received_fields(update.raw) if update.raw is not None else None,
        "expires_at": _expiry(update.received_at, history_days),
    }
    return {"Item": dynamo.item(record), "ConditionExpression": "attribute_not_exists(notify_no)"}


def _expiry(received_at: datetime, history_days: int) -> int | None:
    return int(received_at.timestamp()) + history_days * DAY_SECONDS if history_days > 0 else None


class History(Tables):
    def record_unhandled(
        self, notify_no: str, received: Mapping[str, str], now: datetime, *, notify_type: str | None
    ) -> ApplyOutcome:
        """Keep a verified notification we do not act on (another notify_type): UNHANDLED, or DUPLICATE."""
        record: dict[str, Any] = {
            NOTIFICATIONS_KEY: notify_no,
            "received_at": iso_utc(now),
            "source": "notify",
            "unhandled": True,
            "raw": received_fields(received),
            "expires_at": _expiry(now, self.history_days),
            "notify_type": notify_type or None,
            "third_party_user_id": received.get("third_party_user_id") or None,
            "htouhui_user_id": received.get("htouhui_user_id") or None,
        }
        try:
            self._call(
                "put_item",
                TableName=self.notifications_table,
                Item=dynamo.item(record),
                ConditionExpression="attribute_not_exists(notify_no)",
            )
        except ConditionFailed:
            return ApplyOutcome.DUPLICATE
        return ApplyOutcome.UNHANDLED

    def history_keys(self, third_party_user_id: str) -> Iterator[str]:
        """The notify_no of every history record of the user (Query on the keys-only `by-user` index, paged)."""
        request = {
            "TableName": self.notifications_table,
            "IndexName": HISTORY_BY_USER_INDEX,
            "KeyConditionExpression": "third_party_user_id = :user",
            "ExpressionAttributeValues": dynamo.values({":user": third_party_user_id}),
        }
        for page in self._pages("query", request):
            for stored in page.get("Items", []):
                notify_no = dynamo.text(stored, NOTIFICATIONS_KEY)
                if notify_no is not None:
                    yield notify_no

    def history_of(self, third_party_user_id: str) -> list[dict[str, Any]]:
        """Every history record of the user as plain values (the index holds keys only: each record read)."""
        records = (self.notification(notify_no) for notify_no in self.history_keys(third_party_user_id))
        return [record for record in records if record is not None]

    def erase_history_record(self, notify_no: str, personal: Sequence[str], now: datetime) -> bool:
        """Remove `personal` attributes from one history record and stamp `erased_at`; False when it is gone."""
        return self._erase(self.notifications_table, dynamo.item({NOTIFICATIONS_KEY: notify_no}), personal, now)

    def notification(self, notify_no: str) -> dict[str, Any] | None:
        """One history record as plain values, or None."""
        answer = self._call(
            "get_item",
            TableName=self.notifications_table,
            Key=dynamo.item({NOTIFICATIONS_KEY: notify_no}),
            ConsistentRead=True,
        )
        stored = answer.get("Item")
        return dynamo.plain(stored) if stored else None
