"""python -m onboarding.ops.admin against moto's server (DynamoDB, SQS, EventBridge), on tables created from
template.yaml and users onboarded through the real handlers: show (masked, history by Query), check (the event
reaches a rule's target), stuck (the sparse index, with its read cost), redrive (receive, send, delete), reapply
(a stored notification verified again), erase (personal values gone, tombstone kept)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from typing import Any

import boto3
import pytest
from helpers import ROOT, Stack, json_body, valid_id_card

from htouhui import protocol
from onboarding.ops.admin import main
from onboarding.ops.erasure import PERSONAL_USER_ATTRIBUTES

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

USER = "u-admin"
MOBILE = "13812345678"
ID_CARD = valid_id_card("11010519900307123")
CARD = "6222020200112233445"


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


@pytest.fixture
def onboarded(
    stack: Stack, aws: str, htouhui_private_key: protocol.PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)  # SQS and EventBridge of the same moto server
    assert stack.register(USER, MOBILE)["statusCode"] == 201
    assert stack.open_account(USER, {"id_card": ID_CARD, "real_name": "李四"})["statusCode"] == 200
    notification = stack.signed_notification(htouhui_private_key, USER, 1, bank_card_number=CARD)
    assert stack.notify(notification)["statusCode"] == 200
    return notification


def run(stack: Stack, *arguments: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(
        ["--users-table", stack.users_table, "--notifications-table", stack.notifications_table, *arguments], out=out
    )
    return code, out.getvalue()


def test_show_masks_personal_data_and_reads_history_by_query(stack: Stack, onboarded: dict[str, str]) -> None:
    code, text = run(stack, "show", USER)
    assert code == 0
    for secret in (ID_CARD, CARD, MOBILE, onboarded["sign"]):
        assert secret not in text
    shown = json.loads(text)
    assert shown["user"]["third_party_user_id"] == USER
    assert shown["user"]["id_card"].startswith(ID_CARD[:3]) and "*" in shown["user"]["id_card"]
    (record,) = shown["history"]
    assert record["notify_no"] == onboarded["notify_no"]
    assert record["raw"]["status"] == "1" and "*" in record["raw"]["bank_card_number"]
    assert record["raw"]["sign"].endswith("chars)")
    assert run(stack, "show", "u-nobody")[0] == 1


def test_check_puts_a_check_user_status_event_a_rule_delivers(
    stack: Stack, aws: str, onboarded: dict[str, str]
) -> None:
    events, sqs = _client("events", aws), _client("sqs", aws)
    bus = "htouhui-test"
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName="checks")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="checks", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["CheckUserStatus"]}))
    events.put_targets(Rule="checks", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    code, text = run(stack, "--bus", bus, "check", USER)
    assert code == 0, text
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    event = json.loads(message["Body"])
    assert event["detail-type"] == "CheckUserStatus" and event["detail"] == {"third_party_user_id": USER}
    assert event["source"] == "htouhui.admin"


def test_stuck_lists_old_unfinished_users_with_the_read_cost(stack: Stack, onboarded: dict[str, str]) -> None:
    code, text = run(stack, "stuck", "--days", "0")
    assert code == 0
    report = json.loads(text)
    assert [user["third_party_user_id"] for user in report["users"]] == [USER]
    assert report["users"][0]["status"] == 1
    assert report["read"]["items"] >= 1 and report["read"]["pages"] >= 1 and "read_units" in report["read"]
    assert json.loads(run(stack, "stuck", "--days", "0", "--status", "2")[1])["users"] == []
    assert json.loads(run(stack, "stuck", "--days", "1")[1])["users"] == []  # updated just now


def test_redrive_moves_every_message_and_deletes_it(stack: Stack, aws: str, onboarded: dict[str, str]) -> None:
    sqs = _client("sqs", aws)
    dead, target = (sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("dead", "target"))
    bodies = [json.dumps({"n": n}) for n in range(13)]
    for body in bodies:
        sqs.send_message(QueueUrl=dead, MessageBody=body)
    code, text = run(stack, "redrive", dead, "--to-queue", target)
    assert code == 0 and "redriven 13" in text
    received: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        received.extend(m["Body"] for m in messages)
        for m in messages:
            sqs.delete_message(QueueUrl=target, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(received) == sorted(bodies)
    attributes = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["All"])["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def test_redrive_puts_dead_lettered_events_back_on_the_bus(stack: Stack, aws: str, onboarded: dict[str, str]) -> None:
    events, sqs = _client("events", aws), _client("sqs", aws)
    events.create_event_bus(Name="redrive-bus")
    delivered = sqs.create_queue(QueueName="delivered")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=delivered, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="r", EventBusName="redrive-bus", EventPattern=json.dumps({"detail-type": ["CheckUserStatus"]}))
    events.put_targets(Rule="r", EventBusName="redrive-bus", Targets=[{"Id": "q", "Arn": arn}])
    dead = sqs.create_queue(QueueName="reconcile-dlq")["QueueUrl"]
    event = {"source": "merchant.backend", "detail-type": "CheckUserStatus", "detail": {"third_party_user_id": USER}}
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps(event))  # EventBridge's dead letter: the event
    sqs.send_message(QueueUrl=dead, MessageBody=json.dumps({"requestPayload": event}))  # a Lambda destination record
    assert run(stack, "redrive", dead, "--to-bus", "redrive-bus")[0] == 0
    messages = sqs.receive_message(QueueUrl=delivered, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert [json.loads(m["Body"])["detail"] for m in messages] == [{"third_party_user_id": USER}] * 2
    assert [json.loads(m["Body"])["source"] for m in messages] == ["merchant.backend"] * 2


def test_reapply_verifies_the_stored_notification_and_restores_its_level(
    stack: Stack, onboarded: dict[str, str]
) -> None:
    key = {"third_party_user_id": {"S": USER}}
    stack.dynamodb.update_item(
        TableName=stack.users_table, Key=key, UpdateExpression="REMOVE #s", ExpressionAttributeNames={"#s": "status"}
    )
    assert json_body(stack.query(USER))["status"] is None  # e.g. a table restored from before the notification
    code, text = run(stack, "reapply", onboarded["notify_no"])
    assert code == 0 and "APPLIED" in text, text
    assert json_body(stack.query(USER))["status"] == 1
    assert len(stack.history()) == 1  # no second history record

    # a stored notification that no longer verifies (its status altered) is not applied
    stack.dynamodb.update_item(
        TableName=stack.notifications_table,
        Key={"notify_no": {"S": onboarded["notify_no"]}},
        UpdateExpression="SET #raw.#status = :three",
        ExpressionAttributeNames={"#raw": "raw", "#status": "status"},
        ExpressionAttributeValues={":three": {"S": "3"}},
    )
    code, text = run(stack, "reapply", onboarded["notify_no"])
    assert code == 1 and "does not verify" in text
    assert json_body(stack.query(USER))["status"] == 1
    assert run(stack, "reapply", "N-unknown")[0] == 1


def test_reapply_runs_as_the_runbook_runs_it_a_module_in_its_own_process(
    stack: Stack, onboarded: dict[str, str]
) -> None:
    """`python -m onboarding.ops.admin reapply` as a subprocess: the module's own entry point, not main()."""
    stack.dynamodb.update_item(
        TableName=stack.users_table,
        Key={"third_party_user_id": {"S": USER}},
        UpdateExpression="REMOVE #s",
        ExpressionAttributeNames={"#s": "status"},
    )
    tables = ["--users-table", stack.users_table, "--notifications-table", stack.notifications_table]
    done = subprocess.run(
        [sys.executable, "-m", "onboarding.ops.admin", *tables, "reapply", onboarded["notify_no"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common")},
    )
    assert done.returncode == 0 and "APPLIED" in done.stdout, done.stdout + done.stderr[-2000:]
    assert json_body(stack.query(USER))["status"] == 1


def test_erase_removes_personal_values_and_keeps_a_tombstone(stack: Stack, onboarded: dict[str, str]) -> None:
    assert run(stack, "erase", USER)[0] == 2  # --yes is required
    assert set(PERSONAL_USER_ATTRIBUTES) <= set(stack.user_item(USER))  # all there before
    code, text = run(stack, "erase", USER, "--yes")
    assert code == 0 and "1 history record(s)" in text
    item = stack.user_item(USER)
    for name in (*PERSONAL_USER_ATTRIBUTES, "next_check_at", "check_shard"):
        assert name not in item, name
    assert item["status"] == {"N": "1"} and item["htouhui_user_id"]["S"] and "erased_at" in item
    (record,) = stack.history()
    assert "raw" not in record and record["status"] == {"N": "1"} and "erased_at" in record
    everything = json.dumps([item, record])
    for secret in (ID_CARD, CARD, onboarded["sign"]):
        assert secret not in everything
    assert json.loads(run(stack, "stuck", "--days", "0")[1])["users"] == []  # no longer reconciled
    assert run(stack, "erase", USER, "--yes")[0] == 0  # twice is harmless
    assert run(stack, "erase", "u-nobody", "--yes")[0] == 1
