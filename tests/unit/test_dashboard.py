"""The dashboard (`OnboardingDashboard` in template.yaml) shows what exists: every metric of our namespace on it is
emitted by the code under that name and those dimensions, and every AWS metric names a resource of the template.

The funnel metrics are emitted by running the stream consumer (onboarding.status_events.publish) over the records
one user's onboarding writes, and capturing its EMF output. The other metrics of our namespace: each must be read
by an alarm (tests/integration/test_alarm_metrics.py runs the handlers and proves those are emitted) or be one of
the observability helpers' metrics, emitted here by running that helper, whose name the functions use.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from helpers import ROOT
from template_tools import ROUTES, alarm_metrics, alarms_of, deployed, load_template

from htouhui.client import CallRecord
from onboarding import observability, status_events

Metric = tuple[str, frozenset[str]]  # (name, dimension names)
NAMESPACE = "Htouhui"
SEARCH = re.compile(r"SEARCH\('\{(?P<namespace>[^,}]+),(?P<dimensions>[^}]*)\} MetricName=\"(?P<name>[^\"]+)\"'")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.([A-Za-z]+))?\}")


def dashboard() -> tuple[str, dict[str, Any]]:
    (name, resource), *others = [
        (name, r) for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    assert not others
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    return name, json.loads(PLACEHOLDER.sub(lambda m: "@" + m.group(0)[2:-1], body))


def metric_rows() -> list[tuple[str, list[Any]]]:
    _, body = dashboard()
    rows = []
    for widget in body["widgets"]:
        if widget["type"] == "metric":
            rows.extend((widget["properties"]["title"], row) for row in widget["properties"]["metrics"])
    return rows


def shown() -> list[tuple[str, str, dict[str, str], bool]]:
    """(namespace, metric, dimensions, by search) of every metric on the dashboard; a search's values are '*'."""
    found = []
    for _, row in metric_rows():
        if isinstance(row[0], dict):
            match = SEARCH.search(row[0]["expression"])
            assert match, row
            names = [name.strip() for name in match["dimensions"].split(",")]
            found.append((match["namespace"], match["name"], dict.fromkeys(names, "*"), True))
            continue
        plain = [item for item in row if not isinstance(item, dict)]
        namespace, metric, *pairs = plain
        found.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True)), False))
    return found


