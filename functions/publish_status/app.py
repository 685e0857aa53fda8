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

SOURCE: Final = "htouhui.onboarding"
DETAIL_TYPE: Final = "UserStatusChanged"
PUT_EVENTS_MAX: Final = 10
COMPLETED_STATUS: Final = 3

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


def _string(image: dict[str, Any], name: str) -> str | None:
    value = image.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _status(image: dict[str, Any] | None) -> int | None:
    value = (image or {}).get("status")
    if isinstance(value, dict) and "N" in value:
        return int(value["N"])
    return None


def status_change(record: dict[str, Any]) -> dict[str, Any] | None:
    """The UserStatusChanged detail of one stream record, or None when its status did not change."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    change = record.get("dynamodb") or {}
    new_image = change.get("NewImage") or {}
    old_status, new_status = _status(change.get("OldImage")), _status(new_image)
    if new_status is None or new_status == old_status:
        return None
    return {
        "third_party_user_id": _string(new_image, "third_party_user_id"),
        "htouhui_user_id": _string(new_image, "htouhui_user_id"),
        "old_status": old_status,
        "new_status": new_status,
        "ready_for_debt_matching": new_status == COMPLETED_STATUS,
    }


def _entry(detail: dict[str, Any], bus: str) -> dict[str, Any]:
    return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail), "EventBusName": bus}


def publish(records: Iterable[dict[str, Any]], put_events: Callable[..., Any], bus: str) -> str | None:
    """Publish the changes in order; the sequence number of the first record not published, or None."""
    pending: list[tuple[str, dict[str, Any]]] = []

    def flush() -> str | None:
        if not pending:
            return None
        try:
            answer = put_events(Entries=[_entry(detail, bus) for _, detail in pending])
            results = answer.get("Entries") or []
        except Exception:
            logger.exception("PutEvents failed", extra={"entries": len(pending)})
            return pending[0][0]
        for index, (sequence, detail) in enumerate(pending):
            result = results[index] if index < len(results) else {"ErrorCode": "missing"}
            if result.get("ErrorCode") or not result.get("EventId"):
                logger.error(
                    "UserStatusChanged not published",
                    extra={"error_code": result.get("ErrorCode"), "third_party_user_id": detail["third_party_user_id"]},
                )
                count(STATUS_EVENTS_PUBLISHED, index)
                return sequence
        count(STATUS_EVENTS_PUBLISHED, len(pending))
        for _, detail in pending:
            logger.info(
                "UserStatusChanged published",
                extra={
                    "third_party_user_id": detail["third_party_user_id"],
                    "old_status": detail["old_status"],
                    "new_status": detail["new_status"],
                },
            )
        pending.clear()
        return None

    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            detail = status_change(record)
        except (TypeError, ValueError, AttributeError):
            logger.exception("unreadable stream record skipped", extra={"sequence_number": sequence})
            continue
        if detail is None:
            continue
        pending.append((sequence, detail))
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
