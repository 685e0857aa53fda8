"""The real local stack, started as `python -m stack` on free ports and driven over HTTP only: the five routes
of API.md with the real handlers, the sandbox's pages, the notification, the stream -> UserStatusChanged, the
dispatcher's schedule, the CheckUserStatus rule and queue feeding the worker, and a clean stop."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from stack_process import StackProcess, alive, children, port_is_free, running_stack

pytestmark = pytest.mark.slow

MOBILE = "13800138000"
ID_CARD = "11010519491231002X"
REAL_NAME = "张三"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("stack")) as process:
        yield process


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def walk_sandbox(client: httpx.Client, action: str, fields: dict[str, str]) -> httpx.Response:
    """Post the open-account form as the browser's auto-submit would, then press "success" on every step."""
    answer = client.post(action, data=fields)
    for _ in range(5):
        if answer.status_code != 200:
            return answer
        form = re.search(r'<form method="post" action="([^"]+)"', answer.text)
        assert form, answer.text[:500]
        answer = client.post(httpx.URL(action).join(unescape(form.group(1))), data={"outcome": "success"})
    return answer


def test_health_lists_what_the_template_declares(stack: StackProcess) -> None:
    health = stack.wait_ready()
    assert set(health["routes"]) == {  # type: ignore[arg-type]
        "POST /users",
        "POST /users/{third_party_user_id}/open-account",
        "GET /users/{third_party_user_id}",
        "POST /htouhui/notify",
        "GET /htouhui/return",
    }
    assert health["sandbox"] == stack.sandbox_url
    for name in ("merchant_private.pem", "merchant_public.pem", "htouhui_private.pem", "htouhui_public.pem"):
        assert (stack.folder / "keys" / name).exists()


def test_undeclared_routes_are_api_gateways_404(stack: StackProcess) -> None:
    for method, path in (("GET", "/nowhere"), ("DELETE", "/users/u1"), ("GET", "/users"), ("GET", "/htouhui/notify")):
        answer = httpx.request(method, f"{stack.url}{path}")
        assert (answer.status_code, answer.json()) == (404, {"message": "Not Found"}), (method, path)


