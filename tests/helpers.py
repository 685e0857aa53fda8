"""What the tests import by name (their fixtures are in conftest.py).

Handlers: the template's functions loaded in this process by the local stack (`stack.inprocess`), events made
by its API Gateway emulation (`http_event`, `invoke`, `load_function`), and `Stack`, one configured set of
neighbours per test (moto DynamoDB, the Htouhui sandbox over HTTP, and `Bridge`: the local stack's HTTP API
answering with those in-process functions, which the sandbox's notifications and a browser reach).
Sandbox: `Receiver`, a notify_url that records posts and answers as told; `signed_request`, `open_account_form`
and `post_json` build and send merchant-signed messages; `make_client` points the project's client at a URL.
`valid_id_card` makes resident identity numbers with a correct check digit.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin

import httpx
from sandbox.server import RunningSandbox
from stack.apigw import Answer, ApiServer, HttpRequest, HttpResponse, not_found
from stack.aws import create_template_tables, serial_moto_server
from stack.inprocess import Functions, default_functions, http_event

from htouhui import protocol
from htouhui.client import ClientOptions, HtouhuiClient, RetryPolicy, Timeouts
from htouhui.models import id_card_check_character

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
EVENTS = ROOT / "events"
# The binding protocol, the merchant contract and the vectors, copied into the repository (a clone alone runs
# make test); tests/unit/test_spec_copies.py keeps them byte-identical to ../shared/ when that is present.
SPEC = ROOT / "docs" / "spec"
SHARED = Path(os.environ.get("HTOUHUI_SHARED_DIR", ROOT.parent / "shared")).resolve()
PROTOCOL_DIR = SPEC / "protocol"
TEST_KEYS = PROTOCOL_DIR / "test-keys"
PARTNER_ID = "P2026000001"

__all__ = [
    "LAYER",
    "PARTNER_ID",
    "PROTOCOL_DIR",
    "ROOT",
    "TEST_KEYS",
    "Bridge",
    "Post",
    "Receiver",
    "Stack",
    "create_tables",
    "dynamodb_client",
    "header",
    "http_event",
    "invoke",
    "json_body",
    "load_event",
    "load_function",
    "make_client",
    "moto_dynamodb",
    "open_account_form",
    "post_json",
    "serve",
    "signed_request",
    "valid_id_card",
]


def valid_id_card(first17: str = "11010519491231002") -> str:
    return first17 + id_card_check_character(first17)


# --- handlers -------------------------------------------------------------------------------------------


def load_event(name: str) -> dict[str, Any]:
    """One of the sample events under events/."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py, loaded once per process as the local stack loads it."""
    return default_functions().module(name)


def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Call a function's handler the way Lambda does."""
    result: dict[str, Any] = default_functions().invoke(name, event)
    return result


