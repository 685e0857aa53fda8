"""Alarms watch what exists: every dimension of every alarm in template.yaml names a resource the template
declares (a table, its index, a queue, a function, the API and one of its routes), and every function, queue
and index has the alarms docs/runbook.md promises (errors and throttles of each function, the depth of each
dead-letter or failure queue, the oldest message of each work queue, read and write throttles of each table
and each of its indexes: CloudWatch dimensions an index's throttles by TableName and GlobalSecondaryIndexName).
"""

from __future__ import annotations

from typing import Any

from template_tools import ROUTES, alarm_metrics, alarms_of, load_template

WORK_QUEUES = {"ReconcileQueue", "CheckUserStatusQueue"}


def target(value: Any) -> str:
    """The logical id a dimension value refers to (Ref X, GetAtt X.Y), or the literal."""
    if isinstance(value, dict):
        return str(value.get("Ref") or value["Fn::GetAtt"][0])
    return str(value)


def watched() -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions as (name, logical id or literal)) of every metric an alarm reads."""
    found = set()
    for alarm in alarms_of(load_template()["Resources"]).values():
        for metric in alarm_metrics(alarm):
            dims = tuple((d["Name"], target(d["Value"])) for d in metric.get("Dimensions") or [])
            found.add((metric["Namespace"], metric["MetricName"], dims))
    return found


def test_every_alarm_dimension_names_a_declared_resource() -> None:
    resources = load_template()["Resources"]
    indexes = {
        (table, index["IndexName"])
        for table, r in resources.items()
        if r["Type"] == "AWS::DynamoDB::Table"
        for index in r["Properties"].get("GlobalSecondaryIndexes", [])
    }
    kinds = {
        "TableName": "AWS::DynamoDB::Table",
        "QueueName": "AWS::SQS::Queue",
        "FunctionName": "AWS::Serverless::Function",
        "ApiId": "AWS::Serverless::HttpApi",
    }
    routes = {f"{method.upper()} {path}" for method, path in ROUTES}
    wrong = []
    for namespace, metric, dims in watched():
        named = dict(dims)
        for name, value in dims:
            if name in kinds:
                if resources.get(value, {}).get("Type") != kinds[name]:
                    wrong.append((metric, name, value))
            elif name == "GlobalSecondaryIndexName":
                if (named.get("TableName"), value) not in indexes:
                    wrong.append((metric, name, value))
            elif name == "Route":
                if value not in routes:
                    wrong.append((metric, name, value))
            elif name == "Stage":
                if value != "$default":
                    wrong.append((metric, name, value))
            elif namespace == "Htouhui":
                continue  # our own dimensions: tests/integration/test_alarm_metrics.py runs the code that emits them
            else:
                wrong.append((metric, name, value))
    assert not wrong, f"alarms watch what the template does not declare: {sorted(wrong)}"


def test_every_function_queue_table_and_index_has_its_promised_alarms() -> None:
    resources = load_template()["Resources"]
    read = watched()
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    for function in functions:
        for metric in ("Errors", "Throttles"):
            assert ("AWS/Lambda", metric, (("FunctionName", function),)) in read, (function, metric)
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    for queue in queues:
        metric = "ApproximateAgeOfOldestMessage" if queue in WORK_QUEUES else "ApproximateNumberOfMessagesVisible"
        assert ("AWS/SQS", metric, (("QueueName", queue),)) in read, (queue, metric)
    for table, r in resources.items():
        if r["Type"] != "AWS::DynamoDB::Table":
            continue
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            assert ("AWS/DynamoDB", metric, (("TableName", table),)) in read, (table, metric)
            for index in r["Properties"].get("GlobalSecondaryIndexes", []):
                dims = (("TableName", table), ("GlobalSecondaryIndexName", index["IndexName"]))
                assert ("AWS/DynamoDB", metric, dims) in read, (table, index["IndexName"], metric)
