"""Load each `functions/<name>/app.py` under its own module name, and build the events they receive.

Every function's module is called `app` in Lambda; here each is loaded as `fn_<name>` so that all seven
live side by side in one test process. Events follow API Gateway HTTP API payload format 2.0.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
EVENTS = ROOT / "events"
FUNCTION_NAMES = (
    "register",
    "open_account",
    "query_user",
    "notify",
    "reconcile_dispatch",
    "reconcile_worker",
    "publish_status",
)


def load_function(name: str, *, fresh: bool = False) -> ModuleType:
    """`functions/<name>/app.py` as module `fn_<name>` (loaded once per process unless fresh)."""
    module_name = f"fn_{name}"
    if not fresh and module_name in sys.modules:
        return sys.modules[module_name]
    path = FUNCTIONS / name / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeContext:
    """The attributes of a LambdaContext that Powertools reads."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/28/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def http_event(
    method: str,
    path: str,
    *,
    route: str | None = None,
    body: str | bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    base64_body: bool = False,
    domain: str = "abc123.execute-api.us-east-1.amazonaws.com",
    request_id: str | None = None,
    iam: bool = True,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as the service builds it."""
    all_headers = {"host": domain, "user-agent": "pytest", "x-forwarded-proto": "https"}
    if isinstance(body, dict):
        body = json.dumps(body)
        all_headers["content-type"] = "application/json"
    all_headers.update({name.lower(): value for name, value in (headers or {}).items()})
    raw_query = urlencode(query) if isinstance(query, dict) else (query or "")
    encoded = base64_body or isinstance(body, bytes)
    if isinstance(body, bytes):
        text_body: str | None = base64.b64encode(body).decode("ascii")
    elif body is not None and base64_body:
        text_body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    else:
        text_body = body
    request_id = request_id or base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode().rstrip("=")
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route or path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "pytest",
            },
            "requestId": request_id,
            "routeKey": f"{method} {route or path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if iam:
        event["requestContext"]["authorizer"] = {
            "iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE",
                "principalOrgId": None,
                "userArn": "arn:aws:iam::123456789012:user/merchant-backend",
                "userId": "AIDAEXAMPLE",
            }
        }
    if raw_query:
        from urllib.parse import parse_qs

        event["queryStringParameters"] = {
            name: ",".join(values) for name, values in parse_qs(raw_query, keep_blank_values=True).items()
        }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if text_body is not None:
        event["body"] = text_body
    return event


def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Call a function's lambda_handler the way Lambda does."""
    result: dict[str, Any] = load_function(name).lambda_handler(event, FakeContext(function_name=name))
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
    cookies_or_multi = response.get("multiValueHeaders") or {}
    for key, values in cookies_or_multi.items():
        if key.lower() == name.lower():
            return str(values[0])
    return None