def json_body(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    return json.loads(body)


def header(response: dict[str, Any], name: str) -> str | None:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    return None


def serve(answer: Answer) -> ApiServer:
    """The local stack's HTTP server (`stack.apigw.ApiServer`) answering with `answer`, on 127.0.0.1 and a free
    port, in a daemon thread; `.url`, and `.shutdown()` then `.server_close()` to stop it."""
    server = ApiServer(("127.0.0.1", 0), answer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


class Bridge:
    """The local stack's HTTP API (`stack.apigw.ApiServer`) on 127.0.0.1 and an ephemeral port, answering with
    the functions run in this process. `before(function, event)` sees each event first; `invocations` lists
    (function, path, status) of each request."""

    def __init__(self, functions: Functions | None = None) -> None:
        self.functions = functions or default_functions()
        self._server = serve(self.functions.handle)
        self.url = self._server.url
        self.authority = self.url.removeprefix("http://")

    @property
    def before(self) -> Callable[[str, dict[str, Any]], None] | None:
        return self.functions.before

    @before.setter
    def before(self, hook: Callable[[str, dict[str, Any]], None] | None) -> None:
        self.functions.before = hook

    @property
    def invocations(self) -> list[tuple[str, str, int]]:
        return self.functions.invocations

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SettableClock:
    """A clock that starts now and moves only when told: the functions' time in the integration stack."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def epoch(self) -> int:
        return int(self.now.timestamp())


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
    clock: SettableClock = field(default_factory=lambda: SettableClock())  # the functions' clock (runtime)

    # --- the merchant's side (events straight into the handlers) ---------------------------------

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.bridge.functions.invoke(function, event)
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
            body=body,
            headers={"x-forwarded-proto": "http", **(headers or {})},
            domain=self.bridge.authority,
        )
        return self.invoke("open_account", event)

    def query(self, user: str, refresh: bool = False) -> dict[str, Any]:
        event = http_event(
            "GET",
            f"/users/{user}",
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
        sqs = sqs_client(self.aws_url)
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
                form = FormReader.read(answer.text)
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


class FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}

    @classmethod
    def read(cls, html: str) -> FormReader:
        reader = cls()
        reader.feed(html)
        return reader

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values.get("name", "")] = values.get("value", "")


# --- DynamoDB: moto's server, the template's tables ----------------------------------------------
# The server is the local stack's (`stack.aws.serial_moto_server`): it applies one request at a time, as DynamoDB
# applies each request atomically; the tables come from the template, as the local stack's do.

TEST_AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@contextmanager
def moto_dynamodb() -> Iterator[str]:
    """A started server's endpoint URL, with the test AWS environment set while it runs."""
    saved = {name: os.environ.get(name) for name in [*TEST_AWS_ENV, "AWS_ENDPOINT_URL_DYNAMODB"]}
    server = serial_moto_server("127.0.0.1", 0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ.update(TEST_AWS_ENV)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = url
    try:
        yield url
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dynamodb_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=TEST_AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def create_tables(client: Any, users_table: str, notifications_table: str) -> None:
    """The users and notifications tables exactly as template.yaml declares them (keys, indexes, stream)."""
    create_template_tables(client, {"UsersTable": users_table, "NotificationsTable": notifications_table})


# --- the Htouhui sandbox over HTTP ---------------------------------------------------------------


@dataclass
class Post:
    at: float
    fields: dict[str, str]
    body: bytes


class Receiver:
    """A tiny notify_url: records every POST; answers with `answer(post_number)` -> (status, body)."""

    def __init__(self, answer: Callable[[int], tuple[int, str]] | None = None) -> None:
        self.posts: list[Post] = []
        self.answer = answer or (lambda _n: (200, "SUCCESS"))
        self._cond = threading.Condition()
        self._server = serve(self._receive)
        self.url = f"{self._server.url}/htouhui/notify"

    def _receive(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        if request.method != "POST":
            return not_found(), "not a post"
        with self._cond:
            fields = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
            self.posts.append(Post(time.monotonic(), fields, request.body))
            number = len(self.posts)
            self._cond.notify_all()
        status, text = self.answer(number)
        return HttpResponse(status, [("Content-Type", "text/plain")], text.encode("utf-8")), "received"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Post]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.posts) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} notification posts, got {len(self.posts)}")
                self._cond.wait(remaining)
            return list(self.posts)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_client(
    url: str,
    merchant_key: protocol.PrivateKey,
    htouhui_key: protocol.PublicKey,
    *,
    attempts: int = 1,
    read_timeout: float = 5.0,
) -> HtouhuiClient:
    options = ClientOptions(
        partner_id=PARTNER_ID,
        base_url=url,
        timeouts=Timeouts(connect=2.0, read=read_timeout),
        retry=RetryPolicy(max_attempts=attempts, total_seconds=30, base_delay=0.01, max_delay=0.02),
    )
    return HtouhuiClient(options, merchant_key, [htouhui_key])


def signed_request(
    business: dict[str, str], key: protocol.PrivateKey, *, request_no: str | None = None, **common: str
) -> dict[str, str]:
    fields = {**business, **protocol.request_common_fields(PARTNER_ID, request_no=request_no)}
    fields.update(common)
    return protocol.signed(fields, key)


def post_json(url: str, fields: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=json.dumps(fields).encode(), headers={"Content-Type": "application/json"})


def open_account_form(
    key: protocol.PrivateKey,
    *,
    htouhui_user_id: str,
    third_party_user_id: str,
    notify_url: str,
    type: str = "0",
    id_card: str | None = None,
    return_url: str = "http://127.0.0.1:9/htouhui/return",
    request_no: str | None = None,
) -> dict[str, str]:
    business = {
        "htouhui_user_id": htouhui_user_id,
        "id_card": id_card or valid_id_card(),
        "real_name": "张三",
        "type": type,
        "third_party_user_id": third_party_user_id,
        "notify_url": notify_url,
        "return_url": return_url,
    }
    if type == "2":
        del business["real_name"]
    return signed_request(business, key, request_no=request_no)


def log_entries(sink: Any) -> list[dict[str, Any]]:
    """The JSON lines a `log_sink` fixture caught."""
    return [json.loads(line) for line in sink.getvalue().splitlines() if line.strip()]


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


def sqs_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="x"
    )


def dump(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Every item of both tables, consistently read and sorted: compare before and after."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for name in (stack.users_table, stack.notifications_table):
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
        while True:
            page = stack.dynamodb.scan(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        tables[name] = sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return tables