def emf_metrics(output: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    found = set()
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != NAMESPACE:
                continue
            for names in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    found.add((metric["Name"], frozenset((name, str(document[name])) for name in names)))
    return found


def image(**values: Any) -> dict[str, Any]:
    typed = {bool: "BOOL", int: "N", str: "S"}
    return {
        k: {typed[type(v)]: str(v) if isinstance(v, int) and not isinstance(v, bool) else v} for k, v in values.items()
    }


def stream_of_one_onboarding() -> list[dict[str, Any]]:
    """The users table's records for one user: claimed, registered, a form, status 1, then 3 (10 minutes later)."""
    base = {"third_party_user_id": "u-1"}
    steps = [
        ("INSERT", None, {**base, "registration": "CLAIMED"}),
        ("MODIFY", {**base, "registration": "CLAIMED"}, {**base, "registration": "DONE"}),
        (
            "MODIFY",
            {**base, "registration": "DONE"},
            {**base, "registration": "DONE", "open_requested": True, "open_requested_at": "2026-01-01T00:00:00.000Z"},
        ),
    ]
    form = {**base, "registration": "DONE", "open_requested": True, "open_requested_at": "2026-01-01T00:00:00.000Z"}
    steps.append(("MODIFY", form, {**form, "status": 1, "updated_at": "2026-01-01T00:02:00.000Z"}))
    one = {**form, "status": 1, "updated_at": "2026-01-01T00:02:00.000Z"}
    steps.append(("MODIFY", one, {**form, "status": 3, "updated_at": "2026-01-01T00:10:00.000Z"}))
    records = []
    for number, (event, old, new) in enumerate(steps):
        change: dict[str, Any] = {"NewImage": image(**new), "SequenceNumber": str(100 + number)}
        if old is not None:
            change["OldImage"] = image(**old)
        records.append({"eventName": event, "dynamodb": change})
    return records


def accepted(**_: Any) -> dict[str, Any]:
    return {"Entries": [{"EventId": "e"}] * len(_["Entries"]), "FailedEntryCount": 0}


@pytest.fixture(scope="module")
def funnel_output() -> str:
    import contextlib
    import io

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        assert status_events.publish(stream_of_one_onboarding(), accepted, "default") is None
        observability.metrics.flush_metrics()
    return sink.getvalue()


def test_the_stream_emits_the_funnel_once_per_stored_step(funnel_output: str) -> None:
    emitted = emf_metrics(funnel_output)
    service = ("service", "htouhui-onboarding")
    for level in ("1", "2", "3"):  # 1 -> 3 crosses 2: a user at 3 has passed every level
        assert ("FunnelStatusReached", frozenset({service, ("status", level)})) in emitted
    document = next(json.loads(line) for line in funnel_output.splitlines() if '"FunnelRegistered"' in line)
    assert document["FunnelRegistered"] in (1.0, [1.0])  # once: the claim is not a registration
    assert document["FunnelFormsHandedOut"] in (1.0, [1.0])
    assert document["FunnelFormToCompletedSeconds"] in (600.0, [600.0])


def test_a_batch_that_fails_counts_only_what_it_published(capsys: pytest.CaptureFixture[str]) -> None:
    records = stream_of_one_onboarding()

    def refused(**request: Any) -> dict[str, Any]:
        return {"Entries": [{"ErrorCode": "InternalFailure"}] * len(request["Entries"]), "FailedEntryCount": 1}

    capsys.readouterr()
    assert status_events.publish(records, refused, "default") == "103"  # the first status change: retried
    observability.metrics.flush_metrics()
    output = capsys.readouterr().out
    names = {name for name, _ in emf_metrics(output)}
    assert {"FunnelRegistered", "FunnelFormsHandedOut"} <= names
    assert "FunnelStatusReached" not in names and "FunnelFormToCompletedSeconds" not in names


def helper_metrics(capsys: pytest.CaptureFixture[str]) -> set[Metric]:
    """What the observability helpers emit, run once each, as (name, dimension names)."""
    capsys.readouterr()
    observability.record_attempt(CallRecord("query", 1, 0.2, "0000"))
    observability.count_rejection(observability.NOTIFICATIONS_REJECTED, "bad_signature")
    for name in (
        observability.NOTIFICATIONS_ACCEPTED,
        observability.NOTIFICATIONS_DUPLICATE,
        observability.NOTIFICATIONS_UNHANDLED,
        observability.RECONCILE_DISPATCHED,
        observability.USERS_RECONCILED,
        observability.RECONCILE_FAILURES,
    ):
        observability.count(name)
    observability.metrics.flush_metrics()
    return {(name, frozenset(dict(dims))) for name, dims in emf_metrics(capsys.readouterr().out)}


def used_by_the_code() -> set[str]:
    """The metric names (observability's constants) that the functions and the layer, but observability, use."""
    constants = {
        name: value
        for name, value in vars(observability).items()
        if name.isupper() and isinstance(value, str) and value[:1].isupper()
    }
    used = set()
    files = [*ROOT.glob("functions/*/app.py"), *(ROOT / "layers/common/onboarding").rglob("*.py")]
    for path in files:
        if path.name == "observability.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name | ast.alias) and (getattr(node, "id", None) or getattr(node, "name", None)):
                name = getattr(node, "id", None) or node.name  # type: ignore[union-attr]
                if name in constants:
                    used.add(constants[name])
    if "record_attempt" in (ROOT / "layers/common/onboarding/runtime.py").read_text(encoding="utf-8"):
        used |= {observability.HTOUHUI_LATENCY, observability.HTOUHUI_RESULT}
    return used


def test_every_metric_of_our_namespace_on_the_dashboard_is_emitted(
    funnel_output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    resources, _ = deployed({})
    alarmed: set[Metric] = set()
    for alarm in alarms_of(resources).values():
        for metric in alarm_metrics(alarm):
            if metric["Namespace"] == NAMESPACE:
                alarmed.add((metric["MetricName"], frozenset(d["Name"] for d in metric.get("Dimensions") or [])))
    streamed = {(name, frozenset(dict(dims))) for name, dims in emf_metrics(funnel_output)}
    run = helper_metrics(capsys)
    used = used_by_the_code()
    ours = [(metric, dims) for namespace, metric, dims, _ in shown() if namespace == NAMESPACE]
    assert len(ours) >= 14, ours
    missing = []
    for metric, dims in ours:
        key = (metric, frozenset(dims))
        if key in streamed or key in alarmed or (key in run and metric in used):
            continue
        missing.append(key)
    assert not missing, f"dashboard metrics nobody emits under that name and those dimensions: {missing}"
    for metric, dims in ours:  # the values shown are the values emitted
        if dims.get("service", "*") != "*":
            assert dims["service"] == observability.SERVICE
        if metric == "FunnelStatusReached":
            assert dims["status"] in {"1", "2", "3"}


def test_every_aws_metric_names_a_resource_of_the_template() -> None:
    resources = load_template()["Resources"]
    indexes = {
        index["IndexName"]: name
        for name, r in resources.items()
        if r["Type"] == "AWS::DynamoDB::Table"
        for index in r["Properties"].get("GlobalSecondaryIndexes", [])
    }
    routes = {f"{method.upper()} {path}" for method, path in ROUTES}
    kinds = {"QueueName": "AWS::SQS::Queue", "TableName": "AWS::DynamoDB::Table", "ApiId": "AWS::Serverless::HttpApi"}
    seen: set[str] = set()
    for namespace, metric, dims, _ in shown():
        if not namespace.startswith("AWS/"):
            continue
        for name, value in dims.items():
            if name in kinds:
                logical = value.lstrip("@").split(".")[0]
                assert resources.get(logical, {}).get("Type") == kinds[name], (metric, name, value)
                seen.add(logical)
            elif name == "GlobalSecondaryIndexName":
                assert indexes.get(value) == dims["TableName"].lstrip("@"), (metric, value)
                seen.add(value)
            elif name == "Route":
                assert value in routes, value
                seen.add(value)
            elif name == "Stage":
                assert value == "$default"
            else:
                pytest.fail(f"a dimension this test does not know: {name}")
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    # everything the brief's widgets promise: every queue, both tables and their indexes, every route
    assert queues | {"UsersTable", "NotificationsTable", *indexes, *routes} <= seen


def test_the_runbook_names_every_widget() -> None:
    _, body = dashboard()
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    titles = [w["properties"]["title"] for w in body["widgets"] if w["type"] == "metric"]
    missing = [title for title in titles if f"“{title}”" not in runbook]
    assert not missing, f"widgets docs/runbook.md does not name: {missing}"
