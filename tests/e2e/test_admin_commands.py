"""The operator commands as operators run them: every `make admin-*` and `make probe` form shown in README.md and
docs/*.md is run here as a subprocess (`make admin-show USER_ID=… STACK=local`) against one real local stack
(tests/e2e/stack_process.py), and its effect is asserted on that stack's tables, queues and sandbox.

`STACK=local` targets the stack `make run` started: admin.py reads its /_local/health (on API_PORT) for the
table names, the queues, the bus and the moto endpoint. `make probe` asks the stack's sandbox (BASE_URL).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from helpers import ROOT, valid_id_card
from stack_process import BusConsumer, StackProcess, running_stack

pytestmark = pytest.mark.slow

DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
MAKE_LINE = re.compile(r"(?:^|[\s`(|;&])make ((?:admin-[a-z]+|probe)\b[^`\n|;&)]*)")
# What the environment of a test run has that an operator's terminal does not (make's own, the test's paths).
NOT_IN_A_TERMINAL = ("PYTHONPATH", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
# The forms this file runs: target -> the variables each form sets (ENV and STACK only pick the stack).
RUN_HERE: dict[str, list[frozenset[str]]] = {}
NOT_RUN_HERE: set[str] = set()


def documented_make_commands() -> list[tuple[str, str, str]]:
    """(doc, target, the rest of the line) of every `make admin-…`/`make probe` in README, SECURITY and docs/."""
    found = []
    for path in DOCS:
        for match in MAKE_LINE.finditer(path.read_text(encoding="utf-8")):
            target, _, rest = match.group(1).strip().partition(" ")
            found.append((str(path.relative_to(ROOT)), target, rest))
    return found


def variables(rest: str) -> frozenset[str]:
    return frozenset(name for name in re.findall(r"\b([A-Z][A-Z0-9_]*)=", rest) if name not in ("ENV", "STACK"))


def ran(target: str, *names: str) -> None:
    RUN_HERE.setdefault(target, []).append(frozenset(names))


# ------------------------------------------------------------------------------------------------ the stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("admin")) as process:
        yield process


@pytest.fixture(scope="module")
def health(stack: StackProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.url}/_local/health", timeout=10).json())


def aws(stack: StackProcess, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make(stack: StackProcess, *arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """`make ARGUMENTS` from the repository root, as a terminal with the stack's API_PORT exported runs it.

    `-o` keeps make from re-installing the (shared, already installed) virtualenv whose stamps are older than
    this worktree's requirements files; the documented target and variables are passed as they are."""
    env = {name: value for name, value in os.environ.items() if name not in NOT_IN_A_TERMINAL}
    env.update({"API_PORT": str(stack.api_port), **environment})
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", ".venv/.installed-run", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def wait_for(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def status_of(stack: StackProcess, user: str) -> Any:
    return httpx.get(f"{stack.url}/users/{user}", timeout=10).json().get("status")


def user_item(stack: StackProcess, health: dict[str, Any], user: str) -> dict[str, Any]:
    table = health["tables"]["UsersTable"]
    return dict(aws(stack, "dynamodb").get_item(TableName=table, Key={"third_party_user_id": {"S": user}})["Item"])


def onboard(stack: StackProcess, user: str, mobile: str, seed: str) -> str:
    """Registered, and a form handed out (the id_card kept): the state every command below starts from."""
    id_card = valid_id_card(seed)
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{stack.url}/users", json={"third_party_user_id": user, "mobile": mobile})
        assert answer.status_code == 201, answer.text
        answer = client.post(f"{stack.url}/users/{user}/open-account", json={"id_card": id_card, "real_name": "张三"})
        assert answer.status_code == 200, answer.text
    return id_card


def sandbox_status(stack: StackProcess, user: str, status: int, id_card: str) -> None:
    """Htouhui's side moves on without notifying us (a lost notification)."""
    answer = httpx.post(
        f"{stack.sandbox_url}/_sandbox/users",
        json={"third_party_user_id": user, "status": status, "id_card": id_card},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text


# ------------------------------------------------------------------------------------------------ commands


def test_show_prints_the_user_masked(stack: StackProcess) -> None:
    id_card = onboard(stack, "u-show", "13800000001", "11010519491231001")
    result = make(stack, "admin-show", "USER_ID=u-show", "STACK=local")
    ran("admin-show", "USER_ID")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout[result.stdout.index("{") :])
    assert shown["user"]["third_party_user_id"] == "u-show"
    assert id_card not in result.stdout and "13800000001" not in result.stdout
    assert shown["user"]["id_card"] == id_card[:3] + "*" * 11 + id_card[-4:]


