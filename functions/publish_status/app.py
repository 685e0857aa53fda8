"""UsersTable stream -> EventBridge `UserStatusChanged` (source `htouhui.onboarding`).

Derived from the table's stream, so no change is published without being stored, nor stored without
being published. Records are handled in stream order; at the first record that cannot be published,
the batch stops and reports that record as the failure (ReportBatchItemFailures): Lambda retries from
it, so nothing is lost, and records already published are not published again needlessly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any, Final

from aws_lambda_powertools.utilities.typing import LambdaContext

from htouhui.observability import STATUS_EVENTS_PUBLISHED, count, logger, metrics
from htouhui.status_events import put_events_entry

PUT_EVENTS_MAX: Final = 10

_clients: dict[str, Any] = {}


def events_client() -> Any:
    """boto3's EventBridge client, created on first use (honours AWS_ENDPOINT_URL_EVENTS)."""
    if "events" not in _clients:
        import boto3

        _clients["events"] = boto3.client("events")
    return _clients["events"]


def set_events_client(client: Any | None) -> None:
    """Inject a client (tests); None drops it so the next call creates one."""
    if client is None:
        _clients.pop("events", None)
    else:
        _clients["events"] = client


def _ids(entry: dict[str, Any]) -> dict[str, Any]:
    detail = json.loads(entry["Detail"])
    return {name: detail[name] for name in ("third_party_user_id", "old_status", "new_status")}


def publish(records: Iterable[dict[str, Any]], put_events: Callable[..., Any], bus: str) -> str | None:
    """Publish the changes in order; the sequence number of the first record not published, or None."""
    pending: list[tuple[str, dict[str, Any]]] = []  # (sequence number, PutEvents entry)

    def flush() -> str | None:
        if not pending:
            return None
        try:
            answer = put_events(Entries=[entry for _, entry in pending])
            results = answer.get("Entries") or []
        except Exception:
            logger.exception("PutEvents failed", extra={"entries": len(pending)})
            return pending[0][0]
        for index, (sequence, entry) in enumerate(pending):
            result = results[index] if index < len(results) else {"ErrorCode": "missing"}
            if result.get("ErrorCode") or not result.get("EventId"):
                logger.error(
                    "UserStatusChanged not published",
                    extra={"error_code": result.get("ErrorCode"), **_ids(entry)},
                )
                count(STATUS_EVENTS_PUBLISHED, index)
                return sequence
        count(STATUS_EVENTS_PUBLISHED, len(pending))
        for _, entry in pending:
            logger.info("UserStatusChanged published", extra=_ids(entry))
        pending.clear()
        return None

    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            entry = put_events_entry(record, bus)
        except (TypeError, ValueError, AttributeError):
            logger.exception("unreadable stream record skipped", extra={"sequence_number": sequence})
            continue
        if entry is None:
            continue
        pending.append((sequence, entry))
        if len(pending) == PUT_EVENTS_MAX and (failed := flush()) is not None:
            return failed
    return flush()


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bus = os.environ.get("EVENT_BUS_NAME", "").strip() or "default"
    failed = publish(event.get("Records") or [], events_client().put_events, bus)
    if failed is None:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [{"itemIdentifier": failed}]}
