"""Hostile and unlucky against the running local stack (`python -m stack`, started here as a subprocess on
free ports, with its own keys and logs under a temporary folder).

* schemathesis fuzzes the merchant routes from `openapi.json` (positive and negative data): no answer is a
  5xx, every 4xx is API.md's error shape. The local stack enforces no SigV4 (IAM auth is the API
  Gateway's job in the cloud), so the requests go unsigned.
* a storm of signed notifications (every user x every status x 3 duplicates, shuffled, from several
  threads) against /htouhui/notify: every user ends at the highest status sent, one history record per
  notify_no, exactly one UserStatusChanged per rise of a status (read from the stack's EventBridge bus
  through a rule and queue of our own), nothing lost.

Figures (cases per route, storm size) are printed with -s and reported in docs/hostile.md.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
import pytest
import schemathesis
from helpers import ROOT
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from stack_process import StackProcess, running_stack

from htouhui import protocol

STORM_USERS = int(os.environ.get("HOSTILE_STORM_USERS", "50"))
STORM_THREADS = 8
DUPLICATES = 3
STATUSES = (0, 1, 2, 3)
SCHEMATHESIS_EXAMPLES = int(os.environ.get("HOSTILE_FUZZ_EXAMPLES", "60"))


@dataclass
class RunningStack:
    process: StackProcess
    folder: Path
    api_url: str
    dynamodb_url: str

    @property
    def output(self) -> list[str]:
        return self.process.text().splitlines()

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.dynamodb_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def htouhui_key(self) -> protocol.PrivateKey:
        """The local Htouhui key of this stack run (made on its first start under its keys folder)."""
        return protocol.load_private_key((self.folder / "keys" / "htouhui_private.pem").read_bytes())


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`python -m stack` on free ports, exactly as the local stack's own e2e tests start it."""
    folder = tmp_path_factory.mktemp("hostile-stack")
    with running_stack(folder) as process:
        yield RunningStack(process, folder, api_url=process.url, dynamodb_url=process.dynamodb_url)


# --- schemathesis on the merchant routes ------------------------------------------------------------------

CASES_PER_ROUTE: Counter[str] = Counter()
STATUS_PER_ROUTE: dict[str, Counter[int]] = defaultdict(Counter)


OPERATIONS = ["POST /users", "POST /users/{third_party_user_id}/open-account", "GET /users/{third_party_user_id}"]


def _assert_error_shape(response: Any, route: str) -> None:
    headers = {name.lower(): value for name, value in response.headers.items()}
    content_type = headers.get("content-type") or ""
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), (route, content_type, response.text[:300])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    assert isinstance(error.get("request_id"), str) and error["request_id"], body
    assert set(error) <= {"code", "message", "fields", "htouhui_code", "request_id"}, body
    for entry in error.get("fields", []):
        assert set(entry) == {"field", "reason"}, body
    if response.status_code == 400:
        assert error["code"] == "invalid_request" and error.get("fields"), body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize("route", OPERATIONS)
def test_schemathesis_no_5xx_and_every_4xx_in_our_shape(local_stack: RunningStack, route: str, mode: Any) -> None:
    """schemathesis' generators (its pytest plugin does not run under pytest 9: driven through hypothesis)."""
    schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
    schema.config.update(base_url=local_stack.api_url, request_timeout=30)
    [operation] = [result.ok() for result in schema.get_all_operations() if result.ok().label == route]
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=SCHEMATHESIS_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],  # every case is tried; no shrinking of a failure, its text is kept instead
        database=None,
    )
    def run(case: Any) -> None:
        response = case.call(base_url=local_stack.api_url, timeout=30)
        CASES_PER_ROUTE[route] += 1
        STATUS_PER_ROUTE[route][response.status_code] += 1
        try:
            assert response.status_code < 500, (response.status_code, response.text[:500])
            if 400 <= response.status_code < 500:
                _assert_error_shape(response, route)
        except AssertionError as failure:
            failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200}: {failure}")

    run()
    assert failures == [], failures[:5]


def test_schemathesis_report(local_stack: RunningStack) -> None:
    report = {
        route: {"cases": CASES_PER_ROUTE[route], "statuses": dict(sorted(STATUS_PER_ROUTE[route].items()))}
        for route in CASES_PER_ROUTE
    }
    print(f"\nschemathesis cases per route: {json.dumps(report, sort_keys=True)}", file=sys.stderr)
    if not CASES_PER_ROUTE:
        pytest.skip("a report of the module's fuzzing tests: run the module")
    server_errors = {
        route: [status for status in counts if status >= 500] for route, counts in STATUS_PER_ROUTE.items()
    }
    assert not any(server_errors.values()), server_errors  # no generated request made a route fail


# --- the storm ---------------------------------------------------------------------------------------------


def _status_events_queue(local_stack: RunningStack) -> tuple[Any, str]:
    """A queue of our own receiving every UserStatusChanged on every bus of the stack's EventBridge."""
    events, sqs = local_stack.aws("events"), local_stack.aws("sqs")
    name = "hostile-storm-" + uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for bus in events.list_event_buses()["EventBuses"]:
        events.put_rule(
            Name=name, EventBusName=bus["Name"], EventPattern=json.dumps({"detail-type": ["UserStatusChanged"]})
        )
        events.put_targets(Rule=name, EventBusName=bus["Name"], Targets=[{"Id": "storm", "Arn": arn}])
    return sqs, url


