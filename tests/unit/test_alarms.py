"""Alarms that reach someone: template.yaml translated with each samconfig environment's overrides (offline, with
aws-sam-translator), its conditions evaluated with those values, and every alarm checked for an action that lands
on a topic that exists in that deployment. The per-route 5xx alarms cover every route, the 429 metric filters
match the access log line the API writes, and every queue has a depth alarm.

That the metrics of our own namespace an alarm reads are emitted by the code is tests/integration/test_alarm_metrics.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
from helpers import ROOT
from template_tools import ENVIRONMENTS, ROUTES, alarm_metrics, alarms_of, deployed, load_template, samconfig_overrides

SERVICE = "htouhui-onboarding"


# ------------------------------------------------------------------------------------------------ actions


def test_samconfig_sets_an_alarm_destination_in_every_environment() -> None:
    template = load_template()
    pattern = template["Parameters"]["AlarmEmail"]["AllowedPattern"]
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    for environment in ENVIRONMENTS:
        overrides = config[environment]["deploy"]["parameters"]["parameter_overrides"]
        pairs = dict(item.split("=", 1) for item in overrides)
        assert "AlarmEmail" in pairs or "AlarmTopicArn" in pairs, environment
        if pairs.get("AlarmEmail", "").startswith("SET-"):  # a placeholder cannot be deployed by mistake
            assert not re.fullmatch(pattern, pairs["AlarmEmail"])
    assert re.fullmatch(pattern, "ops@example.com")
    assert re.fullmatch(pattern, "")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_alarm_notifies_the_stacks_topic_with_the_address_subscribed(environment: str) -> None:
    overrides = samconfig_overrides(environment)
    resources, resolver = deployed(overrides)
    alarms = alarms_of(resources)
    assert len(alarms) >= 25
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    (subscription,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert resolver.resolve(subscription["TopicArn"]) == "AlarmTopic"
    assert subscription["Protocol"] == "email"
    assert resolver.resolve(subscription["Endpoint"]) == overrides["AlarmEmail"]
    for name, alarm in alarms.items():
        assert resolver.resolve(alarm.get("AlarmActions")) == ["AlarmTopic"], name
        assert resolver.resolve(alarm.get("OKActions")) == ["AlarmTopic"], name
        assert alarm.get("ActionsEnabled", True) is True, name


def test_an_existing_topic_replaces_the_stacks_own() -> None:
    arn = "arn:aws:sns:ap-east-1:123456789012:ops-pager"
    resources, resolver = deployed({"AlarmTopicArn": arn})
    assert "AlarmTopic" not in resources
    assert not [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]  # no AlarmEmail given
    for name, alarm in alarms_of(resources).items():
        assert resolver.resolve(alarm["AlarmActions"]) == [arn], name


def test_without_an_address_the_topic_still_exists_for_other_subscribers() -> None:
    resources, resolver = deployed({})
    assert "AlarmTopic" in resources
    assert not [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    for alarm in alarms_of(resources).values():
        assert resolver.resolve(alarm["AlarmActions"]) == ["AlarmTopic"]
    assert resolver.condition("HasAlarmEmail") is False


# ------------------------------------------------------------------------------------------------ coverage


@pytest.fixture(scope="module")
def default_resources() -> dict[str, Any]:
    return deployed({})[0]


def test_5xx_alarm_on_every_route_with_detailed_metrics(default_resources: dict[str, Any]) -> None:
    stage = next(r["Properties"] for r in default_resources.values() if r["Type"] == "AWS::ApiGateway" + "V2::Stage")
    assert stage["StageName"] == "$default"
    assert stage["DefaultRouteSettings"]["DetailedMetricsEnabled"] is True
    for settings in (stage.get("RouteSettings") or {}).values():  # a route's own settings keep detailed metrics
        assert settings["DetailedMetricsEnabled"] is True
    covered = set()
    for alarm in alarms_of(default_resources).values():
        if alarm.get("Namespace") == "AWS/ApiGateway" and alarm["MetricName"] == "5xx":
            dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
            assert dimensions["ApiId"] == {"Ref": "HttpApi"}
            assert dimensions["Stage"] == stage["StageName"]
            covered.add(dimensions["Route"])
    assert covered == {f"{method.upper()} {path}" for method, path in ROUTES}


def test_every_queue_stream_and_table_is_watched(default_resources: dict[str, Any]) -> None:
    read: list[tuple[str, str, str]] = []
    for alarm in alarms_of(default_resources).values():
        for metric in alarm_metrics(alarm):
            for dimension in metric.get("Dimensions") or []:
                value = dimension["Value"]
                if isinstance(value, dict):  # the resource the metric is about: Ref X or GetAtt X.Y
                    target = value.get("Ref") or value["Fn::GetAtt"][0]
                    read.append((metric["Namespace"], metric["MetricName"], str(target)))
            if metric["Namespace"] == "Htouhui":
                read.append((metric["Namespace"], metric["MetricName"], ""))
    queues = {name for name, r in default_resources.items() if r["Type"] == "AWS::SQS::Queue"}
    work_queues = {"ReconcileQueue", "CheckUserStatusQueue"}  # watched by the age of their oldest message
    assert {t for ns, m, t in read if ns == "AWS/SQS" and m == "ApproximateNumberOfMessagesVisible"} == (
        queues - work_queues
    )
    assert {t for ns, m, t in read if ns == "AWS/SQS" and m == "ApproximateAgeOfOldestMessage"} == work_queues
    tables = {name for name, r in default_resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
        assert {t for ns, m, t in read if ns == "AWS/DynamoDB" and m == metric} == tables
    assert ("AWS/Lambda", "IteratorAge", "PublishStatusFunction") in read
    ours = {m for ns, m, _ in read if ns == "Htouhui"}
    assert {"NotificationsRejected", "HtouhuiResult", "ReconcileFailures"} <= ours


def test_metric_math_alarms_return_one_series(default_resources: dict[str, Any]) -> None:
    for name, alarm in alarms_of(default_resources).items():
        if "Metrics" in alarm:
            assert len([q for q in alarm["Metrics"] if q.get("ReturnData")]) == 1, name
            assert len(alarm["Metrics"]) <= 10, name  # CloudWatch's limit of metrics per alarm
            ids = {q["Id"] for q in alarm["Metrics"]}
            (expression,) = [q["Expression"] for q in alarm["Metrics"] if "Expression" in q]
            words = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", expression)) - {"IF", "FILL"}
            assert words and words <= ids, (name, words - ids)  # the expression reads only its own metrics
        else:
            assert alarm["Namespace"] and alarm["MetricName"], name


# ------------------------------------------------------------------------------------------------ 429 filters


def _access_log_line(format_text: str, context: dict[str, str]) -> dict[str, Any]:
    line = re.sub(r"\$context\.([A-Za-z.]+)", lambda m: context.get(m.group(1), "-"), format_text)
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def _filter_matches(pattern: str, event: dict[str, Any]) -> bool:
    """CloudWatch Logs JSON filter patterns of the shape this template uses: `$.field = "value"` joined by &&."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    terms = [term.strip().strip("()").strip() for term in body[1:-1].split("&&")]
    for term in terms:
        match = re.fullmatch(r'\$\.(\w+)\s*=\s*"([^"]*)"', term)
        assert match, f"unsupported term {term!r}"
        if str(event.get(match.group(1))) != match.group(2):
            return False
    return True


