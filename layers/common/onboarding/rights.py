"""The users' data rights, asked for by the merchant's own systems: `ExportUser` (PIPL art. 45, access and copy)
and `EraseUser` (art. 47) events on the stack's bus, each answered by a `DataRightsOutcome` event.

The export's content never travels in an event: it is written as one S3 object under the stack's data key in a
bucket whose objects expire after a day, and the outcome names the object. Both requests are idempotent: the
same `request_id` (or, without one, the same EventBridge event id, as a retried delivery keeps it) names the
same object, and erasing an erased user again keeps its first `erased_at`. An unknown user, or a request that
cannot be read, gets an outcome that says so, and nothing is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from onboarding.ops.erasure import erase_user
from onboarding.store import UserStore, iso_utc

EXPORT_USER: Final = "ExportUser"
ERASE_USER: Final = "EraseUser"
REQUESTS: Final = (EXPORT_USER, ERASE_USER)
OUTCOME: Final = "DataRightsOutcome"
OUTCOME_VERSION: Final = 1
EXPORT_PREFIX: Final = "exports/"
EXPORT_LIFETIME: Final = timedelta(days=1)  # the bucket's lifecycle rule expires the object (template.yaml)
REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
USER_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # API.md's third_party_user_id


class Refused(ValueError):
    """A request that cannot be read; `reason` is the outcome's explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RightsRequest:
    action: str  # EXPORT_USER or ERASE_USER
    third_party_user_id: str
    request_id: str


def parse(event: Mapping[str, Any]) -> RightsRequest:
    """An EventBridge event -> the request, or Refused with what is wrong."""
    action = event.get("detail-type")
    if action not in REQUESTS:
        raise Refused(f"detail-type must be one of {', '.join(REQUESTS)}, got {action!r}")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise Refused("detail must be an object")
    user = detail.get("third_party_user_id")
    if not isinstance(user, str) or not USER_ID.match(user):
        raise Refused("detail.third_party_user_id must be 1-64 letters, digits, '_' or '-'")
    request_id = detail.get("request_id", event.get("id"))
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise Refused("detail.request_id must be 1-128 letters, digits or '._:-' (or absent: the event id is used)")
    return RightsRequest(str(action), user, request_id)


def export_document(store: UserStore, third_party_user_id: str, now: datetime) -> dict[str, Any] | None:
    """The user's stored item and notification history, unmasked: the user's own copy; None for an unknown user."""
    user = store.stored(third_party_user_id)
    if user is None:
        return None
    return {
        "third_party_user_id": third_party_user_id,
        "exported_at": iso_utc(now),
        "user": user,
        "history": store.history_of(third_party_user_id),
    }


def export_text(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n"


class ExportSink(Protocol):
    """Where an export is written (S3 under the data key, in the stack)."""

    def exists(self, key: str) -> bool: ...

    def write(self, key: str, text: str) -> None: ...


@dataclass
class S3Exports:
    """ExportSink on an S3 bucket, each object encrypted with the given KMS key."""

    client: Callable[[], Any]
    bucket: str
    kms_key: str

    def exists(self, key: str) -> bool:
        try:
            self.client().head_object(Bucket=self.bucket, Key=key)
        except Exception as failure:  # botocore's ClientError; imported lazily by boto3 itself
            if _status(failure) == 404:
                return False
            raise
        return True

    def write(self, key: str, text: str) -> None:
        self.client().put_object(
            Bucket=self.bucket,
            Key=key,
            Body=text.encode("utf-8"),
            ContentType="application/json; charset=utf-8",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.kms_key,
        )


def _status(failure: Exception) -> int | None:
    response = getattr(failure, "response", None) or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


@dataclass
class DataRights:
    store: UserStore
    exports: ExportSink
    bucket: str
    clock: Callable[[], datetime]

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The outcome's detail for one request event. Failures of the store or the bucket propagate (retried)."""
        try:
            request = parse(event)
        except Refused as refused:
            detail = event.get("detail")
            user = detail.get("third_party_user_id") if isinstance(detail, Mapping) else None
            return self._outcome(event.get("detail-type"), user, event.get("id"), "invalid_request", refused.reason)
        if request.action == EXPORT_USER:
            return self.export(request)
        return self.erase(request)

    def export(self, request: RightsRequest) -> dict[str, Any]:
        key = f"{EXPORT_PREFIX}{request.request_id}.json"
        if not self.exports.exists(key):
            document = export_document(self.store, request.third_party_user_id, self.clock())
            if document is None:
                return self._unknown(request)
            self.exports.write(key, export_text(document))
        elif self.store.stored(request.third_party_user_id) is None:
            return self._unknown(request)
        outcome = self._outcome(request.action, request.third_party_user_id, request.request_id, "exported")
        outcome["export"] = {
            "bucket": self.bucket,
            "key": key,
            "expires_after": f"{int(EXPORT_LIFETIME.total_seconds() // 3600)}h",
        }
        return outcome

    def erase(self, request: RightsRequest) -> dict[str, Any]:
        """Erasing again clears whatever came back since (a later notification) and keeps the first date."""
        report = erase_user(self.store, request.third_party_user_id, self.clock())
        if not report.user_found and not report.history_records:
            return self._unknown(request)
        outcome = self._outcome(request.action, request.third_party_user_id, request.request_id, "erased")
        after = self.store.stored(request.third_party_user_id) or {}
        outcome["erased_at"] = after.get("erased_at")
        outcome["history_records"] = report.history_records
        return outcome

    def _unknown(self, request: RightsRequest) -> dict[str, Any]:
        user, request_id = request.third_party_user_id, request.request_id
        return self._outcome(request.action, user, request_id, "unknown_user", "no such user: nothing done")

    def _outcome(
        self, action: Any, user: Any, request_id: Any, outcome: str, reason: str | None = None
    ) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "version": OUTCOME_VERSION,
            "request": action if isinstance(action, str) else None,
            "request_id": request_id if isinstance(request_id, str) else None,
            "third_party_user_id": user if isinstance(user, str) else None,
            "outcome": outcome,
            "at": iso_utc(self.clock()),
        }
        if reason is not None:
            detail["reason"] = reason
        return detail


def publish_outcome(put_events: Callable[..., Any], bus: str, detail: Mapping[str, Any]) -> None:
    """Put the DataRightsOutcome event; raise when EventBridge did not take it (the request is then retried, and
    answering it again is harmless)."""
    from onboarding.status_events import SOURCE

    answer = put_events(
        Entries=[
            {
                "Source": SOURCE,
                "DetailType": OUTCOME,
                "Detail": json.dumps(detail, separators=(",", ":")),
                "EventBusName": bus,
            }
        ]
    )
    entries = answer.get("Entries") or [{}]
    if answer.get("FailedEntryCount") or entries[0].get("ErrorCode") or not entries[0].get("EventId"):
        raise RuntimeError(f"{OUTCOME} not published: {entries[0].get('ErrorCode') or 'no event id'}")
