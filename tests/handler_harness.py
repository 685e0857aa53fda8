"""The handlers wired to real neighbours: moto DynamoDB, the Htouhui sandbox over HTTP, and a bridge.

`Bridge` is a tiny HTTP server that turns each request into an API Gateway HTTP API (payload 2.0)
event, invokes the function that template.yaml routes it to, and turns the answer back into HTTP.
The sandbox delivers its notifications to the bridge's /htouhui/notify; a browser (httpx here)
follows Htouhui's redirect to the bridge's /htouhui/return.

Use from a test module: `from handler_harness import *` brings the fixtures `aws`, `sandbox`,
`bridge` and `stack` (one configured stack per test: fresh tables, env, runtime).
"""

from __future__ import annotations

import base64
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import pytest
from conftest import ROOT, TEST_KEYS
from htouhui_dynamo import create_tables, dynamodb_client, moto_dynamodb
from lambda_loader import FakeContext, http_event, json_body, load_function

LOCAL = ROOT / "local"
if str(LOCAL) not in sys.path:
    sys.path.insert(0, str(LOCAL))

from sandbox.server import RunningSandbox, Sandbox, SandboxConfig  # noqa: E402

from htouhui import protocol, runtime  # noqa: E402
from htouhui.models import id_card_check_character  # noqa: E402

PARTNER_ID = "P2026000001"
TIME_SCALE = 0.05  # the sandbox's delivery schedule: first retry after 0.75 s, answer time-out 0.25 s

ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    ("POST", re.compile(r"^/users$"), "register", "/users"),
    (
        "POST",
        re.compile(r"^/users/(?P<third_party_user_id>[^/]+)/open-account$"),
        "open_account",
        "/users/{third_party_user_id}/open-account",
    ),
    ("GET", re.compile(r"^/users/(?P<third_party_user_id>[^/]+)$"), "query_user", "/users/{third_party_user_id}"),
    ("POST", re.compile(r"^/htouhui/notify$"), "notify", "/htouhui/notify"),
    ("GET", re.compile(r"^/htouhui/return$"), "notify", "/htouhui/return"),
]


def valid_id_card(first17: str = "11010519900307123") -> str:
    return first17 + id_card_check_character(first17)


