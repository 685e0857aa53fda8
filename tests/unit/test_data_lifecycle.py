"""Data lifecycle and recovery in template.yaml: the daily AWS Backup plan of the users table (optional cross-region
copy), the notification-history TTL (off by default, never under 3 days, the same rule in the template and in
onboarding.retention), the CheckUserStatus rule's optional source list, and the history record that keeps a
notification as received (all fields and sign) and its expiry, written by the store on the template's tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from stack.aws import create_template_tables
from stack.template import NO_VALUE
from template_tools import deployed, load_template

from onboarding import retention
from onboarding.store import ApplyOutcome, StatusUpdate, UserStore

COPY_VAULT = "arn:aws:backup:ap-southeast-1:123456789012:backup-vault:htouhui-copy"


def test_users_table_is_backed_up_daily_with_an_optional_copy() -> None:
    resources, resolver = deployed({})
    selection = resources["BackupSelection"]["Properties"]["BackupSelection"]
    assert selection["Resources"] == [{"Fn::GetAtt": ["UsersTable", "Arn"]}]
    (rule,) = resources["BackupPlan"]["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert rule["ScheduleExpression"].startswith("cron(")
    assert rule["Lifecycle"]["DeleteAfterDays"] == {"Ref": "BackupRetentionDays"}
    assert resolver.resolve(rule["CopyActions"]) is NO_VALUE  # no copy unless a vault is given
    assert resources["BackupVault"]["DeletionPolicy"] == "Retain"

    resources, resolver = deployed({"BackupCopyVaultArn": COPY_VAULT})
    (rule,) = resources["BackupPlan"]["Properties"]["BackupPlan"]["BackupPlanRule"]
    (copy,) = resolver.resolve(rule["CopyActions"])
    assert copy["DestinationBackupVaultArn"] == COPY_VAULT
    assert re.fullmatch(load_template()["Parameters"]["BackupCopyVaultArn"]["AllowedPattern"], COPY_VAULT)


@pytest.mark.parametrize(("text", "days"), [("0", 0), ("", retention.DEFAULT_DAYS), ("3", 3), ("30", 30), ("365", 365)])
def test_history_retention_accepts_off_or_three_days_and_more(text: str, days: int) -> None:
    assert retention.parse_days(text) == days
    pattern = load_template()["Parameters"]["NotificationHistoryDays"]["AllowedPattern"]
    if text:
        assert re.fullmatch(pattern, text)


@pytest.mark.parametrize("text", ["1", "2", "-1", "3.5", "abc", "03x"])
def test_history_retention_refuses_under_three_days_in_the_template_and_the_code(text: str) -> None:
    with pytest.raises(retention.RetentionError):
        retention.parse_days(text)
    assert not re.fullmatch(load_template()["Parameters"]["NotificationHistoryDays"]["AllowedPattern"], text)


def test_history_ttl_is_finite_by_default_and_off_only_when_asked() -> None:
    template = load_template()
    assert template["Parameters"]["NotificationHistoryDays"]["Default"] == str(retention.DEFAULT_DAYS) == "1095"
    resources, resolver = deployed({})
    ttl = resolver.resolve(resources["NotificationsTable"]["Properties"]["TimeToLiveSpecification"])
    assert ttl["Enabled"] is True
    assert template["Globals"]["Function"]["Environment"]["Variables"][retention.ENVIRONMENT_VARIABLE] == {
        "Ref": "NotificationHistoryDays"
    }
    for days, enabled in (("0", False), ("7", True)):
        resources, resolver = deployed({"NotificationHistoryDays": days})
        ttl = resolver.resolve(resources["NotificationsTable"]["Properties"]["TimeToLiveSpecification"])
        assert ttl == {"AttributeName": retention.TTL_ATTRIBUTE, "Enabled": enabled}


def test_check_user_status_rule_any_source_or_the_listed_ones() -> None:
    def pattern(overrides: dict[str, str]) -> Any:
        resources, resolver = deployed(overrides)
        return resolver.resolve(resources["CheckUserStatusRule"]["Properties"]["EventPattern"])

    assert pattern({}) == {"detail-type": ["CheckUserStatus"]}
    resources, resolver = deployed({"CheckUserStatusSources": "merchant.backend,merchant.crm"})
    rule = resources["CheckUserStatusRule"]["Properties"]
    assert resolver.condition("HasCheckSources")
    assert rule["EventPattern"]["Fn::If"][1] == {
        "detail-type": ["CheckUserStatus"],
        "source": {"Ref": "CheckUserStatusSources"},
    }


@pytest.fixture
def tables(in_process_aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_template_tables(client, {"UsersTable": "users", "NotificationsTable": "notifications"})
    return client


def test_history_keeps_the_notification_as_received_and_expires_when_configured(tables: Any) -> None:
    now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    fields = {"notify_no": "N1", "status": "1", "third_party_user_id": "u-1", "sign": "c2lnbg==", "partner_id": "P1"}
    for days, notify_no in ((0, "N1"), (7, "N2")):
        store = UserStore("users", "notifications", dynamodb=tables, history_days=days)
        if days == 0:
            store.claim_registration("u-1", "d" * 64, now)
            store.complete_registration("u-1", "H1", now)
        update = StatusUpdate(
            "u-1", "H1", 1 + days // 7, "notify", now, notify_no=notify_no, raw={**fields, "notify_no": notify_no}
        )
        assert store.apply_status(update) is ApplyOutcome.APPLIED
        item = tables.get_item(TableName="notifications", Key={"notify_no": {"S": notify_no}})["Item"]
        assert {name: value["S"] for name, value in item["raw"]["M"].items()} == {**fields, "notify_no": notify_no}
        if days:
            assert int(item[retention.TTL_ATTRIBUTE]["N"]) == int(now.timestamp()) + 7 * 86_400
        else:
            assert retention.TTL_ATTRIBUTE not in item
    by_user = tables.query(
        TableName="notifications",
        IndexName="by-user",
        KeyConditionExpression="third_party_user_id = :u",
        ExpressionAttributeValues={":u": {"S": "u-1"}},
    )["Items"]
    assert sorted(item["notify_no"]["S"] for item in by_user) == ["N1", "N2"]


def test_data_rights_rule_takes_any_source_but_the_stacks_own_or_only_the_listed_ones() -> None:
    def pattern(overrides: dict[str, str]) -> Any:
        resources, resolver = deployed(overrides)
        return resolver.resolve(resources["DataRightsFunctionDataRightsRequests"]["Properties"]["EventPattern"])

    assert pattern({}) == {
        "detail-type": ["ExportUser", "EraseUser"],
        "source": [{"anything-but": "htouhui.onboarding"}],
    }
    listed = pattern({"DataRightsSources": "merchant.customer-service"})
    assert listed == {"detail-type": ["ExportUser", "EraseUser"], "source": ["merchant.customer-service"]}


def test_status_events_reach_a_consumer_bus_and_an_archive_only_when_asked() -> None:
    resources, _ = deployed({})
    assert not {"StatusEventsForwardRule", "StatusEventsForwardRole", "StatusEventsArchive"} & set(resources)
    consumer = "arn:aws-cn:events:cn-north-1:210987654321:event-bus/merchant-onboarding"
    resources, resolver = deployed({"ConsumerBusArn": consumer, "StatusEventsArchiveDays": "30"})
    rule = resources["StatusEventsForwardRule"]["Properties"]
    assert rule["EventPattern"] == {"source": ["htouhui.onboarding"], "detail-type": ["UserStatusChanged"]}
    (target,) = rule["Targets"]
    assert resolver.resolve(target["Arn"]) == consumer
    (policy,) = resources["StatusEventsForwardRole"]["Properties"]["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "events:PutEvents" and resolver.resolve(statement["Resource"]) == consumer
    archive = resources["StatusEventsArchive"]["Properties"]
    assert archive["EventPattern"] == {"source": ["htouhui.onboarding"]}
    assert str(resolver.resolve(archive["RetentionDays"])) == "30"
    pattern = load_template()["Parameters"]["ConsumerBusArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, consumer) and re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "arn:aws:sqs:us-east-1:123456789012:queue")