def test_429_metric_filters_match_the_access_log_lines(default_resources: dict[str, Any]) -> None:
    stage = next(r["Properties"] for r in default_resources.values() if r["Type"] == "AWS::ApiGateway" + "V2::Stage")
    log_format = stage["AccessLogSettings"]["Format"]
    filters = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
        for f in default_resources.values()
        if f["Type"] == "AWS::Logs::MetricFilter"
    }
    assert set(filters) == {"Throttled", "NotifyThrottled"}
    for properties in filters.values():
        assert properties["LogGroupName"] == {"Ref": "ApiAccessLogs"}

    def line(status: str, route: str) -> dict[str, Any]:
        return _access_log_line(log_format, {"status": status, "routeKey": route, "requestId": "r1"})

    notify_429, users_429, notify_200 = (
        line("429", "POST /htouhui/notify"),
        line("429", "POST /users"),
        line("200", "POST /htouhui/notify"),
    )
    assert _filter_matches(filters["Throttled"]["FilterPattern"], notify_429)
    assert _filter_matches(filters["Throttled"]["FilterPattern"], users_429)
    assert not _filter_matches(filters["Throttled"]["FilterPattern"], notify_200)
    assert _filter_matches(filters["NotifyThrottled"]["FilterPattern"], notify_429)
    assert not _filter_matches(filters["NotifyThrottled"]["FilterPattern"], users_429)
    read = {(alarm.get("Namespace"), alarm.get("MetricName")) for alarm in alarms_of(default_resources).values()}
    for name, properties in filters.items():
        assert (properties["MetricTransformations"][0]["MetricNamespace"], name) in read


def test_our_namespace_and_service_dimension_match_what_the_functions_emit(default_resources: dict[str, Any]) -> None:
    template = load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE
    for alarm in alarms_of(default_resources).values():
        for metric in alarm_metrics(alarm):
            if metric["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]:
                dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
                assert dimensions["service"] == SERVICE
