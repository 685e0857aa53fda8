"""`make demo` (`python -m stack.demo`) against the real local stack on free ports: it walks a fresh user to status 3
and exits 0, never prints the personal data in full, fails with the step's name when a step goes wrong, and starts
(and stops) a stack of its own when none answers. The stacks run at the default SANDBOX_TIME_SCALE (1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack_process import (
    ID_CARD,
    MOBILE,
    REAL_NAME,
    StackProcess,
    free_port,
    person,
    port_is_free,
    run_demo,
    running_stack,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("demo-stack"), SANDBOX_TIME_SCALE="1") as process:
        yield process


def assert_no_personal_data(text: str, mobile: str = MOBILE) -> None:
    for value in (mobile, ID_CARD, REAL_NAME, ID_CARD[3:14]):
        assert value not in text, f"{value!r} printed in full"


def test_the_demo_walks_a_user_to_status_3_on_a_running_stack(stack: StackProcess) -> None:
    result = run_demo({"API_PORT": str(stack.api_port)}, *person("demo-test-1"))
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert f"using the stack already running at {stack.url}" in output
    for line in (
        "== 1. register",
        f"> POST {stack.url}/users",
        "< 201 Created",
        "== 2. open-account page",
        f"auto-submit form: POST {stack.sandbox_url}/openapi/user/openAccount",
        f"notify_url = {stack.url}/htouhui/notify",
        'stored: stage "OPEN_REQUESTED"',
        "step page 1: 开户",
        "[step=password]",
        "step page 3: 缴费授权",
        f"redirected to {stack.url}/htouhui/return",
        "== 4. the notification",
        "status 3 stored",
        "the sandbox's notification N",
        f"to {stack.url}/htouhui/notify: delivered after",
        "200 'SUCCESS'",
        f"redirected to {stack.url}/_local/return",
        '"stage": "COMPLETED"',
        '"ready_for_debt_matching": true',
        "UserStatusChanged published",
        "DEMO OK",
        "demo-test-1 is at status 3 (COMPLETED), ready_for_debt_matching: true",
    ):
        assert line in output, f"{line!r} missing from:\n{output}"
    assert "139****5678" in output and "110***********1239" in output
    assert_no_personal_data(output + result.stderr)

    view = httpx.get(f"{stack.url}/users/demo-test-1").json()
    assert (view["status"], view["ready_for_debt_matching"]) == (3, True)


def test_each_run_uses_a_fresh_user(stack: StackProcess) -> None:
    first = run_demo({"API_PORT": str(stack.api_port)})
    second = run_demo({"API_PORT": str(stack.api_port)})
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    users = [
        line.split(":")[0].split()[1]
        for line in (first.stdout + second.stdout).splitlines()
        if line.startswith("user ")
    ]
    assert len(users) == 2 and users[0] != users[1] and all(user.startswith("demo-") for user in users)


def test_a_failed_step_is_named_and_the_exit_code_is_not_zero(stack: StackProcess) -> None:
    # Htouhui busy on the open-account page: the sandbox shows its error page instead of the first step.
    fault = httpx.post(
        f"{stack.sandbox_url}/_sandbox/faults", json={"interface": "openAccount", "busy": True, "count": 1}
    )
    assert fault.status_code == 200, fault.text
    try:
        result = run_demo({"API_PORT": str(stack.api_port)}, *person("demo-test-busy", "13912340001"))
    finally:
        httpx.delete(f"{stack.sandbox_url}/_sandbox/faults")
    assert result.returncode == 1, result.stdout
    assert "DEMO FAILED at step 3. the sandbox's pages, as the browser walks them" in result.stdout
    assert "got 503 (code 9999: " in result.stdout
    assert "DEMO OK" not in result.stdout
    assert_no_personal_data(result.stdout + result.stderr, "13912340001")


def test_a_conflicting_register_fails_at_step_1(stack: StackProcess) -> None:
    first = run_demo({"API_PORT": str(stack.api_port)}, *person("demo-test-owner", "13912340002"))
    assert first.returncode == 0, first.stdout
    second = run_demo({"API_PORT": str(stack.api_port)}, *person("demo-test-other", "13912340002"))
    assert second.returncode == 1
    assert "< 409 Conflict" in second.stdout
    assert "DEMO FAILED at step 1. register: expected 201" in second.stdout


def test_the_demo_starts_and_stops_a_stack_when_none_answers(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("API_PORT", "DYNAMODB_PORT", "SANDBOX_PORT")}
    result = run_demo(
        {
            **{name: str(port) for name, port in ports.items()},
            "HTOUHUI_KEYS_DIR": str(tmp_path / "keys"),
            "STACK_LOGS_DIR": str(tmp_path / "logs"),
            "LOCAL_SCHEDULE_SECONDS": "3600",
        },
        *person("demo-test-own-stack"),
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr + (tmp_path / "logs" / "demo-stack.log").read_text()
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    assert f"no stack answers at {api}/_local/health: starting one" in output
    assert f"stack ready at {api}" in output
    assert "stopped the stack the demo started (exit 0)" in output
    assert output.index("stopped the stack") < output.index("DEMO OK")
    assert (tmp_path / "keys" / "merchant_private.pem").exists()
    assert "/users -> 201" in (tmp_path / "logs" / "demo-stack.log").read_text()
    assert all(port_is_free(port) for port in ports.values())
    assert_no_personal_data(output + result.stderr)