def test_check_moves_a_user_whose_sandbox_status_advanced(stack: StackProcess) -> None:
    id_card = onboard(stack, "u-check", "13800000002", "11010519491231002")
    sandbox_status(stack, "u-check", 2, id_card)
    assert status_of(stack, "u-check") is None
    result = make(stack, "admin-check", "USER_ID=u-check", "STACK=local")
    ran("admin-check", "USER_ID")
    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: status_of(stack, "u-check") == 2), status_of(stack, "u-check")


def test_stuck_lists_a_stalled_user(stack: StackProcess, health: dict[str, Any]) -> None:
    onboard(stack, "u-stuck", "13800000003", "11010519491231003")
    onboard(stack, "u-fresh", "13800000004", "11010519491231004")
    four_days_ago = (datetime.now(UTC) - timedelta(days=4)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    aws(stack, "dynamodb").update_item(
        TableName=health["tables"]["UsersTable"],
        Key={"third_party_user_id": {"S": "u-stuck"}},
        UpdateExpression="SET updated_at = :then",
        ExpressionAttributeValues={":then": {"S": four_days_ago}},
    )
    result = make(stack, "admin-stuck", "DAYS=3", "STACK=local")
    ran("admin-stuck", "DAYS")
    assert result.returncode == 0, result.stderr
    users = {user["third_party_user_id"] for user in json.loads(result.stdout[result.stdout.index("{") :])["users"]}
    assert "u-stuck" in users and "u-fresh" not in users
    only_none = make(stack, "admin-stuck", "DAYS=3", "STATUS=none", "STACK=local")
    ran("admin-stuck", "DAYS", "STATUS")
    assert "u-stuck" in only_none.stdout
    only_two = make(stack, "admin-stuck", "DAYS=3", "STATUS=2", "STACK=local")
    assert only_two.returncode == 0 and "u-stuck" not in only_two.stdout


def queue_depth(stack: StackProcess, url: str) -> int:
    attributes = aws(stack, "sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def check_event(user: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": f"dead-{user}",
            "source": "htouhui.admin",
            "detail-type": "CheckUserStatus",
            "detail": {"third_party_user_id": user},
        }
    )


def test_redrive_to_the_bus_moves_a_dead_letter(stack: StackProcess, health: dict[str, Any]) -> None:
    id_card = onboard(stack, "u-redrive", "13800000005", "11010519491231005")
    sandbox_status(stack, "u-redrive", 1, id_card)
    dead = health["queues"]["ReconcileDeadLetterQueue"]
    aws(stack, "sqs").send_message(QueueUrl=dead, MessageBody=check_event("u-redrive"))
    assert queue_depth(stack, dead) == 1
    result = make(stack, "admin-redrive", "QUEUE=ReconcileDeadLetterQueue", "TO_BUS=default", "STACK=local")
    ran("admin-redrive", "QUEUE", "TO_BUS")
    assert result.returncode == 0, result.stderr
    assert "redriven 1 message(s)" in result.stdout
    assert queue_depth(stack, dead) == 0
    # it arrived: the event went through the bus's rule to the worker, which asked Htouhui
    assert wait_for(lambda: status_of(stack, "u-redrive") == 1)


def test_redrive_to_a_queue_moves_a_dead_letter(stack: StackProcess, health: dict[str, Any]) -> None:
    id_card = onboard(stack, "u-requeue", "13800000006", "11010519491231006")
    sandbox_status(stack, "u-requeue", 2, id_card)
    dead = health["queues"]["ReconcileWorkDeadLetterQueue"]
    aws(stack, "sqs").send_message(QueueUrl=dead, MessageBody=check_event("u-requeue"))
    result = make(
        stack, "admin-redrive", "QUEUE=ReconcileWorkDeadLetterQueue", "TO_QUEUE=CheckUserStatusQueue", "STACK=local"
    )
    ran("admin-redrive", "QUEUE", "TO_QUEUE")
    assert result.returncode == 0, result.stderr
    assert queue_depth(stack, dead) == 0
    assert wait_for(lambda: status_of(stack, "u-requeue") == 2)