def test_bad_json_is_a_400_in_api_md_shape(stack: StackProcess) -> None:
    answer = httpx.post(f"{stack.url}/users", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["request_id"] == answer.headers["apigw-requestid"]


def test_a_forged_notification_is_refused(stack: StackProcess) -> None:
    answer = httpx.post(
        f"{stack.url}/htouhui/notify",
        data={"partner_id": "P2026000001", "notify_no": "N1", "status": "3", "sign_type": "RSA2", "sign": "AAAA"},
    )
    assert (answer.status_code, answer.text.strip()) == (400, "FAIL")


def test_one_user_from_register_to_status_3(stack: StackProcess) -> None:
    with httpx.Client(timeout=30) as client:
        user = "e2e-user-1"
        created = client.post(f"{stack.url}/users", json={"third_party_user_id": user, "mobile": MOBILE})
        assert created.status_code == 201, created.text
        assert created.json()["stage"] == "REGISTERED"
        again = client.post(f"{stack.url}/users", json={"third_party_user_id": user, "mobile": MOBILE})
        assert again.status_code == 200
        assert again.json()["htouhui_user_id"] == created.json()["htouhui_user_id"]

        page = client.post(f"{stack.url}/users/{user}/open-account", json={"id_card": ID_CARD, "real_name": REAL_NAME})
        assert page.status_code == 200, page.text
        form = page.json()
        assert form["method"] == "POST" and form["action"].startswith(stack.sandbox_url)
        assert form["fields"]["notify_url"] == f"{stack.url}/htouhui/notify"

        html = client.post(
            f"{stack.url}/users/{user}/open-account",
            json={"id_card": ID_CARD, "real_name": REAL_NAME},
            headers={"accept": "text/html"},
        )
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")

        returned = walk_sandbox(client, form["action"], form["fields"])
        assert returned.status_code == 302
        assert returned.headers["location"].startswith(f"{stack.url}/htouhui/return?")
        landing = client.get(returned.headers["location"])
        assert landing.status_code == 302, landing.text
        assert landing.headers["location"].startswith(f"{stack.url}/_local/return?")
        final = client.get(landing.headers["location"])
        assert final.status_code == 200 and user in final.text

        view = wait_for(lambda: (v := client.get(f"{stack.url}/users/{user}").json())["status"] == 3 and v)
        assert view, client.get(f"{stack.url}/users/{user}").text
        assert view["stage"] == "COMPLETED" and view["ready_for_debt_matching"] is True
        assert view["id_card"] != ID_CARD and view["id_card"].endswith(ID_CARD[-4:])

        deliveries = wait_for(
            lambda: [d for d in client.get(f"{stack.sandbox_url}/_sandbox/deliveries").json()["deliveries"]]
        )
        assert deliveries

        published = wait_for(
            lambda: [
                event
                for event in client.get(f"{stack.url}/_local/events").json()["events"]
                if event["detail-type"] == "UserStatusChanged"
            ]
        )
        assert published, stack.text()
        assert published[0]["source"] == "htouhui.onboarding"

        refreshed = client.get(f"{stack.url}/users/{user}", params={"refresh": "true"})
        assert refreshed.status_code == 200 and refreshed.json()["status"] == 3


def test_the_dispatcher_schedule_and_check_user_status_through_its_queue(stack: StackProcess) -> None:
    fired = httpx.post(f"{stack.url}/_local/schedules", timeout=60).json()["fired"]
    assert fired == [{"function": "ReconcileDispatchFunction", "outcome": "ok"}], stack.text()

    # A user whose notification never came: Htouhui has it at status 1. CheckUserStatus on the bus goes to
    # the rule's queue, the worker (an SQS event source mapping, as the template declares) asks and stores.
    user = "e2e-check-1"
    card = "110105194912310046"
    assert httpx.post(f"{stack.url}/users", json={"third_party_user_id": user, "mobile": "13800138111"}).status_code
    opened = httpx.post(f"{stack.url}/users/{user}/open-account", json={"id_card": card, "real_name": REAL_NAME})
    assert opened.status_code == 200, opened.text
    seeded = httpx.post(
        f"{stack.sandbox_url}/_sandbox/users", json={"third_party_user_id": user, "status": 1, "id_card": card}
    )
    assert seeded.status_code == 201, seeded.text
    events = boto3.client(
        "events",
        endpoint_url=stack.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    events.put_events(
        Entries=[
            {
                "Source": "merchant.backend",
                "DetailType": "CheckUserStatus",
                "Detail": json.dumps({"third_party_user_id": user}),
                "EventBusName": "default",
            }
        ]
    )
    reached = wait_for(lambda: httpx.get(f"{stack.url}/users/{user}").json()["status"] == 1)
    assert reached, stack.text()
    line = r"queue CheckUserStatusQueue -> ReconcileWorkerFunction 1 message\(s\) ok"
    assert wait_for(lambda: re.search(line, stack.text())), stack.text()  # logged once the invocation returned


def test_the_console_has_one_line_per_request_and_no_personal_data(stack: StackProcess) -> None:
    text = stack.text()
    assert re.search(r"POST /users -> 201 in \d+ ms \(RegisterFunction", text)
    assert re.search(r"GET /nowhere -> 404 in \d+ ms \(no route\)", text)
    for secret in (MOBILE, ID_CARD, REAL_NAME):
        assert secret not in text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_everything_and_frees_the_ports(tmp_path: Path, signum: int) -> None:
    process = StackProcess(tmp_path)
    process.wait_ready()
    assert httpx.post(f"{process.url}/users", json={"third_party_user_id": "u", "mobile": MOBILE}).status_code == 201
    workers = children(process.process.pid)
    assert len(workers) >= 2, workers  # the sandbox and the register function's worker
    assert process.stop(signum) == 0, process.text()
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 10), [pid for pid in workers if alive(pid)]
    assert "stopped" in process.text(), process.text()
    for port in (process.api_port, process.dynamodb_port, process.sandbox_port):
        assert wait_for(lambda port=port: port_is_free(port), 10), port
