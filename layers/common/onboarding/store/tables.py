"""The store's plumbing: its tables, its one lazily made DynamoDB client, and DynamoDB's failures translated.

An expected condition failure becomes `ConditionFailed` (with the old item when DynamoDB returned it), a cancelled
transaction `Cancelled` (with a reason per item), a transaction conflict `Conflicted`; anything else is
`StoreUnavailable`, which the API answers as 503.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from onboarding import dynamo
from onboarding.errors import StoreUnavailable
from onboarding.store.records import iso_utc

TRANSACTION_ATTEMPTS: Final = 8
CONFLICT_CODES: Final = frozenset({"TransactionConflict", "TransactionConflictException"})
CONDITION_FAILED: Final = "ConditionalCheckFailed"
# Short timeouts: a Lambda waiting on a stuck connection is worse than a retried request. A connection for each of
# the dispatcher's claim threads (due.CLAIM_THREADS), so that none opens a fresh one per claim.
CLIENT_CONFIG: Final = {
    "retries": {"mode": "standard", "max_attempts": 3},
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_pool_connections": 16,
}


class ConditionFailed(Exception):
    def __init__(self, item: Mapping[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


class Cancelled(Exception):
    def __init__(self, reasons: list[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons


class Conflicted(Exception):
    """Another transaction was touching the item: retry."""


def call(client: Callable[[], Any], operation: str, **request: Any) -> dict[str, Any]:
    """One DynamoDB request on `client()`, its failures translated: ConditionFailed, Cancelled, Conflicted, and any
    other (the client's own making included) StoreUnavailable."""
    try:
        answer: dict[str, Any] = getattr(client(), operation)(**request)
    except ClientError as exc:
        response: dict[str, Any] = dict(exc.response)
        error: dict[str, Any] = response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(response.get("Item")) from None
        if code == "TransactionCanceledException":
            reasons = response.get("CancellationReasons") or error.get("CancellationReasons") or []
            raise Cancelled(list(reasons)) from None
        if code in CONFLICT_CODES:
            raise Conflicted() from None
        raise StoreUnavailable(f"DynamoDB {operation} failed: {code or 'unknown error'}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc
    return answer


class Tables:
    """The users table and the notification history, reached through one DynamoDB client."""

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
        self._client = dynamo.LazyClient("dynamodb", dynamodb, config=CLIENT_CONFIG)
        self._sleep = sleep

    def client(self) -> Any:
        return self._client()

    def built_client(self) -> Any | None:
        """The client if one was made or injected, else None (priming: looking builds nothing)."""
        return self._client.built

    def use_client(self, dynamodb: Any) -> None:
        """Talk through `dynamodb` from now on (tests that break or swap the connection)."""
        self._client.inject(dynamodb)

    def _backoff(self) -> None:
        self._sleep(0.02 + secrets.randbelow(80) / 1000)

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        return call(self.client, operation, **request)

    def _erase(self, table: str, key: dict[str, Any], remove: Sequence[str], now: datetime) -> bool:
        """Remove attributes from an existing item and stamp its first `erased_at`; False when there is no item."""
        names = {f"#e{index}": name for index, name in enumerate(remove)}
        (key_name,) = key
        try:
            self._call(
                "update_item",
                TableName=table,
                Key=key,
                UpdateExpression=f"SET erased_at = if_not_exists(erased_at, :now) REMOVE {', '.join(names)}",
                ConditionExpression="attribute_exists(#key)",
                ExpressionAttributeNames={**names, "#key": key_name},
                ExpressionAttributeValues=dynamo.values({":now": iso_utc(now)}),
            )
        except ConditionFailed:
            return False
        return True

    def _pages(self, operation: str, request: Mapping[str, Any]) -> Any:
        """Every page of a Query or Scan, each through `_call` (its failures translated)."""
        return dynamo.pages(lambda **page: self._call(operation, **page), request)
