"""API Gateway HTTP API, payload format 2.0: the event a request becomes, and the HTTP answer a result becomes.

Rules followed (AWS docs, "Working with AWS Lambda proxy integrations for HTTP APIs"):
- headers are lower-cased and repeated headers joined with commas; `cookie` headers are moved to `cookies`;
- `rawQueryString` is kept as sent; `queryStringParameters` are decoded and repeats joined with commas; both the
  query parameters and the body are left out when empty;
- the body is base64-encoded (`isBase64Encoded: true`) unless its content type is textual (text/*, JSON, XML,
  JavaScript) and it decodes as UTF-8: form posts (`application/x-www-form-urlencoded`) arrive base64-encoded, as
  API Gateway sends them;
- a result with `statusCode` is used as given (`headers`, `cookies` -> Set-Cookie, `body`, `isBase64Encoded`);
  any other JSON result is a 200 `application/json` answer whose body is the result (a string as is, anything else
  serialised); an unusable result is API Gateway's `500 {"message":"Internal Server Error"}`.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from stack.template import ACCOUNT_ID, Route

TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/graphql")
NOT_FOUND = (404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
INTERNAL_ERROR = (500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
SERVICE_UNAVAILABLE = (503, {"content-type": "application/json"}, b'{"message":"Service Unavailable"}')
_ID_ALPHABET = string.ascii_letters + string.digits


def new_request_id() -> str:
    """An id shaped like API Gateway's (`JZz9cgKaoAMEb_Q=`)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(14)) + "="


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in TEXT_TYPES or media.endswith("+json") or media.endswith("+xml")


@dataclass
class HttpRequest:
    method: str
    target: str  # path and query as received, e.g. /users/u1?refresh=true
    headers: list[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    scheme: str = "http"
    port: int = 3000

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(values) if values else None


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def build_event(
    request: HttpRequest,
    route: Route,
    path_parameters: Mapping[str, str],
    *,
    request_id: str | None = None,
    now: datetime | None = None,
    api_id: str = "local",
    caller: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`caller`: the SigV4-verified IAM identity (requestContext.authorizer.iam) of an AWS_IAM route; without it
    (STACK_IAM unset) such a route presents a fixed local IAM user."""
    now = now or datetime.now(UTC)
    request_id = request_id or new_request_id()
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    domain = headers.get("host") or f"127.0.0.1:{request.port}"
    headers.setdefault("host", domain)
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-port", str(request.port))
    headers.setdefault("x-forwarded-proto", request.scheme)
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}")

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default" if route.path == "$default" else route.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = query_parameters(request.raw_query)
    if query:
        event["queryStringParameters"] = query
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": event["routeKey"],
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if route.auth == "AWS_IAM" and caller is not None:
        context["authorizer"] = {"iam": dict(caller)}
    elif route.auth == "AWS_IAM":
        # Nothing verified (STACK_IAM unset): the caller is presented as a local IAM user, as API Gateway would
        # after SigV4.
        context["authorizer"] = {
            "iam": {
                "accessKey": "ASIALOCALSTACKCALLER",
                "accountId": ACCOUNT_ID,
                "callerId": "AIDALOCALSTACKCALLER",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/local-developer",
                "userId": "AIDALOCALSTACKCALLER",
            }
        }
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = {name: unquote(value) for name, value in path_parameters.items()}
    if request.body:
        content_type = headers.get("content-type")
        text: str | None = None
        if is_text(content_type):
            try:
                text = request.body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
            event["isBase64Encoded"] = False
    else:
        event["isBase64Encoded"] = False
    return event


def query_parameters(raw_query: str) -> dict[str, str]:
    """Decoded query parameters, repeated names joined with commas (payload 2.0)."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        found[name] = f"{found[name]},{value}" if name in found else value
    return found


def to_http(result: Any) -> HttpResponse:
    """The HTTP answer API Gateway makes of a Lambda result (payload 2.0 response rules)."""
    if isinstance(result, dict) and "statusCode" in result:
        status = result.get("statusCode")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            return _fixed(INTERNAL_ERROR)
        headers: list[tuple[str, str]] = []
        for name, value in (result.get("headers") or {}).items():
            if not isinstance(value, str | int | float | bool):
                return _fixed(INTERNAL_ERROR)
            headers.append((str(name), _header_text(value)))
        # `multiValueHeaders` is not part of payload 2.0: API Gateway ignores it, and so does this.
        for cookie in result.get("cookies") or []:
            headers.append(("set-cookie", str(cookie)))
        body = result.get("body")
        if body is None:
            raw = b""
        elif not isinstance(body, str):
            return _fixed(INTERNAL_ERROR)
        elif result.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                return _fixed(INTERNAL_ERROR)
        else:
            raw = body.encode("utf-8")
        return HttpResponse(status, headers, raw)
    if isinstance(result, str):
        return HttpResponse(200, [("content-type", "application/json")], result.encode("utf-8"))
    return HttpResponse(
        200, [("content-type", "application/json")], json.dumps(result, separators=(",", ":")).encode("utf-8")
    )


def _header_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fixed(answer: tuple[int, Mapping[str, str], bytes]) -> HttpResponse:
    status, headers, body = answer
    return HttpResponse(status, list(headers.items()), body)


def not_found() -> HttpResponse:
    return _fixed(NOT_FOUND)


def internal_error() -> HttpResponse:
    return _fixed(INTERNAL_ERROR)


def service_unavailable() -> HttpResponse:
    return _fixed(SERVICE_UNAVAILABLE)


def forbidden(message: str, error_type: str) -> HttpResponse:
    """API Gateway's refusal of an IAM-authorized route: 403 `{"message": ...}` and its `x-amzn-ErrorType`."""
    body = json.dumps({"message": message}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return HttpResponse(403, [("content-type", "application/json"), ("x-amzn-errortype", error_type)], body)


Answer = Callable[[HttpRequest], tuple[HttpResponse, str]]  # a request -> the response and a note for the log


class ApiServer(ThreadingHTTPServer):
    """HTTP in, `HttpRequest` to `answer`, its `HttpResponse` out; one log line per request (health checks aside)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], answer: Answer, log: Callable[[str], None] | None = None) -> None:
        self.answer = answer
        self.log = log
        super().__init__(address, _ApiHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiServer

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.monotonic()
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=[(name, value) for name, value in self.headers.items() if name.lower() != "transfer-encoding"],
            body=self._body(),
            source_ip=self.client_address[0],
            protocol=self.request_version,
            port=self.server.server_address[1],
        )
        try:
            response, note = self.server.answer(request)
        except Exception as exc:
            response, note = internal_error(), f"local stack error {type(exc).__name__}"
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(b"" if self.command == "HEAD" else response.body)
        except (BrokenPipeError, ConnectionResetError):
            note += ", client gone"
            self.close_connection = True
        if self.server.log is not None and not request.raw_path.startswith("/_local/health"):
            elapsed = round((time.monotonic() - started) * 1000)
            self.server.log(f"{self.command} {request.raw_path} -> {response.status} in {elapsed} ms ({note})")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Any:
        """Any other method (`TRACE`, `QUERY`, ...) reaches the router too, which answers what API Gateway does
        (`404 {"message":"Not Found"}` where no route declares it) instead of the stdlib's 501 page."""
        if name.startswith("do_") and name[3:]:
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: one line per request goes to `log`."""