def reapply_environment(stack: StackProcess) -> dict[str, str]:
    """The functions' settings reapply needs (docs/runbook.md), pointed at the local stack's keys."""
    keys = stack.folder / "keys"
    return {
        "HTOUHUI_PARTNER_ID": "P2026000001",
        "HTOUHUI_PROFILE": "default",
        "HTOUHUI_PUBLIC_KEY": f"file:{keys / 'htouhui_public.pem'}",
        "MERCHANT_PRIVATE_KEY": f"file:{keys / 'merchant_private.pem'}",
    }


def test_reapply_applies_a_stored_notification_again(stack: StackProcess, health: dict[str, Any]) -> None:
    onboard(stack, "u-reapply", "13800000007", "11010519491231007")
    answer = httpx.post(
        f"{stack.sandbox_url}/_sandbox/trigger",
        json={"third_party_user_id": "u-reapply", "status": 3, "notify_url": f"{stack.url}/htouhui/notify"},
        timeout=10,
    )
    assert answer.is_success, answer.text
    assert wait_for(lambda: status_of(stack, "u-reapply") == 3)
    shown = make(stack, "admin-show", "USER_ID=u-reapply", "STACK=local")
    history = json.loads(shown.stdout[shown.stdout.index("{") :])["history"]
    notify_no = next(record["notify_no"] for record in history if str(record.get("status")) == "3")
    # a restore from before the notification: the user item is back at status 1, the history is intact
    aws(stack, "dynamodb").update_item(
        TableName=health["tables"]["UsersTable"],
        Key={"third_party_user_id": {"S": "u-reapply"}},
        UpdateExpression="SET #s = :one",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert status_of(stack, "u-reapply") == 1
    records_before = len(history)

    result = make(stack, "admin-reapply", f"NOTIFY_NO={notify_no}", "STACK=local", **reapply_environment(stack))
    ran("admin-reapply", "NOTIFY_NO")

    assert result.returncode == 0, result.stdout + result.stderr
    assert status_of(stack, "u-reapply") == 3
    again = make(stack, "admin-show", "USER_ID=u-reapply", "STACK=local")
    assert len(json.loads(again.stdout[again.stdout.index("{") :])["history"]) == records_before  # no new record


def test_reapply_refuses_a_notification_under_another_key(stack: StackProcess, tmp_path: Path) -> None:
    onboard(stack, "u-rekey", "13800000008", "11010519491231008")
    answer = httpx.post(
        f"{stack.sandbox_url}/_sandbox/trigger",
        json={"third_party_user_id": "u-rekey", "status": 1, "notify_url": f"{stack.url}/htouhui/notify"},
        timeout=10,
    )
    assert answer.is_success
    assert wait_for(lambda: status_of(stack, "u-rekey") == 1)
    shown = make(stack, "admin-show", "USER_ID=u-rekey", "STACK=local")
    notify_no = json.loads(shown.stdout[shown.stdout.index("{") :])["history"][0]["notify_no"]
    environment = reapply_environment(stack)
    environment["HTOUHUI_PUBLIC_KEY"] = environment["MERCHANT_PRIVATE_KEY"].replace("private", "public")
    result = make(stack, "admin-reapply", f"NOTIFY_NO={notify_no}", "STACK=local", **environment)
    assert result.returncode != 0  # make answers 2 for a recipe that failed
    assert f"notification {notify_no} does not verify" in result.stdout, result.stdout + result.stderr
    assert status_of(stack, "u-rekey") == 1


def test_erase_erases_and_a_second_erase_changes_nothing(stack: StackProcess, health: dict[str, Any]) -> None:
    id_card = onboard(stack, "u-erase", "13800000009", "11010519491231009")
    assert user_item(stack, health, "u-erase")["id_card"]["S"] == id_card
    refused = make(stack, "admin-erase", "USER_ID=u-erase", "STACK=local")
    assert refused.returncode != 0 and "CONFIRM=yes" in refused.stderr
    assert "erased_at" not in user_item(stack, health, "u-erase")

    result = make(stack, "admin-erase", "USER_ID=u-erase", "CONFIRM=yes", "STACK=local")
    ran("admin-erase", "USER_ID", "CONFIRM")
    assert result.returncode == 0, result.stderr
    erased = user_item(stack, health, "u-erase")
    assert "id_card" not in erased and "mobile_digest" not in erased and "erased_at" in erased

    second = make(stack, "admin-erase", "USER_ID=u-erase", "CONFIRM=yes", "STACK=local")
    assert second.returncode == 0, second.stderr
    assert user_item(stack, health, "u-erase") == erased


def test_export_writes_the_users_own_copy_and_refuses_a_stranger(
    stack: StackProcess, health: dict[str, Any], tmp_path: Path
) -> None:
    id_card = onboard(stack, "u-export", "13800000010", "11010519491231010")
    out = tmp_path / "u-export.json"
    result = make(stack, "admin-export", "USER_ID=u-export", f"OUT={out}", "STACK=local")
    ran("admin-export", "USER_ID", "OUT")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert exported["user"]["id_card"] == id_card  # the user's own copy: unmasked
    assert exported["user"]["third_party_user_id"] == "u-export" and exported["history"] == []
    assert id_card not in result.stdout + result.stderr  # nothing personal on the terminal
    before = user_item(stack, health, "u-export")

    stranger = make(stack, "admin-export", "USER_ID=u-nobody", "STACK=local")
    assert stranger.returncode != 0 and "no user 'u-nobody'" in stranger.stderr
    again = make(stack, "admin-export", "USER_ID=u-export", f"OUT={out}", "STACK=local")
    assert again.returncode != 0 and "never overwrites" in again.stderr
    assert user_item(stack, health, "u-export") == before  # exporting changes nothing


def status_validator() -> Any:
    import jsonschema

    schema = json.loads((ROOT / "events" / "schemas" / "UserStatusChanged.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_published_events_match_the_schema_and_republish_repeats_their_ids(
    stack: StackProcess, health: dict[str, Any]
) -> None:
    pattern = {"source": ["htouhui.onboarding"], "detail-type": ["UserStatusChanged"]}
    consumer = BusConsumer(stack, health["event_bus"], "merchant-status-events", pattern)
    validator = status_validator()
    since = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    id_card = onboard(stack, "u-events", "13800000020", "11010519491231020")
    sandbox_status(stack, "u-events", 3, id_card)
    assert httpx.get(f"{stack.url}/users/u-events?refresh=true", timeout=30).json()["status"] == 3

    def of_user(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [event["detail"] for event in events if event["detail"]["third_party_user_id"] == "u-events"]

    (published,) = of_user(consumer.receive(lambda events: of_user(events)))  # a jump from none to 3: one event
    validator.validate(published)
    assert (published["old_status"], published["new_status"], published["version"]) == (None, 3, 1)

    result = make(stack, "admin-republish", "USER_ID=u-events", "STACK=local")
    ran("admin-republish", "USER_ID")
    assert result.returncode == 0, result.stderr
    (again,) = of_user(consumer.receive(lambda events: of_user(events)))
    validator.validate(again)
    assert again["event_id"] == published["event_id"] and again["republished"] is True

    result = make(stack, "admin-republish", f"SINCE={since}", "STACK=local")
    ran("admin-republish", "SINCE")
    assert result.returncode == 0, result.stderr
    (since_then,) = of_user(consumer.receive(lambda events: of_user(events)))
    assert since_then["event_id"] == published["event_id"]
    nobody = make(stack, "admin-republish", "USER_ID=u-nobody", "STACK=local")
    assert nobody.returncode != 0 and "nothing republished" in nobody.stdout


def test_probe_finds_the_sandbox_profile(stack: StackProcess) -> None:
    keys = stack.folder / "keys"
    result = make(
        stack,
        "probe",
        f"BASE_URL={stack.sandbox_url}",
        "PARTNER_ID=P2026000001",
        f"KEY={keys / 'merchant_private.pem'}",
        f"HTOUHUI_KEY={keys / 'htouhui_public.pem'}",
    )
    ran("probe", "BASE_URL", "PARTNER_ID", "KEY", "HTOUHUI_KEY")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the profile that works: default" in result.stdout


def test_a_stack_that_is_not_running_is_named(stack: StackProcess) -> None:
    result = make(stack, "admin-show", "USER_ID=u-1", "STACK=local", API_PORT="1")
    assert result.returncode != 0
    assert "cannot read the stack 'local'" in result.stderr


# ------------------------------------------------------------------------------------------------ coverage


def test_every_documented_form_is_run_here() -> None:
    """Runs last in this file: every (target, variables) a doc shows is among the forms run above (a form may
    set fewer variables than the one run: STATUS is optional, the environment's ENV/STACK pick the stack)."""
    documented = documented_make_commands()
    assert len(documented) >= 8, documented
    missing = []
    for doc, target, rest in documented:
        if target in NOT_RUN_HERE:
            continue
        names = variables(rest)
        if not any(names <= form for form in RUN_HERE.get(target, [])):
            missing.append(f"{doc}: make {target} {rest.strip()}")
    assert not missing, f"documented operator commands no test runs: {missing}"
