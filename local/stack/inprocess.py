"""The template's functions in this very process, behind the same API Gateway emulation as the local stack.

`python -m stack` runs every function in worker subprocesses (`stack.lambdas`). Tests and the bench want the
handlers in their own process instead (to patch a module, count calls, time an invocation without a pipe): here
each function's module is loaded by the worker's own `load_module`, under the name `fn_<folder>` so that all
of them live side by side; the context is the worker's `LambdaContext`; events come from `stack.apigw` and the
routes from template.yaml. Functions are named by their folder under functions/ (`notify`) or logical id.

The environment is process-wide here: `environment()` gives what the template sets for the functions (they share
Globals.Function.Environment), for the caller to apply (a test's monkeypatch, the bench's own block).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from stack import apigw
from stack.lambdas import invocation_context
from stack.template import Function, Route, Template, load, match
from stack.worker import LambdaContext, load_module

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"

Hook = Callable[[str, dict[str, Any]], None]


@cache
def template(path: Path = TEMPLATE) -> Template:
    return load(path)


class Functions:
    """The functions of one template, loaded in this process on first use."""

    def __init__(self, source: Template | None = None) -> None:
        self.template = source or template()
        self.by_name: dict[str, Function] = {}
        for logical, function in self.template.functions.items():
            self.by_name[logical] = self.by_name[function.code_uri.name] = function
        self.before: Hook | None = None  # called with (folder, event) before each API invocation
        self.invocations: list[tuple[str, str, int]] = []  # (folder, path, status) of each API invocation

    def function(self, name: str) -> Function:
        return self.by_name[name]

    def module(self, name: str, *, fresh: bool = False) -> ModuleType:
        """The function's handler module, loaded once per process (again with `fresh`)."""
        function = self.function(name)
        module_name = f"fn_{function.code_uri.name}"
        if not fresh and module_name in sys.modules:
            return sys.modules[module_name]
        module: ModuleType = load_module(str(function.code_uri), function.handler, module_name)
        return module

    def handler(self, name: str) -> Callable[[Any, LambdaContext], Any]:
        """The function's handler (`lambda_handler`), its module loaded on first use."""
        handler: Callable[[Any, LambdaContext], Any] = getattr(
            self.module(name), self.function(name).handler.rpartition(".")[2]
        )
        return handler

    def context(self, name: str) -> LambdaContext:
        """A context for one invocation of the function (a fresh request id; the deadline from its Timeout)."""
        return LambdaContext(invocation_context(self.function(name)))

    def invoke(self, name: str, event: Any) -> Any:
        """Call the handler as Lambda does: the event and a context for this invocation."""
        return self.handler(name)(event, self.context(name))

    def environment(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables the template gives the functions (the same for all of them), then `overrides`."""
        merged: dict[str, str] = {}
        for function in self.template.functions.values():
            merged.update(function.environment)
        merged.update(overrides or {})
        return merged

    # --- the HTTP API --------------------------------------------------------------------------------------

    def route(self, method: str, path: str, *, auth: str = "AWS_IAM") -> tuple[Route, dict[str, str]]:
        """The template's route for `method path`; a path it does not route gets a route of its own."""
        found = match(self.template.routes, method, path)
        return found if found is not None else (Route(method.upper(), path, "", auth, "unrouted"), {})

    def event(self, request: apigw.HttpRequest, *, auth: str = "AWS_IAM", **options: Any) -> dict[str, Any]:
        """The payload 2.0 event API Gateway makes of `request` (`options`: build_event's request_id, now)."""
        route, parameters = self.route(request.method, request.raw_path, auth=auth)
        return apigw.build_event(request, route, parameters, **options)

    def handle(self, request: apigw.HttpRequest) -> tuple[apigw.HttpResponse, str]:
        """What the local stack's API answers, the function run here (an `apigw.ApiServer` answer)."""
        found = match(self.template.routes, request.method, request.raw_path)
        if found is None:
            return apigw.not_found(), "no route"
        route, parameters = found
        event = apigw.build_event(request, route, parameters)
        name = self.function(route.function).code_uri.name
        if self.before is not None:
            self.before(name, event)
        response = apigw.to_http(self.invoke(name, event))
        self.invocations.append((name, request.raw_path, response.status))
        return response, name


def http_event(
    method: str,
    path: str,
    *,
    body: str | bytes | dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, str] | None = None,
    base64_body: bool = False,
    domain: str = DOMAIN,
    request_id: str | None = None,
    iam: bool = True,
    functions: Functions | None = None,
) -> dict[str, Any]:
    """The event API Gateway makes of an HTTPS request to `domain` (from 203.0.113.10, user agent stack.inprocess).

    A dict body is sent as JSON. The body is base64-encoded when it is bytes or `base64_body` says so, and given
    as text otherwise, whatever its content type: a test chooses which of the two forms a handler is given.
    A path the template does not route gets a route of its own, IAM-authorised unless `iam` is false.
    """
    all_headers = {"host": domain, "user-agent": "stack.inprocess", "x-forwarded-proto": "https"}
    if isinstance(body, dict):
        body = json.dumps(body)
        all_headers["content-type"] = "application/json"
    all_headers.update({name.lower(): value for name, value in (headers or {}).items()})
    raw_query = urlencode(query) if isinstance(query, Mapping) else (query or "")
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    request = apigw.HttpRequest(
        method,
        f"{path}?{raw_query}" if raw_query else path,
        list(all_headers.items()),
        raw,
        source_ip="203.0.113.10",
        scheme="https",
        port=443,
    )
    event = (functions or default_functions()).event(request, auth="AWS_IAM" if iam else "NONE", request_id=request_id)
    if body is not None:
        encoded = base64_body or isinstance(body, bytes)
        event["body"] = base64.b64encode(raw).decode("ascii") if encoded else body
        event["isBase64Encoded"] = encoded
    return event


@cache
def default_functions() -> Functions:
    return Functions()
