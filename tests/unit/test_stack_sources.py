"""The local event sources: stream records as Lambda hands them over, filters, batch retries, bus and schedule
events."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from typing import Any

from helpers import ROOT

sys.path.insert(0, str(ROOT / "local"))

from stack import aws, patterns
from stack.lambdas import InvocationFailure
from stack.template import StreamSource, load

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/UsersTable/stream/2026-11-28T00:00:00.000"


def raw_record(sequence: str, name: str = "MODIFY", status: str | None = "1") -> dict[str, Any]:
    image: dict[str, Any] = {"third_party_user_id": {"S": "u1"}}
    if status is not None:
        image["status"] = {"N": status}
    return {
        "eventID": f"id-{sequence}",
        "eventName": name,
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 11, 28, 12, 0, 0, 500000, tzinfo=UTC),
            "Keys": {"third_party_user_id": {"S": "u1"}},
            "NewImage": image,
            "SequenceNumber": sequence,
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_a_stream_record_as_lambda_delivers_it() -> None:
    record = aws.stream_record(raw_record("100"), ARN)
    assert record["eventSourceARN"] == ARN
    assert record["eventVersion"] == "1.1" and record["eventSource"] == "aws:dynamodb"
    assert record["dynamodb"]["ApproximateCreationDateTime"] == int(datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp())
    assert record["dynamodb"]["NewImage"]["status"] == {"N": "1"}


def test_the_templates_stream_filter() -> None:
    (source,) = load(ROOT / "template.yaml").streams
    assert len(source.filters) == 3  # a status, and the funnel's registration and form (metrics only)

    def passes(record: dict[str, Any]) -> bool:
        return any(patterns.matches(pattern, aws.stream_record(record, ARN)) for pattern in source.filters)

    def with_image(record: dict[str, Any], **attributes: Any) -> dict[str, Any]:
        record["dynamodb"]["NewImage"].update(attributes)
        return record

    assert passes(raw_record("1", "MODIFY", "2"))
    assert passes(raw_record("1", "INSERT", "0"))
    assert not passes(raw_record("1", "MODIFY", None))  # a registration lease, no status yet: nothing to count
    assert not passes(with_image(raw_record("1", "INSERT", None), registration={"S": "CLAIMED"}))
    assert passes(with_image(raw_record("1", "MODIFY", None), registration={"S": "DONE"}))
    assert passes(with_image(raw_record("1", "MODIFY", None), open_requested={"BOOL": True}))
    assert not passes(raw_record("1", "REMOVE", "3"))


def test_pattern_operators() -> None:
    event = {"source": "htouhui.onboarding", "detail": {"n": 5, "tags": ["a", "b"], "s": "Hello"}}
    assert patterns.matches({"source": [{"prefix": "htouhui."}]}, event)
    assert patterns.matches({"detail": {"n": [{"numeric": [">", 1, "<=", 5]}]}}, event)
    assert not patterns.matches({"detail": {"n": [{"numeric": [">", 5]}]}}, event)
    assert patterns.matches({"detail": {"tags": ["b"]}}, event)
    assert patterns.matches({"detail": {"s": [{"equals-ignore-case": "hello"}]}}, event)
    assert patterns.matches({"detail": {"missing": [{"exists": False}]}}, event)
    assert not patterns.matches({"detail": {"s": [{"anything-but": ["Hello"]}]}}, event)
    assert patterns.matches({"$or": [{"source": ["x"]}, {"detail": {"n": [5]}}]}, event)
    assert not patterns.matches({"detail": {"n": ["5"]}}, event)  # types matter


class _Instant(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


class _Pool:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.batches: list[list[str]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        self.batches.append([record["dynamodb"]["SequenceNumber"] for record in event["Records"]])
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer


def poller(pool: _Pool, *, batch_size: int = 2, retries: int = 10, report: bool = False) -> aws.StreamPoller:
    source = StreamSource(
        "PublishStatusFunction", "UsersStream", "UsersTable", ARN, batch_size, "LATEST", retries, report, ()
    )
    result = aws.StreamPoller("http://127.0.0.1:9", source, ARN, pool, _Instant())  # type: ignore[arg-type]
    result.pending["shard"] = [aws.stream_record(raw_record(str(n)), ARN) for n in range(1, 6)]
    return result


FAILURE = InvocationFailure("error", "RuntimeError", "boom")


def test_batches_in_order_and_a_failed_batch_is_retried() -> None:
    pool = _Pool([None, FAILURE, FAILURE, None, None])
    source = poller(pool)
    source._deliver("shard")
    assert pool.batches == [["1", "2"], ["3", "4"], ["3", "4"], ["3", "4"], ["5"]]
    assert source.delivered == 5 and source.pending["shard"] == []


def test_a_batch_is_dropped_after_the_last_retry() -> None:
    pool = _Pool([FAILURE, FAILURE, None, None])
    source = poller(pool, retries=1)
    source._deliver("shard")
    assert pool.batches == [["1", "2"], ["1", "2"], ["3", "4"], ["5"]]
    assert source.delivered == 3


def test_report_batch_item_failures_resumes_at_the_first_failed_record() -> None:
    pool = _Pool([{"batchItemFailures": [{"itemIdentifier": "2"}]}, {"batchItemFailures": []}, None, None])
    source = poller(pool, report=True)
    source._deliver("shard")
    assert pool.batches == [["1", "2"], ["2", "3"], ["4", "5"]]
    assert source.delivered == 5


def test_bus_and_schedule_events_have_the_full_envelope() -> None:
    event = aws.eventbridge_event({"id": "e1", "detail-type": "CheckUserStatus", "source": "m", "detail": {"a": 1}})
    assert event["account"] == "123456789012" and event["region"] == "us-east-1" and event["version"] == "0"
    assert event["detail"] == {"a": 1} and event["resources"] == []
    scheduled = aws.scheduled_event("ScheduleV2", "reconcile", datetime(2026, 11, 28, tzinfo=UTC))
    assert scheduled["source"] == "aws.scheduler" and scheduled["detail-type"] == "Scheduled Event"
    assert scheduled["resources"] == ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/reconcile"]
    assert scheduled["time"] == "2026-11-28T00:00:00Z"
    assert aws.scheduled_event("Schedule", "r")["source"] == "aws.events"


class _Empty:
    """A DynamoDB Streams client double with one shard and no records."""

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "it"}

    def get_records(self, **_: Any) -> dict[str, Any]:
        return {"Records": []}


class _CountedWaits(threading.Event):
    """Records each wait's timeout (never sleeps); sets itself after `limit` waits."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.waits = limit, []  # type: ignore[var-annotated]

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


def test_an_empty_stream_is_polled_less_and_less_often_up_to_a_cap() -> None:
    """Idle `make run`: every empty read doubles the wait (0.25 s, Lambda's rate, up to 2 s); records bring
    it back to 0.25 s."""
    source = StreamSource("PublishStatusFunction", "UsersStream", "UsersTable", ARN, 2, "TRIM_HORIZON", 1, False, ())
    stop = _CountedWaits(limit=6)
    streams = aws.StreamPoller("http://127.0.0.1:9", source, ARN, _Pool([]), stop)  # type: ignore[arg-type]
    streams.streams = _Empty()
    streams.run()
    assert stop.waits == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert aws.STREAM_POLL_SECONDS == (0.25, 2.0)
    assert streams.next_wait(2.0, found=3) == 0.25 and streams.next_wait(0.25, found=0) == 0.5