def _route(method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    for route_method, pattern, function, template in ROUTES:
        match = pattern.match(path)
        if route_method == method and match:
            return function, template, match.groupdict()
    return None


class Bridge:
    """HTTP -> payload 2.0 event -> lambda_handler -> HTTP, on 127.0.0.1 and an ephemeral port."""

    def __init__(self) -> None:
        self.invocations: list[tuple[str, str, int]] = []
        self.before: Callable[[str, dict[str, Any]], None] | None = None
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                bridge._serve(self, "GET")

            def do_POST(self) -> None:
                bridge._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bridge", daemon=True)
        self._thread.start()
        host, port = self._httpd.server_address[:2]
        self.authority = f"{host}:{port}"
        self.url = f"http://{self.authority}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        found = _route(method, parts.path)
        if found is None:
            self._answer(request, 404, {"Content-Type": "text/plain"}, b"no route")
            return
        function, template, path_parameters = found
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers["x-forwarded-proto"] = "http"
        event = http_event(
            method,
            parts.path,
            route=template,
            body=body or None,
            headers=headers,
            query=parts.query or None,
            path_parameters=path_parameters or None,
            domain=self.authority,
            iam=function != "notify",
        )
        if self.before is not None:
            self.before(function, event)
        result = load_function(function).lambda_handler(event, FakeContext(function_name=function))
        status = int(result.get("statusCode", 200))
        self.invocations.append((function, parts.path, status))
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode("utf-8")
        self._answer(request, status, dict(result.get("headers") or {}), data)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
        request.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


@dataclass
class Stack:
    bridge: Bridge
    sandbox: RunningSandbox
    dynamodb: Any
    users_table: str
    notifications_table: str
    calls: list[Any]
    queue_url: str = ""  # the reconciliation work queue (moto SQS)
    aws_url: str = ""

    # --- the merchant's side (events straight into the handlers) ---------------------------------

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = load_function(function).lambda_handler(event, FakeContext(function_name=function))
        return result

    def register(self, user: str, mobile: str, password: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"third_party_user_id": user, "mobile": mobile}
        if password is not None:
            body["password"] = password
        return self.invoke("register", http_event("POST", "/users", body=body, domain=self.bridge.authority))

    def open_account(self, user: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        event = http_event(
            "POST",
            f"/users/{user}/open-account",
            route="/users/{third_party_user_id}/open-account",
            path_parameters={"third_party_user_id": user},
            body=body,
            headers={"x-forwarded-proto": "http", **(headers or {})},
            domain=self.bridge.authority,
        )
        return self.invoke("open_account", event)

    def query(self, user: str, refresh: bool = False) -> dict[str, Any]:
        event = http_event(
            "GET",
            f"/users/{user}",
            route="/users/{third_party_user_id}",
            path_parameters={"third_party_user_id": user},
            query={"refresh": "true"} if refresh else None,
            domain=self.bridge.authority,
        )
        return self.invoke("query_user", event)

    def notify(self, fields: dict[str, str] | str, *, base64_body: bool = False) -> dict[str, Any]:
        body = fields if isinstance(fields, str) else urlencode(fields)
        event = http_event(
            "POST",
            "/htouhui/notify",
            body=body,
            base64_body=base64_body,
            headers={"content-type": "application/x-www-form-urlencoded"},
            iam=False,
            domain=self.bridge.authority,
        )
        return self.invoke("notify", event)

    def dispatch(self) -> dict[str, Any]:
        """One run of the reconciliation dispatcher (its schedule's event)."""
        return self.invoke("reconcile_dispatch", {"detail-type": "Scheduled Event", "source": "aws.scheduler"})

    def work_queued(self) -> list[dict[str, Any]]:
        """Hand what the dispatcher queued to the worker as SQS batches; returns each invocation's answer."""
        sqs = _sqs(self.aws_url)
        answers = []
        while True:
            found = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not found:
                return answers
            answers.append(self.invoke("reconcile_worker", sqs_event([m["Body"] for m in found])))
            for message in found:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def user_item(self, user: str) -> dict[str, Any]:
        answer = self.dynamodb.get_item(
            TableName=self.users_table, Key={"third_party_user_id": {"S": user}}, ConsistentRead=True
        )
        return dict(answer.get("Item") or {})

    def history(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=self.notifications_table)["Items"])

    # --- Htouhui's side ---------------------------------------------------------------------------

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = httpx.request(method, f"{self.sandbox.url}/_sandbox/{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def deliveries(self, user: str) -> list[dict[str, Any]]:
        return list(self.control("GET", f"deliveries?third_party_user_id={user}")["deliveries"])

    def wait_deliveries(
        self, user: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.deliveries(user)
            if done(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries never reached the expected state: {current}")
            time.sleep(0.05)

    def walk_pages(self, page: dict[str, Any], outcomes: list[str] | None = None) -> httpx.Response:
        """Submit the open-account form to the sandbox and click through every step (success by default).

        Returns the sandbox's last answer (a 302 to return_url once the flow has finished).
        """
        with httpx.Client(timeout=10, follow_redirects=False) as browser:
            answer = browser.post(page["action"], data=page["fields"])
            clicks = iter(outcomes or [])
            while answer.status_code == 200 and 'id="step"' in answer.text:
                form = _FormReader.read(answer.text)
                url = urljoin(str(answer.url), form.action)
                answer = browser.post(url, data={**form.hidden, "outcome": next(clicks, "success")})
            return answer

    def follow_return(self, location: str) -> httpx.Response:
        with httpx.Client(timeout=10, follow_redirects=False) as browser:
            return browser.get(location)

    def signed_notification(self, key: protocol.PrivateKey, user: str, status: int, **extra: str) -> dict[str, str]:
        fields = {
            "partner_id": PARTNER_ID,
            "notify_no": "N" + uuid.uuid4().hex[:20],
            "notify_type": "OPEN_ACCOUNT",
            "timestamp": protocol.china_timestamp(),
            "htouhui_user_id": str(self.user_item(user)["htouhui_user_id"]["S"]),
            "third_party_user_id": user,
            "status": str(status),
        }
        if status >= 1:
            fields["bank_card_number"] = "6222020200112233445"
        fields.update(extra)
        return protocol.signed(fields, key)


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS batch as the event source mapping hands it to a function."""
    return {
        "Records": [
            {
                "messageId": f"m-{index}-{uuid.uuid4().hex[:8]}",
                "receiptHandle": "handle",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:reconcile",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}

    @classmethod
    def read(cls, html: str) -> _FormReader:
        reader = cls()
        reader.feed(html)
        return reader

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values.get("name", "")] = values.get("value", "")


def _sqs(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="x"
    )


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_dynamodb() as url:
        yield url


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    config = SandboxConfig(
        merchant_public_key=protocol.load_public_key((TEST_KEYS / "merchant_public.pem").read_text()),
        htouhui_private_key=protocol.load_private_key((TEST_KEYS / "htouhui_private.pem").read_text()),
        partner_id=PARTNER_ID,
        time_scale=TIME_SCALE,
    )
    running = Sandbox(config).serve(port=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def bridge() -> Iterator[Bridge]:
    running = Bridge()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(aws: str, sandbox: RunningSandbox, bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    client = dynamodb_client(aws)
    suffix = uuid.uuid4().hex[:8]
    users, notifications = f"users-{suffix}", f"notifications-{suffix}"
    create_tables(client, users, notifications)
    queue_url = _sqs(aws).create_queue(QueueName=f"reconcile-{suffix}")["QueueUrl"]
    environment = {
        "HTOUHUI_PARTNER_ID": PARTNER_ID,
        "HTOUHUI_BASE_URL": sandbox.url,
        "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
        "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
        "USERS_TABLE": users,
        "NOTIFICATIONS_TABLE": notifications,
        "HTOUHUI_CONNECT_TIMEOUT": "1",
        "HTOUHUI_READ_TIMEOUT": "1",
        "HTOUHUI_MAX_ATTEMPTS": "2",
        "HTOUHUI_RETRY_SECONDS": "3",
        # reconciliation: a ladder short enough to wait for, a budget that paces tests in milliseconds
        "RECONCILE_LADDER": "1s,10m,1h",
        "RECONCILE_RATE_BUDGET": "2000",
        "RECONCILE_QUEUE_URL": queue_url,
        "AWS_ENDPOINT_URL_SQS": aws,
        "EVENT_BUS_NAME": "htouhui-test",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("PUBLIC_BASE_URL", "FRONTEND_RETURN_URL", "ALLOWED_RETURN_HOSTS", "HTOUHUI_PUBLIC_KEY_NEXT"):
        monkeypatch.delenv(name, raising=False)
    sandbox.sandbox.reset()
    runtime.reset()
    calls: list[Any] = []
    from htouhui import observability

    original = observability.record_attempt

    def counting(record: Any) -> None:
        calls.append(record)
        original(record)

    monkeypatch.setattr(observability, "record_attempt", counting)
    bridge.before = None
    bridge.invocations.clear()
    try:
        yield Stack(bridge, sandbox, client, users, notifications, calls, queue_url, aws)
    finally:
        runtime.reset()
        bridge.before = None


__all__ = [
    "PARTNER_ID",
    "Bridge",
    "Stack",
    "aws",
    "bridge",
    "json_body",
    "sandbox",
    "sqs_event",
    "stack",
    "valid_id_card",
]
