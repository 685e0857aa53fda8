"""Unlucky: Htouhui failing in every way the sandbox can fail, DynamoDB throttling, the reconciler while
Htouhui is down. Through the handlers, against moto DynamoDB and the sandbox over HTTP.

Each failure must give API.md's error, write nothing (a full dump of both tables compared), and a later
retry must succeed; a storage failure during a notification is a 500 and the redelivery succeeds.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import Stack, dump, json_body, load_event, sqs_event, valid_id_card

from onboarding import runtime

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ID_CARD = valid_id_card("44030119900101001")

# (id, sandbox fault, HTTP status, API code, htouhui_code)
FAULTS: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    ("timeout", {"timeout": 1}, 504, "upstream_timeout", None),
    ("http-5xx", {"error_rate": 1.0}, 503, "upstream_busy", None),
    ("busy-9999", {"busy": True}, 503, "upstream_busy", "9999"),
    ("bad-signature", {"bad_signature": True}, 502, "upstream_error", None),
    ("unsigned", {"unsigned": True}, 502, "upstream_error", None),
    ("not-json", {"not_json": True}, 502, "upstream_error", None),
]


FAULT_CASES = pytest.mark.parametrize(
    ("fault", "status", "code", "htouhui_code"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again on leaving: nothing listens there


def _error(answer: dict[str, Any], status: int, code: str, htouhui_code: str | None) -> None:
    assert answer["statusCode"] == status, answer
    error = json_body(answer)["error"]
    assert error["code"] == code and error["request_id"], error
    assert error.get("htouhui_code") == htouhui_code, error


@pytest.fixture
def fast(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("HTOUHUI_READ_TIMEOUT", "0.3")
    monkeypatch.setenv("HTOUHUI_CONNECT_TIMEOUT", "0.3")
    runtime.reset()
    return stack


@pytest.mark.parametrize(
    ("fault", "status", "code", "htouhui_code"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
def test_register_fault_writes_nothing_then_a_retry_succeeds(
    fast: Stack, fault: dict[str, Any], status: int, code: str, htouhui_code: str | None
) -> None:
    before = dump(fast)
    fast.control("POST", "faults", {"interface": "register", **fault})
    _error(fast.register("u-fault", "13812348888", password="Pw-123456"), status, code, htouhui_code)
    assert dump(fast) == before, "a failed register left something behind"
    fast.control("POST", "faults", {"interface": "register", "clear": True})
    answer = fast.register("u-fault", "13812348888", password="Pw-123456")
    assert answer["statusCode"] == 201, answer
    assert fast.register("u-fault", "13812348888")["statusCode"] == 200  # and it converged


@pytest.mark.parametrize(
    ("fault", "status", "code", "htouhui_code"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
def test_query_fault_writes_nothing_then_a_retry_succeeds(
    fast: Stack, fault: dict[str, Any], status: int, code: str, htouhui_code: str | None
) -> None:
    assert fast.register("u-qfault", "13812348889")["statusCode"] == 201
    assert fast.open_account("u-qfault", {"id_card": ID_CARD, "real_name": "王五"})["statusCode"] == 200
    fast.control("POST", "users", {"third_party_user_id": "u-qfault", "status": 2, "id_card": ID_CARD})
    before = dump(fast)
    fast.control("POST", "faults", {"interface": "query", **fault})
    _error(fast.query("u-qfault", refresh=True), status, code, htouhui_code)
    assert dump(fast) == before
    fast.control("POST", "faults", {"interface": "query", "clear": True})
    view = json_body(fast.query("u-qfault", refresh=True))
    assert view["status"] == 2 and view["stage"] == "PASSWORD_SET"


def test_htouhui_unreachable_is_503_upstream_unreachable_and_writes_nothing(
    fast: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = dump(fast)
    monkeypatch.setenv("HTOUHUI_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    runtime.reset()
    _error(fast.register("u-down", "13812348887"), 503, "upstream_unreachable", None)
    assert dump(fast) == before
    monkeypatch.setenv("HTOUHUI_BASE_URL", fast.sandbox.url)
    runtime.reset()
    assert fast.register("u-down", "13812348887")["statusCode"] == 201


def test_register_lost_answer_then_retry_gets_the_same_htouhui_user_id(fast: Stack) -> None:
    """Htouhui registers the user but its answer comes too late for us: a retry converges on the same id."""
    fast.control("POST", "faults", {"interface": "register", "latency_ms": 600, "count": 2})
    _error(fast.register("u-late", "13812348886"), 504, "upstream_timeout", None)
    assert "htouhui_user_id" not in fast.user_item("u-late")
    answer = fast.register("u-late", "13812348886")
    assert answer["statusCode"] == 201
    there = [user for user in fast.control("GET", "users")["users"] if user["third_party_user_id"] == "u-late"]
    assert len(there) == 1 and json_body(answer)["htouhui_user_id"] in json.dumps(there[0])


# --- DynamoDB throttling during a notification ------------------------------------------------------------


@contextmanager
def throttled(operation: str, times: int = 1) -> Iterator[list[str]]:
    """The store's DynamoDB client answers `operation` with ProvisionedThroughputExceeded `times` times."""
    client = runtime.onboarding().store.client()
    seen: list[str] = []

    def throttle(**_: Any) -> None:
        if len(seen) < times:
            seen.append(operation)
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}}, operation
            )

    event = f"before-call.dynamodb.{operation}"
    client.meta.events.register(event, throttle, unique_id="hostile-throttle")
    try:
        yield seen
    finally:
        client.meta.events.unregister(event, unique_id="hostile-throttle")


@pytest.fixture
def opened(stack: Stack) -> Stack:
    assert stack.register("u-throttle", "13812348885")["statusCode"] == 201
    return stack


