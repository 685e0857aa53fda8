"""`UserStatusChanged` events, derived from the users table's stream (never a second write beside it).

A stream record (NEW_AND_OLD_IMAGES) yields an event only when `status` changed: a registration, an
id_card kept or a bank card filled in changes the item but not the level, and publishes nothing.
The detail carries no personal data: ids and levels only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from onboarding import dynamo
from onboarding.models import COMPLETED_STATUS
from onboarding.observability import (
    FUNNEL_FORM_TO_COMPLETED,
    FUNNEL_FORMS,
    FUNNEL_REGISTERED,
    FUNNEL_STATUS,
    STATUS_EVENTS_PUBLISHED,
    count,
    count_by,
    logger,
    seconds,
)

SOURCE: Final = "htouhui.onboarding"
DETAIL_TYPE: Final = "UserStatusChanged"
# The detail's contract: events/schemas/UserStatusChanged.schema.json. A new optional field keeps the version;
# a removed or re-typed one raises it.
DETAIL_VERSION: Final = 1
_EVENT_IDS: Final = uuid.UUID("6f1c2a7e-3b5d-4c8e-9a0f-2d4b6e8c1a3f")  # the namespace of our event ids


def event_id(third_party_user_id: str, new_status: int) -> str:
    """The same user reaching the same status always has the same id: consumers deduplicate on it, and a
    republished event (admin republish) or a stream retry carries it again."""
    return str(uuid.uuid5(_EVENT_IDS, f"{third_party_user_id}\n{new_status}"))


def _text(image: Mapping[str, Any], name: str) -> str | None:
    return dynamo.text(image, name)


def _status(image: Mapping[str, Any] | None) -> int | None:
    return dynamo.number(image or {}, "status")


def status_change(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The UserStatusChanged detail of one DynamoDB stream record, or None when the status did not change.

    Raises ValueError for a record that claims a change but cannot be read (no user id, a non-numeric status).
    """
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    change = record.get("dynamodb") or {}
    new_image = change.get("NewImage") or {}
    try:
        old_status, new_status = _status(change.get("OldImage")), _status(new_image)
    except (TypeError, ValueError):
        raise ValueError("stream record with an unreadable status") from None
    if new_status is None or new_status == old_status:
        return None
    third_party_user_id = _text(new_image, "third_party_user_id")
    if not third_party_user_id:
        raise ValueError("stream record without third_party_user_id")
    return detail_of(third_party_user_id, _text(new_image, "htouhui_user_id"), old_status, new_status)


def detail_of(
    third_party_user_id: str, htouhui_user_id: str | None, old_status: int | None, new_status: int
) -> dict[str, Any]:
    """A UserStatusChanged detail (the stream's, and admin republish's from the table)."""
    return {
        "version": DETAIL_VERSION,
        "event_id": event_id(third_party_user_id, new_status),
        "third_party_user_id": third_party_user_id,
        "htouhui_user_id": htouhui_user_id,
        "old_status": old_status,
        "new_status": new_status,
        "ready_for_debt_matching": new_status == COMPLETED_STATUS,
    }


def put_events_entry(record: Mapping[str, Any], event_bus_name: str) -> dict[str, Any] | None:
    """The `events:PutEvents` entry for one stream record, or None when there is nothing to publish."""
    detail = status_change(record)
    if detail is None:
        return None
    entry = entry_of(detail, event_bus_name)
    created = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    if isinstance(created, int | float):
        entry["Time"] = datetime.fromtimestamp(created, UTC)
    return entry


def entry_of(detail: Mapping[str, Any], event_bus_name: str) -> dict[str, Any]:
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail, separators=(",", ":")),
        "EventBusName": event_bus_name,
    }


# --- the onboarding funnel, from the same records (stored truth, not requests) ------------------------

FunnelStep = tuple[str, str | None, float]  # (metric, its status dimension or None, value)


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def funnel_steps(record: Mapping[str, Any]) -> list[FunnelStep]:
    """What one stream record moved in the funnel: a registration completed, a first form handed out, each
    status level reached (a jump from none to 3 reaches 1, 2 and 3), and the seconds from form to status 3."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return []
    change = record.get("dynamodb") or {}
    old, new = change.get("OldImage") or {}, change.get("NewImage") or {}
    steps: list[FunnelStep] = []
    if _text(new, "registration") == "DONE" and _text(old, "registration") != "DONE":
        steps.append((FUNNEL_REGISTERED, None, 1))
    if (new.get("open_requested") or {}).get("BOOL") is True and (old.get("open_requested") or {}).get(
        "BOOL"
    ) is not True:
        steps.append((FUNNEL_FORMS, None, 1))
    try:
        old_status, new_status = _status(old) or 0, _status(new) or 0
    except (TypeError, ValueError):
        return steps
    for level in range(old_status + 1, min(new_status, COMPLETED_STATUS) + 1):
        steps.append((FUNNEL_STATUS, str(level), 1))
    if new_status >= COMPLETED_STATUS > old_status:
        form = _moment(_text(new, "open_requested_at"))
        done = _moment(_text(new, "updated_at"))
        if form is not None and done is not None:
            steps.append((FUNNEL_FORM_TO_COMPLETED, None, max(0.0, (done - form).total_seconds())))
    return steps


def emit_funnel(steps: Iterable[FunnelStep]) -> None:
    for name, status, value in steps:
        if name == FUNNEL_FORM_TO_COMPLETED:
            seconds(name, value)
        elif status is not None:
            count_by(name, "status", status, value)
        else:
            count(name, value)


# --- publishing a stream batch (the publish_status function) -----------------------------------------

PUT_EVENTS_MAX: Final = 10

_events = dynamo.LazyClient("events")


def events_client() -> Any:
    """boto3's EventBridge client, created on first use (honours AWS_ENDPOINT_URL_EVENTS)."""
    return _events()


def set_events_client(client: Any | None) -> None:
    """Inject a client (tests); None drops it so the next call creates one."""
    _events.inject(client)


def _ids(entry: dict[str, Any]) -> dict[str, Any]:
    detail = json.loads(entry["Detail"])
    return {name: detail[name] for name in ("third_party_user_id", "old_status", "new_status")}


def publish(records: Iterable[dict[str, Any]], put_events: Callable[..., Any], bus: str) -> str | None:
    """Publish the changes in order; the sequence number of the first record not published, or None.

    The funnel metrics of the records before that one are emitted (the rest come again with Lambda's retry)."""
    handled: list[tuple[str, list[FunnelStep]]] = []

    def seen(batch: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        for record in batch:
            handled.append((str((record.get("dynamodb") or {}).get("SequenceNumber", "")), funnel_steps(record)))
            yield record

    failed = _publish(seen(records), put_events, bus)
    for sequence, steps in handled:
        if failed is not None and sequence == failed:
            break
        emit_funnel(steps)
    return failed


def _publish(records: Iterable[dict[str, Any]], put_events: Callable[..., Any], bus: str) -> str | None:
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


def batch_answer(failed: str | None) -> dict[str, Any]:
    """The stream batch's answer (ReportBatchItemFailures): Lambda retries from the first record not published."""
    return {"batchItemFailures": [] if failed is None else [{"itemIdentifier": failed}]}
