"""The data_rights function against moto's server (DynamoDB, S3, EventBridge, SQS): an `ExportUser` event writes the
user's unmasked copy to the export bucket under the data key and names it in a `DataRightsOutcome`, received the way
a merchant receives it (a rule on the bus with an SQS target); `EraseUser` erases; both are idempotent; an unknown
user or an unreadable request is answered and changes nothing; a bucket that fails publishes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from helpers import Stack, dump, load_event, valid_id_card

from htouhui import protocol
from onboarding.rights import EXPORT_PREFIX

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

USER = "u-0001"  # the sample events' user
MOBILE = "13812345678"
ID_CARD = valid_id_card("11010519900307123")
CARD = "6222020200112233445"
BUS = "htouhui-test"  # the stack fixture's EVENT_BUS_NAME
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/data-key"


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


class Outcomes:
    """A merchant's consumer: a rule on the bus for DataRightsOutcome, its target an SQS queue."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.sqs = _client("sqs", endpoint)
        events = _client("events", endpoint)
        if BUS not in [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]:
            events.create_event_bus(Name=BUS)
        self.queue = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": ["htouhui.onboarding"], "detail-type": ["DataRightsOutcome"]}
        events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def rights(stack: Stack, aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Outcomes, str]]:
    bucket = f"exports-{stack.users_table}"
    s3 = _client("s3", aws)
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    monkeypatch.setenv("EXPORT_BUCKET", bucket)
    monkeypatch.setenv("EXPORT_KMS_KEY", KMS_KEY)
    yield s3, Outcomes(aws, f"outcomes-{stack.users_table}"), bucket


@pytest.fixture
def onboarded(stack: Stack, htouhui_private_key: protocol.PrivateKey) -> None:
    assert stack.register(USER, MOBILE)["statusCode"] == 201
    assert stack.open_account(USER, {"id_card": ID_CARD, "real_name": "李四"})["statusCode"] == 200
    notification = stack.signed_notification(htouhui_private_key, USER, 1, bank_card_number=CARD)
    assert stack.notify(notification)["statusCode"] == 200


def request(name: str, **detail: Any) -> dict[str, Any]:
    event = load_event(name)
    event["detail"].update(detail)
    return event


def test_export_writes_the_users_copy_under_the_data_key_and_names_it_in_the_outcome(
    stack: Stack, rights: tuple[Any, Outcomes, str], onboarded: None
) -> None:
    s3, outcomes, bucket = rights
    answer = stack.invoke("data_rights", load_event("data_rights_export.json"))
    assert answer["outcome"] == "exported"
    (event,) = outcomes.received()
    assert event["detail"] == answer and event["source"] == "htouhui.onboarding"
    detail = event["detail"]
    assert detail["request_id"] == "cs-ticket-20261206-0001" and detail["third_party_user_id"] == USER
    key = detail["export"]["key"]
    assert detail["export"]["bucket"] == bucket and key == f"{EXPORT_PREFIX}cs-ticket-20261206-0001.json"
    for secret in (ID_CARD, CARD, MOBILE):
        assert secret not in json.dumps(event)  # the event names the object, never holds the data
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["ServerSideEncryption"] == "aws:kms" and stored["SSEKMSKeyId"] == KMS_KEY
    copy = json.loads(stored["Body"].read())
    assert copy["user"]["id_card"] == ID_CARD and copy["user"]["bank_card_number"] == CARD  # unmasked: theirs
    (record,) = copy["history"]
    assert record["raw"]["bank_card_number"] == CARD

    # the same request again (a retried delivery): the same object, not rewritten, the same outcome
    before = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    stack.clock.advance(60)
    again = stack.invoke("data_rights", load_event("data_rights_export.json"))
    assert again["export"] == answer["export"] and again["outcome"] == "exported"
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == before
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["exported_at"] == copy["exported_at"]