def test_throttled_transaction_is_500_then_the_redelivery_succeeds(opened: Stack, htouhui_private_key: Any) -> None:
    fields = opened.signed_notification(htouhui_private_key, "u-throttle", 2)
    before = dump(opened)
    with throttled("TransactWriteItems", times=1) as seen:
        answer = opened.notify(fields)
    assert seen and (answer["statusCode"], answer["body"]) == (500, "ERROR")
    assert dump(opened) == before
    assert (opened.notify(fields)["statusCode"], opened.notify(fields)["statusCode"]) == (200, 200)
    assert json_body(opened.query("u-throttle"))["status"] == 2
    assert [item["notify_no"]["S"] for item in opened.history()] == [fields["notify_no"]]


def test_throttled_history_of_a_stale_notification_is_500_then_redelivered(
    opened: Stack, htouhui_private_key: Any
) -> None:
    three = opened.signed_notification(htouhui_private_key, "u-throttle", 3)
    one = opened.signed_notification(htouhui_private_key, "u-throttle", 1)
    assert opened.notify(three)["statusCode"] == 200
    before = dump(opened)
    with throttled("PutItem", times=1) as seen:
        answer = opened.notify(one)
    assert seen and answer["statusCode"] == 500
    assert dump(opened) == before
    assert opened.notify(one)["statusCode"] == 200
    assert sorted(item["status"]["N"] for item in opened.history()) == ["1", "3"]
    assert json_body(opened.query("u-throttle"))["status"] == 3


def test_throttled_read_during_register_is_503_and_writes_nothing(stack: Stack) -> None:
    before = dump(stack)
    with throttled("UpdateItem", times=10):
        answer = stack.register("u-throttle-r", "13812348884")
    _error(answer, 503, "unavailable", None)
    assert dump(stack) == before and stack.calls == []
    assert stack.register("u-throttle-r", "13812348884")["statusCode"] == 201


# --- the reconciler while Htouhui is down ------------------------------------------------------------------


def _emf(output: str) -> dict[str, float]:
    """Sum of every metric in the EMF lines printed by Powertools."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return totals


SCHEDULE_ATTRIBUTES = ("next_check_at", "check_attempts", "check_lease", "check_token")


def _without_schedule(items: Any) -> Any:
    """The tables as the merchant sees them: the ladder's own bookkeeping left out."""
    return json.loads(
        json.dumps(items, default=str),
        object_hook=lambda item: {k: v for k, v in item.items() if k not in SCHEDULE_ATTRIBUTES},
    )


@pytest.mark.parametrize("outage", ["unreachable", "busy", "http-5xx", "bad-signature"])
def test_reconciler_while_htouhui_is_down(
    fast: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outage: str
) -> None:
    from helpers import load_function

    load_function("reconcile_dispatch").set_work_queue(None)
    users = [f"u-rec-down-{n}" for n in range(3)]
    for n, user in enumerate(users):
        assert fast.register(user, f"1381234700{n}")["statusCode"] == 201
        card = valid_id_card(f"4403011990010100{n + 2}")
        assert fast.open_account(user, {"id_card": card, "real_name": "赵六"})["statusCode"] == 200
        fast.control("POST", "users", {"third_party_user_id": user, "status": 3, "id_card": card})
    before = dump(fast)
    if outage == "unreachable":
        monkeypatch.setenv("HTOUHUI_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
        runtime.reset()
    else:
        fault = {"busy": {"busy": True}, "http-5xx": {"error_rate": 1.0}, "bad-signature": {"bad_signature": True}}
        fast.control("POST", "faults", {"interface": "query", **fault[outage]})
    time.sleep(2.05)  # the harness's first step (1 s, jittered, whole seconds)
    capsys.readouterr()
    assert fast.dispatch()["dispatched"] == 3
    assert fast.work_queued() == [{"batchItemFailures": []}]  # no crash; the schedule retries with backoff
    metrics = _emf(capsys.readouterr().out)
    assert metrics.get("ReconcileRetries") == 3 and "ReconcileFailures" not in metrics, metrics
    assert _without_schedule(dump(fast)) == _without_schedule(before)  # nothing else changed
    assert all(fast.user_item(user)["check_attempts"] == {"N": "1"} for user in users)

    monkeypatch.setenv("HTOUHUI_BASE_URL", fast.sandbox.url)
    runtime.reset()
    fast.control("POST", "faults", {"interface": "query", "clear": True})
    checks = [json.dumps({"detail-type": "CheckUserStatus", "detail": {"third_party_user_id": u}}) for u in users]
    assert fast.invoke("reconcile_worker", sqs_event(checks)) == {"batchItemFailures": []}
    assert all(fast.user_item(user)["status"] == {"N": "3"} for user in users)
    assert all("next_check_at" not in fast.user_item(user) for user in users)


def test_check_user_status_while_htouhui_is_down_is_delivered_again(
    fast: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fast.register("u-check-down", "13812347010")["statusCode"] == 201
    assert fast.open_account("u-check-down", {"id_card": ID_CARD, "real_name": "赵六"})["statusCode"] == 200
    fast.control("POST", "faults", {"interface": "query", "busy": True})
    event = {**load_event("check_user_status.json"), "detail": {"third_party_user_id": "u-check-down"}}
    batch = sqs_event([json.dumps(event)])
    capsys.readouterr()
    answer = fast.invoke("reconcile_worker", batch)  # SQS delivers it again, then its dead-letter queue keeps it
    assert answer == {"batchItemFailures": [{"itemIdentifier": batch["Records"][0]["messageId"]}]}
    assert _emf(capsys.readouterr().out).get("ReconcileRetries") == 1