def _drain(sqs: Any, url: str, into: list[dict[str, Any]]) -> None:
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return
        for message in messages:
            into.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _chain_complete(changes: list[dict[str, Any]], highest: int) -> bool:
    """The user's UserStatusChanged events, ordered, make one strictly rising chain from nothing to `highest`."""
    ordered = sorted(changes, key=lambda detail: -1 if detail["old_status"] is None else detail["old_status"])
    current: int | None = None
    for detail in ordered:
        if detail["old_status"] != current or (current is not None and detail["new_status"] <= current):
            return False
        current = detail["new_status"]
    return current == highest


def test_storm_of_duplicated_shuffled_notifications(local_stack: RunningStack) -> None:
    api = local_stack.api_url
    sqs, queue = _status_events_queue(local_stack)
    users = [f"u-storm-{n:03d}" for n in range(STORM_USERS)]
    htouhui_ids: dict[str, str] = {}
    with httpx.Client(base_url=api, timeout=30) as client:
        for n, user in enumerate(users):
            answer = client.post("/users", json={"third_party_user_id": user, "mobile": f"1370000{n:04d}"})
            assert answer.status_code == 201, answer.text
            htouhui_ids[user] = answer.json()["htouhui_user_id"]

    key = local_stack.htouhui_key()
    partner_id = json.loads(httpx.get(f"{api}/_local/health").text)["partner_id"]
    bodies: list[tuple[str, str]] = []  # (notify_no, form body)
    for user in users:
        for status in STATUSES:
            fields = {
                "partner_id": partner_id,
                "notify_no": f"N{uuid.uuid4().hex[:24]}",
                "notify_type": "OPEN_ACCOUNT",
                "timestamp": protocol.china_timestamp(),
                "htouhui_user_id": htouhui_ids[user],
                "third_party_user_id": user,
                "status": str(status),
            }
            if status >= 1:
                fields["bank_card_number"] = f"62220202{random.randrange(10**10):010d}"
            body = urlencode(protocol.signed(fields, key))
            bodies += [(fields["notify_no"], body)] * DUPLICATES
    random.Random(20261128).shuffle(bodies)

    answers: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()

    def send(chunk: list[tuple[str, str]]) -> None:
        with httpx.Client(base_url=api, timeout=60) as client:
            for _notify_no, body in chunk:
                for _attempt in range(12):  # Htouhui's redelivery: until SUCCESS
                    answer = client.post(
                        "/htouhui/notify", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
                    )
                    with lock:
                        answers[(answer.status_code, answer.text)] += 1
                    if answer.status_code == 200 and answer.text == "SUCCESS":
                        break
                    time.sleep(0.05)
                else:
                    raise AssertionError(f"never acknowledged: {answer.status_code} {answer.text}")

    started = time.monotonic()
    chunks = [bodies[n::STORM_THREADS] for n in range(STORM_THREADS)]
    with ThreadPoolExecutor(STORM_THREADS) as pool:
        for future in [pool.submit(send, chunk) for chunk in chunks]:
            future.result()
    storm_seconds = time.monotonic() - started

    # every user at the highest status sent, one history record per notify_no
    dynamodb = local_stack.aws("dynamodb")
    tables = json.loads(httpx.get(f"{api}/_local/health").text)["tables"]
    with httpx.Client(base_url=api, timeout=30) as client:
        finals = {user: client.get(f"/users/{user}").json()["status"] for user in users}
    assert finals == dict.fromkeys(users, max(STATUSES))
    history: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": tables["NotificationsTable"], "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        history += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    storm_history = [item for item in history if item["third_party_user_id"]["S"].startswith("u-storm-")]
    sent_numbers = {notify_no for notify_no, _ in bodies}
    assert sorted(item["notify_no"]["S"] for item in storm_history) == sorted(sent_numbers)

    # exactly one UserStatusChanged per rise, per user: a complete strictly rising chain, nothing twice
    published: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while True:
        _drain(sqs, queue, published)
        per_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in published:
            per_user[event["detail"]["third_party_user_id"]].append(event["detail"])
        if all(_chain_complete(per_user[user], max(STATUSES)) for user in users) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2)  # anything published twice would arrive now
    _drain(sqs, queue, published)
    per_user = defaultdict(list)
    for event in published:
        assert event["detail-type"] == "UserStatusChanged" and event["source"] == "htouhui.onboarding"
        per_user[event["detail"]["third_party_user_id"]].append(event["detail"])
    broken = {user: per_user[user] for user in users if not _chain_complete(per_user[user], max(STATUSES))}
    stack_lines = [line for line in local_stack.output if "stream" in line or "event on" in line]
    assert broken == {}, (
        f"{len(broken)} users without exactly one event per rise: {list(broken.items())[:3]}; "
        f"{len(published)} published; the stack said: {stack_lines[-15:]}"
    )
    rises = sum(len(per_user[user]) for user in users)
    print(
        f"\nstorm: {len(users)} users x {len(STATUSES)} statuses x {DUPLICATES} = {len(bodies)} deliveries, "
        f"{STORM_THREADS} threads, {storm_seconds:.1f} s; answers {dict(answers)}; {len(storm_history)} history "
        f"records; {rises} UserStatusChanged for {rises} rises; lost 0",
        file=sys.stderr,
    )
