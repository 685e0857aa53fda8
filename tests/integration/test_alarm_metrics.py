"""Every metric of our own namespace that an alarm in template.yaml reads is one the code really emits.

The handlers run against moto and the Htouhui sandbox (tests/integration/conftest.py); the sandbox's fault controls make
Htouhui time out, drop the connection, answer 503, 9999, HTML or a bad signature, and forged notifications are
posted. What the functions print is parsed as CloudWatch embedded metric format (EMF), exactly the lines Lambda
writes to CloudWatch Logs, and each (metric name, dimensions) an alarm reads must be among them: an alarm on a
metric nobody emits (a renamed metric, another dimension) never fires.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import Stack, load_event, sqs_event, valid_id_card
from template_tools import alarm_metrics, alarms_of, deployed

from htouhui import protocol

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

Metric = tuple[str, frozenset[tuple[str, str]]]


def alarmed_metrics() -> set[Metric]:
    """(name, dimensions) of every metric in the namespace Htouhui that an alarm of the translated template reads."""
    resources, _ = deployed({})
    wanted: set[Metric] = set()
    for alarm in alarms_of(resources).values():
        for metric in alarm_metrics(alarm):
            if metric["Namespace"] == "Htouhui":
                dimensions = frozenset((d["Name"], str(d["Value"])) for d in metric.get("Dimensions") or [])
                wanted.add((metric["MetricName"], dimensions))
    return wanted


def emitted_metrics(output: str) -> set[Metric]:
    """(name, dimensions) of every metric in the EMF lines of a function's output, namespace Htouhui."""
    found: set[Metric] = set()
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document: dict[str, Any] = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != "Htouhui":
                continue
            for names in directive["Dimensions"]:
                dimensions = frozenset((name, str(document[name])) for name in names)
                for metric in directive["Metrics"]:
                    assert metric["Name"] in document  # the value sits beside the directive
                    found.add((metric["Name"], dimensions))
    return found


def _fault(stack: Stack, interface: str, **fault: Any) -> None:
    stack.control("POST", "faults", {"interface": interface, **fault})


def _clear(stack: Stack) -> None:
    for interface in ("register", "query"):
        stack.control("POST", "faults", {"interface": interface, "clear": True})


# (fault, expected result dimension); count 1: the fault hits one attempt, a retryable one is then retried
FAULTS: list[tuple[dict[str, Any], str]] = [
    ({"timeout": 2.5}, "timeout"),  # held past the client's 1 s read time-out
    ({"timeout": 0.05}, "connection"),  # held briefly, then the connection is dropped unanswered
    ({"error_rate": 1.0}, "http_5xx"),
    ({"busy": True}, "9999"),
    ({"not_json": True}, "unreadable"),
    ({"bad_signature": True}, "signature"),
]


@pytest.mark.slow
def test_every_metric_an_alarm_reads_is_emitted_under_faults(
    stack: Stack, htouhui_private_key: protocol.PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = alarmed_metrics()
    assert len(wanted) >= 15, wanted  # the alarms do read our namespace
    capsys.readouterr()

    # notifications: accepted, duplicate, rejected (a forged signature)
    assert stack.register("u-alarm", "13800001111")["statusCode"] == 201
    id_card = valid_id_card("11010519900307123")  # open-account stores it: the user can then be queried
    assert stack.open_account("u-alarm", {"id_card": id_card, "real_name": "李四"})["statusCode"] == 200
    notification = stack.signed_notification(htouhui_private_key, "u-alarm", 1)
    assert stack.notify(notification)["statusCode"] == 200
    assert stack.notify(notification)["statusCode"] == 200
    forged = {**notification, "notify_no": notification["notify_no"] + "F", "status": "3"}
    assert stack.notify(forged)["statusCode"] == 400

    # Htouhui's faults on both interfaces we call: register (a new user each) and query (?refresh=true)
    for number, (fault, _) in enumerate(FAULTS):
        _fault(stack, "register", count=1, **fault)
        stack.register(f"u-alarm-{number}", f"1380000{2000 + number}")
        _fault(stack, "query", count=1, **fault)
        stack.query("u-alarm", refresh=True)
    _clear(stack)

    # reconciliation: a CheckUserStatus for a user Htouhui cannot answer about (503 to every attempt) fails: the
    # worker reports the message as a batch item failure, so SQS delivers it again and then dead-letters it
    _fault(stack, "query", error_rate=1.0)
    event = load_event("check_user_status.json")
    event["detail"]["third_party_user_id"] = "u-alarm"
    answer = stack.invoke("reconcile_worker", sqs_event([json.dumps(event)]))
    assert answer["batchItemFailures"], answer
    _clear(stack)
    # a check Htouhui rejects (2004: it holds another id_card) is completed, and counted as a failure
    other = valid_id_card("11010519900307124")
    stack.control("POST", "users", {"third_party_user_id": "u-alarm", "status": 1, "id_card": other})
    assert stack.invoke("reconcile_worker", sqs_event([json.dumps(event)])) == {"batchItemFailures": []}
    # the dispatcher reports the oldest due check's age every run (OldestDueCheckAgeAlarm)
    assert "oldest_due_age_seconds" in stack.dispatch()

    emitted = emitted_metrics(capsys.readouterr().out)
    missing = sorted((name, sorted(dims)) for name, dims in wanted - emitted)
    assert not missing, f"alarms read metrics nobody emitted: {missing}"
    results = {dict(dims).get("result") for name, dims in emitted if name == "HtouhuiResult"}
    assert {result for _, result in FAULTS} <= results


def test_emf_parser_reads_one_directive_per_dimension_set() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {"Namespace": "Htouhui", "Dimensions": [["service"]], "Metrics": [{"Name": "A", "Unit": "Count"}]},
                    {"Namespace": "Other", "Dimensions": [["service"]], "Metrics": [{"Name": "B", "Unit": "Count"}]},
                ],
            },
            "service": "s",
            "A": [1.0],
            "B": 1.0,
        }
    )
    assert emitted_metrics("log line\n" + line + "\n") == {("A", frozenset({("service", "s")}))}