def test_erase_erases_and_erasing_again_keeps_the_first_date(
    stack: Stack, rights: tuple[Any, Outcomes, str], onboarded: None
) -> None:
    _, outcomes, _ = rights
    first = stack.invoke("data_rights", load_event("data_rights_erase.json"))
    assert first["outcome"] == "erased" and first["history_records"] == 1 and first["erased_at"]
    item = stack.user_item(USER)
    assert not {"id_card", "bank_card_number", "mobile_digest"} & set(item)
    assert "raw" not in stack.history()[0]
    stack.clock.advance(3600)
    second = stack.invoke("data_rights", load_event("data_rights_erase.json"))
    assert second["erased_at"] == first["erased_at"] and second["outcome"] == "erased"
    assert [event["detail"]["outcome"] for event in outcomes.received()] == ["erased", "erased"]


@pytest.mark.parametrize("name", ["data_rights_export.json", "data_rights_erase.json"])
def test_an_unknown_user_is_answered_and_nothing_changes(
    stack: Stack, rights: tuple[Any, Outcomes, str], onboarded: None, name: str
) -> None:
    s3, outcomes, bucket = rights
    before = dump(stack)
    answer = stack.invoke("data_rights", request(name, third_party_user_id="u-stranger"))
    assert answer["outcome"] == "unknown_user" and answer["reason"] == "no such user: nothing done"
    assert dump(stack) == before
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert [event["detail"]["outcome"] for event in outcomes.received()] == ["unknown_user"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"third_party_user_id": "u 0001; drop"}, "detail.third_party_user_id must be 1-64 letters"),
        ({"third_party_user_id": None}, "detail.third_party_user_id must be 1-64 letters"),
        ({"request_id": "../../etc"}, "detail.request_id must be 1-128 letters"),
    ],
)
def test_an_unreadable_request_is_answered_with_its_reason_and_nothing_changes(
    stack: Stack, rights: tuple[Any, Outcomes, str], onboarded: None, change: dict[str, Any], reason: str
) -> None:
    _, outcomes, _ = rights
    before = dump(stack)
    answer = stack.invoke("data_rights", request("data_rights_erase.json", **change))
    assert answer["outcome"] == "invalid_request" and answer["reason"].startswith(reason)
    assert dump(stack) == before
    (event,) = outcomes.received()
    assert event["detail"]["outcome"] == "invalid_request"


def test_a_failing_bucket_fails_the_invocation_and_publishes_nothing(
    stack: Stack, rights: tuple[Any, Outcomes, str], onboarded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, outcomes, _ = rights
    monkeypatch.setenv("EXPORT_BUCKET", "no-such-bucket")
    before = dump(stack)
    with pytest.raises(Exception, match=r"NoSuchBucket|Not Found|404"):
        stack.invoke("data_rights", load_event("data_rights_export.json"))
    assert dump(stack) == before and outcomes.received() == []  # Lambda retries; AsyncFailureQueue after that


def test_status_3_keeps_the_id_card_and_the_bank_card_as_docs_privacy_decides(
    stack: Stack, htouhui_private_key: protocol.PrivateKey, onboarded: None
) -> None:
    """docs/privacy.md: both stay until erasure, because API.md's `?refresh=true` asks Htouhui at any status and
    the query interface needs the id_card; the view shows both masked."""
    completed = stack.signed_notification(htouhui_private_key, USER, 3, bank_card_number=CARD)
    assert stack.notify(completed)["statusCode"] == 200
    item = stack.user_item(USER)
    assert int(item["status"]["N"]) == 3 and item["id_card"]["S"] == ID_CARD and item["bank_card_number"]["S"] == CARD
    asked = len(stack.calls)
    view = json.loads(stack.query(USER, refresh=True)["body"])
    assert len(stack.calls) > asked  # the refresh did ask Htouhui, with the kept id_card
    assert view["status"] == 3 and view["id_card"] != ID_CARD and view["bank_card_number"] == "****" + CARD[-4:]
