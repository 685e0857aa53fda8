"""The event-driven functions: the reconciliation dispatcher and worker (schedule, SQS) and publish_status (stream).

Reconciliation runs against the sandbox over HTTP, moto DynamoDB and a moto SQS queue (the dispatcher sends,
the test hands the queued messages to the worker as the event source mapping would); publish_status reads the
real stream of the users table (moto's DynamoDB Streams) and publishes to a moto EventBridge bus whose rule
forwards to an SQS queue, where the test reads what was published.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from helpers import Stack, invoke, json_body, load_event, load_function, sqs_event, valid_id_card

# Powertools warns when an invocation counted nothing: normal here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ID_CARD = valid_id_card("31010419870605002")
FIRST_STEP = 2.05  # the harness's ladder starts at 1 s, plus up to 20 % jitter, in whole seconds: moved, not slept


@pytest.fixture(autouse=True)
def fresh_queue() -> Any:
    module = load_function("reconcile_dispatch")
    module.set_work_queue(None)  # built again from this test's RECONCILE_QUEUE_URL
    yield
    module.set_work_queue(None)


def _opened_on_htouhui_only(stack: Stack, user: str, mobile: str, status: int, id_card: str = ID_CARD) -> None:
    """Registered and open-account requested here; Htouhui has the user at `status`, its notification lost."""
    assert stack.register(user, mobile)["statusCode"] == 201
    assert stack.open_account(user, {"id_card": id_card, "real_name": "李四"})["statusCode"] == 200
    stack.control("POST", "users", {"third_party_user_id": user, "status": status, "id_card": id_card})


def _queries(stack: Stack) -> int:
    return sum(1 for call in stack.calls if call.interface == "query")


def test_dispatcher_and_worker_bring_a_user_with_a_dropped_notification_to_the_true_status(stack: Stack) -> None:
    user = "u-dropped"
    assert stack.register(user, "13811110001")["statusCode"] == 201
    assert stack.register("u-no-form", "13811110009")["statusCode"] == 201  # never asks for a form
    page = json_body(stack.open_account(user, {"id_card": ID_CARD, "real_name": "李四"}))
    stack.control("POST", "faults", {"interface": "notify", "drop": 1})
    assert stack.walk_pages(page).status_code == 302  # finished on Htouhui's pages; the browser never returns
    [delivery] = stack.wait_deliveries(user, lambda items: bool(items))
    assert delivery["state"] == "dropped"
    assert json_body(stack.query(user))["stage"] == "OPEN_REQUESTED"
    assert "next_check_at" in stack.user_item(user) and "next_check_at" not in stack.user_item("u-no-form")

    stack.clock.advance(FIRST_STEP)
    run = stack.dispatch()
    assert 0 <= run.pop("oldest_due_age_seconds") <= 1  # due at most a second ago (the ladder's 1 s + jitter)
    assert run == {"result": "dispatched", "found": 1, "dispatched": 1, "taken": 0}
    assert stack.work_queued() == [{"batchItemFailures": []}]
    view = json_body(stack.query(user))
    assert (
        view["status"] == 3
        and view["stage"] == "COMPLETED"
        and view["bank_card_number"].endswith(stack.user_item(user)["bank_card_number"]["S"][-4:])
    )
    item = stack.user_item(user)
    assert not {"next_check_at", "check_shard", "check_lease"} & set(item)  # finished: off the schedule
    assert stack.dispatch()["found"] == 0 and _queries(stack) == 1


def test_worker_counts_failures_and_goes_on(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    _opened_on_htouhui_only(stack, "u-rec-a", "13811110002", 1)
    _opened_on_htouhui_only(stack, "u-rec-b", "13811110003", 2)
    # u-rec-c asked for a page with one id_card; Htouhui opened the account with another: 2004, an answer
    assert stack.register("u-rec-c", "13811110004")["statusCode"] == 201
    other_card = {"id_card": valid_id_card("31010419870605003"), "real_name": "李四"}
    assert stack.open_account("u-rec-c", other_card)["statusCode"] == 200
    stack.control("POST", "users", {"third_party_user_id": "u-rec-c", "status": 1, "id_card": ID_CARD})
    stack.clock.advance(FIRST_STEP)
    assert stack.dispatch()["dispatched"] == 3
    capsys.readouterr()
    assert stack.work_queued() == [{"batchItemFailures": []}]
    assert '"ReconcileFailures"' in capsys.readouterr().out
    assert [json_body(stack.query(user))["status"] for user in ("u-rec-a", "u-rec-b", "u-rec-c")] == [1, 2, None]
    steps = [stack.user_item(user)["check_step"]["N"] for user in ("u-rec-a", "u-rec-b", "u-rec-c")]
    assert steps == ["1", "1", "1"]  # every completed check moves the ladder, whatever the answer


def test_check_user_status_message(stack: Stack) -> None:
    event = load_event("check_user_status.json")
    user = event["detail"]["third_party_user_id"]
    body = json.dumps(event)
    assert stack.invoke("reconcile_worker", sqs_event([body])) == {"batchItemFailures": []}  # unknown: dropped
    _opened_on_htouhui_only(stack, user, "13811110006", 2)
    assert stack.invoke("reconcile_worker", sqs_event([body])) == {"batchItemFailures": []}
    assert json_body(stack.query(user))["stage"] == "PASSWORD_SET" and _queries(stack) == 1
    assert stack.user_item(user)["check_step"] == {"N": "0"}  # back at the start of the ladder


def test_a_failed_check_user_status_is_delivered_again_and_a_failed_due_check_backs_off(stack: Stack) -> None:
    _opened_on_htouhui_only(stack, "u-check-busy", "13811110007", 1)
    stack.control("POST", "faults", {"interface": "query", "busy": True})
    check = {**load_event("check_user_status.json"), "detail": {"third_party_user_id": "u-check-busy"}}
    event = sqs_event([json.dumps(check), "not json", json.dumps({**check, "detail": {}})])
    failed = event["Records"][0]["messageId"]
    assert stack.invoke("reconcile_worker", event) == {"batchItemFailures": [{"itemIdentifier": failed}]}

    stack.clock.advance(FIRST_STEP)
    assert stack.dispatch()["dispatched"] == 1
    assert stack.work_queued() == [{"batchItemFailures": []}]  # the schedule retries it, with backoff
    item = stack.user_item("u-check-busy")
    assert item["check_attempts"] == {"N": "1"} and item["check_step"] == {"N": "0"}
    assert int(item["next_check_at"]["N"]) >= stack.clock.epoch() + 25
    assert _queries(stack) == 2  # one attempt per check: the schedule's backoff is the retry


def test_sample_events_reach_the_functions(stack: Stack) -> None:
    assert stack.invoke("reconcile_dispatch", load_event("reconcile_dispatch_schedule.json"))["result"] == "dispatched"
    answer = stack.invoke("reconcile_worker", load_event("reconcile_worker_sqs.json"))
    assert answer == {"batchItemFailures": []}  # u-1001 is unknown here: both messages are dropped


# --- publish_status --------------------------------------------------------------------------------------


class RecordingEvents:
    """An EventBridge client double: records entries, fails the entries or calls it is told to."""

    def __init__(self, fail_entry: int | None = None, raise_on_call: int | None = None) -> None:
        self.entries: list[dict[str, Any]] = []
        self.calls = 0
        self.fail_entry = fail_entry
        self.raise_on_call = raise_on_call

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        if self.raise_on_call == self.calls:
            raise RuntimeError("EventBridge unavailable")
        results = []
        for entry in Entries:
            index = len(self.entries)
            if index == self.fail_entry:
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
                self.fail_entry = None  # fails once
            else:
                self.entries.append(entry)
                results.append({"EventId": f"id-{index}"})
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> Any:
    module = load_function("publish_status")
    monkeypatch.setenv("EVENT_BUS_NAME", "htouhui-test")
    yield module
    module.set_events_client(None)


def _publish(module: Any, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = invoke("publish_status", event)
    return result


def test_sample_stream_batch_publishes_each_status_change(publisher: Any) -> None:
    events = RecordingEvents()
    publisher.set_events_client(events)
    assert _publish(publisher, load_event("publish_status_stream.json")) == {"batchItemFailures": []}
    details = [json.loads(entry["Detail"]) for entry in events.entries]
    assert [(d["third_party_user_id"], d["old_status"], d["new_status"]) for d in details] == [
        ("u-1001", None, 1),
        ("u-1001", 1, 3),
        ("u-1002", None, 0),
    ]
    assert [d["ready_for_debt_matching"] for d in details] == [False, True, False]
    assert {entry["Source"] for entry in events.entries} == {"htouhui.onboarding"}
    assert {entry["DetailType"] for entry in events.entries} == {"UserStatusChanged"}
    assert {entry["EventBusName"] for entry in events.entries} == {"htouhui-test"}


def test_a_failed_entry_is_reported_and_later_ones_are_not_published(publisher: Any) -> None:
    batch = load_event("publish_status_stream.json")
    events = RecordingEvents(fail_entry=1)
    publisher.set_events_client(events)
    second = batch["Records"][1]["dynamodb"]["SequenceNumber"]
    assert _publish(publisher, batch) == {"batchItemFailures": [{"itemIdentifier": second}]}
    # Lambda retries from the failed record: published once each in the end, nothing lost
    retry = {"Records": batch["Records"][1:]}
    assert _publish(publisher, retry) == {"batchItemFailures": []}
    statuses = [json.loads(entry["Detail"])["new_status"] for entry in events.entries]
    assert statuses.count(1) == 1 and statuses.count(3) == 1 and statuses.count(0) >= 1


def test_put_events_raising_reports_the_first_record(publisher: Any) -> None:
    batch = load_event("publish_status_stream.json")
    publisher.set_events_client(RecordingEvents(raise_on_call=1))
    first = batch["Records"][0]["dynamodb"]["SequenceNumber"]
    assert _publish(publisher, batch) == {"batchItemFailures": [{"itemIdentifier": first}]}


def test_real_stream_to_real_bus(
    stack: Stack, publisher: Any, aws: str, htouhui_private_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The users table's own stream (moto) -> publish_status -> EventBridge (moto) -> rule -> SQS."""
    region = {"region_name": "us-east-1", "endpoint_url": aws}
    events = boto3.client("events", **region)
    sqs = boto3.client("sqs", **region)
    bus = f"bus-{stack.users_table}"
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=f"q-{stack.users_table}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="status", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["UserStatusChanged"]}))
    events.put_targets(Rule="status", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    user = "u-stream"
    assert stack.register(user, "13811110008")["statusCode"] == 201
    assert stack.open_account(user, {"id_card": ID_CARD, "real_name": "李四"})["statusCode"] == 200
    for status in (1, 3, 2):  # the 2 arrives late: no change, no event
        assert stack.notify(stack.signed_notification(htouhui_private_key, user, status))["statusCode"] == 200

    streams = boto3.client("dynamodbstreams", **region)
    arn = stack.dynamodb.describe_table(TableName=stack.users_table)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator)["Records"])
    assert records, "the users table has a stream"
    for record in records:  # as the Lambda event source hands them over: JSON-serialisable
        record["dynamodb"].pop("ApproximateCreationDateTime", None)

    publisher.set_events_client(events)
    monkeypatch.setenv("EVENT_BUS_NAME", bus)
    assert _publish(publisher, json.loads(json.dumps({"Records": records}, default=str))) == {"batchItemFailures": []}

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    details = sorted(
        (json.loads(message["Body"])["detail"] for message in messages), key=lambda detail: detail["new_status"]
    )
    assert [(d["old_status"], d["new_status"]) for d in details] == [(None, 1), (1, 3)]
    assert details[-1]["ready_for_debt_matching"] is True
    assert details[-1]["htouhui_user_id"] == stack.user_item(user)["htouhui_user_id"]["S"]
