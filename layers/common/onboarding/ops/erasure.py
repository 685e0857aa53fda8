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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from onboarding.store import SCHEDULE_ATTRIBUTES, iso_utc

PERSONAL_USER_ATTRIBUTES: Final = ("id_card", "bank_card_number", "mobile_digest")
PERSONAL_HISTORY_ATTRIBUTES: Final = ("raw", "bank_card_number")
HISTORY_BY_USER_INDEX: Final = "by-user"


@dataclass(frozen=True)
class ErasureReport:
    third_party_user_id: str
    user_found: bool
    history_records: int


def history_keys(dynamodb: Any, notifications_table: str, third_party_user_id: str) -> Iterator[str]:
    """The notify_no of every history record of the user, oldest first (Query on the by-user index, paged)."""
    request: dict[str, Any] = {
        "TableName": notifications_table,
        "IndexName": HISTORY_BY_USER_INDEX,
        "KeyConditionExpression": "third_party_user_id = :user",
        "ExpressionAttributeValues": {":user": {"S": third_party_user_id}},
    }
    while True:
        answer = dynamodb.query(**request)
        for item in answer.get("Items", []):
            yield str(item["notify_no"]["S"])
        last = answer.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last


def erase_user(
    dynamodb: Any, users_table: str, notifications_table: str, third_party_user_id: str, now: datetime
) -> ErasureReport:
    stamp = {":now": {"S": iso_utc(now)}}
    names = {f"#p{index}": name for index, name in enumerate(PERSONAL_USER_ATTRIBUTES)}
    try:
        dynamodb.update_item(
            TableName=users_table,
            Key={"third_party_user_id": {"S": third_party_user_id}},
            UpdateExpression=(
                f"SET erased_at = if_not_exists(erased_at, :now) REMOVE {', '.join([*names, *SCHEDULE_ATTRIBUTES])}"
            ),
            ConditionExpression="attribute_exists(third_party_user_id)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=stamp,
        )
        user_found = True
    except dynamodb.exceptions.ConditionalCheckFailedException:
        user_found = False
    history = 0
    history_names = {f"#h{index}": name for index, name in enumerate(PERSONAL_HISTORY_ATTRIBUTES)}
    for notify_no in list(history_keys(dynamodb, notifications_table, third_party_user_id)):
        dynamodb.update_item(
            TableName=notifications_table,
            Key={"notify_no": {"S": notify_no}},
            UpdateExpression=f"SET erased_at = if_not_exists(erased_at, :now) REMOVE {', '.join(history_names)}",
            ConditionExpression="attribute_exists(notify_no)",
            ExpressionAttributeNames=history_names,
            ExpressionAttributeValues=stamp,
        )
        history += 1
    return ErasureReport(third_party_user_id, user_found, history)
