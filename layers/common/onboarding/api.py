"""The HTTP side of the merchant's routes: ONE resolver factory and ONE error mapper.

`create_resolver()` gives a Powertools `APIGatewayHttpResolver` that validates with the pydantic
bodies and answers every failure in API.md's shape
`{"error": {"code", "message", "fields"?, "htouhui_code"?, "request_id"}}` instead of Powertools'
default 422. `error_for(exc)` is the single table from an exception to (HTTP status, code, message):
the handlers never build an error answer themselves.

No error answer ever carries a field's value (it may be personal data): a bad field is named with the
rule it broke.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict

from htouhui.errors import (
    HtouhuiBusy,
    HtouhuiProtocolError,
    HtouhuiRejected,
    HtouhuiSignatureError,
    HtouhuiTimeout,
    HtouhuiUnreachable,
    code_meaning,
)
from htouhui.models import ThirdPartyUserId, field_name, is_loopback_host
from onboarding.errors import Conflict, InvalidInput, StoreUnavailable, UserNotFound
from onboarding.observability import logger

JSON: Final = "application/json; charset=utf-8"
# Our JSON bodies are a few hundred bytes; anything far larger is refused before it is parsed.
MAX_JSON_BODY_BYTES: Final = 16 * 1024
NOTIFY_PATH: Final = "/htouhui/notify"
# The merchant's user id in a route's path: the same rules as in a body (a 400 names the field).
UserIdInPath = Annotated[ThirdPartyUserId, Path(description="the merchant's user id")]
RETURN_PATH: Final = "/htouhui/return"

# --- the error shape (also the OpenAPI schema of every error answer) ----------------------------------


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    reason: str


# Every code an answer can carry: API.md's error table, and the two of our own (docs/handlers.md). The OpenAPI
# document publishes it as an enum, so a generated client can switch on it (tests/unit/test_openapi_fresh.py).
ErrorCode = Literal[
    "invalid_request",
    "not_found",
    "conflict",
    "upstream_error",
    "upstream_busy",
    "upstream_unreachable",
    "upstream_timeout",
    "unavailable",
    "internal_error",
]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    fields: list[FieldError] | None = None
    htouhui_code: str | None = None
    request_id: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    error: ErrorDetail


class OpenAccountAnswer(BaseModel):
    """POST /users/{id}/open-account: the signed form, and a page that submits it."""

    model_config = ConfigDict(frozen=True)

    method: str
    action: str
    fields: dict[str, str]
    html: str


ERROR_RESPONSES: Final[dict[int, Any]] = {
    status: {
        "description": description,
        "content": {"application/json": {"model": ErrorResponse}},
    }
    for status, description in (
        (400, "invalid_request: bad JSON, or a field breaks a rule (each bad field listed, never its value)"),
        (404, "not_found: unknown third_party_user_id"),
        (409, "conflict: Htouhui 2001/2003/2004/3001, registration first, or registration in progress"),
        (502, "upstream_error: Htouhui answered an error code, a bad signature or something unreadable"),
        (
            503,
            "upstream_busy: Htouhui said 9999 after retries; upstream_unreachable: Htouhui could not be reached;"
            " unavailable: our storage",
        ),
        (504, "upstream_timeout: no answer from Htouhui in time, after retries"),
    )
}


@dataclass(frozen=True)
class ApiError:
    status: int
    code: ErrorCode
    message: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    htouhui_code: str | None = None


def _validation(exc: RequestValidationError) -> ApiError:
    if any(_is_response(error) for error in exc.errors()):
        return INTERNAL_ERROR  # our answer broke its own model: a bug, never the caller's fault
    return ApiError(400, "invalid_request", "the request is invalid", validation_fields(exc.errors()))


def _rejected(exc: HtouhuiRejected) -> ApiError:
    if exc.is_conflict:
        return ApiError(409, "conflict", _htouhui_message(exc.code), htouhui_code=exc.code)
    return ApiError(502, "upstream_error", _htouhui_message(exc.code), htouhui_code=exc.code)


INTERNAL_ERROR: Final = ApiError(500, "internal_error", "internal error")
_NOT_UTF8_JSON: Final = ApiError(
    400, "invalid_request", "the request is invalid", [("body", "body must be UTF-8 JSON")]
)
# Exception class -> its answer. A failure takes the entry of the most specific class it is an instance of
# (the nearest in its MRO), so the order of the table does not matter: HtouhuiUnreachable (a HtouhuiTimeout)
# is 503 upstream_unreachable, any other HtouhuiTimeout 504.
ERRORS: Final[dict[type[Exception], Callable[[Any], ApiError]]] = {
    ResponseValidationError: lambda _: INTERNAL_ERROR,
    RequestValidationError: _validation,
    RequestUnsupportedContentType: lambda _: ApiError(
        400, "invalid_request", "the request is invalid", [("body", "content type must be JSON")]
    ),
    UnicodeDecodeError: lambda _: _NOT_UTF8_JSON,
    binascii.Error: lambda _: _NOT_UTF8_JSON,
    InvalidInput: lambda exc: ApiError(400, "invalid_request", "the request is invalid", list(exc.fields)),
    UserNotFound: lambda _: ApiError(404, "not_found", "unknown third_party_user_id"),
    NotFoundError: lambda _: ApiError(404, "not_found", "no such route"),
    Conflict: lambda exc: ApiError(409, "conflict", str(exc)),
    HtouhuiRejected: _rejected,
    HtouhuiSignatureError: lambda _: ApiError(502, "upstream_error", "Htouhui's answer failed signature verification"),
    HtouhuiProtocolError: lambda _: ApiError(502, "upstream_error", "Htouhui's answer could not be read"),
    HtouhuiBusy: lambda exc: ApiError(503, "upstream_busy", "Htouhui is busy; try again later", htouhui_code=exc.code),
    HtouhuiUnreachable: lambda _: ApiError(
        503, "upstream_unreachable", "Htouhui could not be reached; try again later"
    ),
    HtouhuiTimeout: lambda _: ApiError(504, "upstream_timeout", "no answer from Htouhui in time"),
    StoreUnavailable: lambda _: ApiError(503, "unavailable", "storage is unavailable; try again later"),
}


def error_for(exc: Exception) -> ApiError:
    """The one table from a failure to API.md's answer: the most specific class's entry wins."""
    for cls in type(exc).__mro__:
        build = ERRORS.get(cls)
        if build is not None:
            return build(exc)
    return INTERNAL_ERROR


def _is_response(error: Any) -> bool:
    location: tuple[Any, ...] = tuple(error.get("loc", ())) if isinstance(error, dict) else ()
    return bool(location) and location[0] == "response"


def _htouhui_message(code: str) -> str:
    # Htouhui's own message may echo a value; ours never does.
    return f"Htouhui answered {code}: {code_meaning(code)[1]}"


_REASONS: Final = {
    "json_invalid": "body must be valid JSON",
    "model_attributes_type": "body must be a JSON object",
    "model_type": "body must be a JSON object",
    "dict_type": "body must be a JSON object",
    "missing": "field required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
}


def validation_fields(errors: Any) -> list[tuple[str, str]]:
    """(field, reason) for each pydantic error: the rule's message, never the rejected value."""
    found: list[tuple[str, str]] = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        kind = str(error.get("type", ""))
        if location and location[0] in ("body", "path", "query", "header", "cookie"):
            location = location[1:]
        if kind == "json_invalid":
            location = []
        name = field_name(location, "body")
        reason = _REASONS.get(kind) or str(error.get("msg") or kind) or "invalid"
        if (name, reason) not in found:
            found.append((name, reason))
    return found


def request_id(app: APIGatewayHttpResolver) -> str:
    try:
        return str(app.current_event.request_context.request_id or "")
    except (AttributeError, KeyError, TypeError):
        return ""


def error_body(error: ApiError, request_id_: str) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.fields:
        detail["fields"] = [{"field": name, "reason": reason} for name, reason in error.fields]
    if error.htouhui_code:
        detail["htouhui_code"] = error.htouhui_code
    detail["request_id"] = request_id_
    return {"error": detail}


def error_response(error: ApiError, request_id_: str) -> Response[Any]:
    headers = {"Cache-Control": "no-store"}
    if error.status in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT):
        headers["Retry-After"] = "1"
    return Response(
        status_code=error.status,
        content_type=JSON,
        body=json.dumps(error_body(error, request_id_), ensure_ascii=False),
        headers=headers,
    )


def map_exception(app: APIGatewayHttpResolver, exc: Exception) -> Response[Any]:
    error = error_for(exc)
    extra: dict[str, Any] = {
        "error_code": error.code,
        "http_status": error.status,
        "exception_name": type(exc).__name__,
    }
    if error.htouhui_code:
        extra["htouhui_code"] = error.htouhui_code
    if error.fields:
        extra["fields"] = [name for name, _ in error.fields]
    if error.status >= 500 and error.code == "internal_error":
        logger.exception("unexpected failure", extra=extra)
    elif error.status >= 500:
        logger.error("request failed", extra=extra)
    else:
        logger.info("request refused", extra=extra)
    return error_response(error, request_id(app))


# --- the request body: JSON only, small, UTF-8, unambiguous ---------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise _DuplicateKey("a key appears more than once")
    return dict(pairs)


def strict_json_loads(text: str) -> Any:
    """json.loads that refuses repeated keys, and turns every way of failing into a JSONDecodeError.

    Deep nesting (RecursionError) and integers of thousands of digits (ValueError) would otherwise escape
    as a 500; a repeated key would silently keep its last value (which did the caller mean?).
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_object)
    except json.JSONDecodeError:
        raise
    except _DuplicateKey as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None
    except (RecursionError, ValueError) as exc:
        raise json.JSONDecodeError(f"unreadable JSON: {type(exc).__name__}", text, 0) from None


def _body_error(reason: str) -> RequestValidationError:
    return RequestValidationError([{"type": "body_refused", "loc": ("body",), "msg": reason, "input": {}}])


class StrictBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, reading the body only as API.md allows: `application/json` (or no
    Content-Type), at most MAX_JSON_BODY_BYTES, UTF-8. Powertools would also read form and multipart bodies
    into the JSON models; a Content-Type that is not JSON is refused instead."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped

    def _get_body(self, app: Any) -> dict[str, Any]:
        content_type = str(app.current_event.headers.get("content-type", "") or "")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in ("", "application/json"):
            raise RequestUnsupportedContentType("Unsupported content type", errors=[])
        raw = app.current_event.body or ""
        if len(raw) > MAX_JSON_BODY_BYTES * 4 // 3 + 4:  # also bounds a base64-encoded body
            raise _body_error("body too large")
        text = app.current_event.decoded_body or ""
        if len(text.encode("utf-8", errors="surrogatepass")) > MAX_JSON_BODY_BYTES:
            raise _body_error("body too large")
        return self._parse_json_data(app)


def create_resolver(*, enable_validation: bool = True) -> APIGatewayHttpResolver:
    """The resolver every HTTP function uses, with the one error mapper installed."""
    app = APIGatewayHttpResolver(
        enable_validation=enable_validation,
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR if enable_validation else None,
        json_body_deserializer=strict_json_loads,
    )
    if enable_validation:
        app._request_validation_middleware = StrictBodyValidation()

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
    def _any(exc: Exception) -> Response[Any]:
        return map_exception(app, exc)

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response[Any]:
        return map_exception(app, exc)

    return app


# --- request facts the handlers need ------------------------------------------------------------------


def header(app: APIGatewayHttpResolver, name: str) -> str:
    return str(app.current_event.headers.get(name.lower(), "") or "")


def own_base_url(app: APIGatewayHttpResolver, public_base_url: str | None) -> str:
    """PUBLIC_BASE_URL, else https and the host this request came to.

    Plain http only when X-Forwarded-Proto says so and the host is a loopback one (the local stack): a
    caller must not be able to downgrade the notify_url we hand Htouhui.
    """
    if public_base_url:
        return public_base_url.rstrip("/")
    domain = str(app.current_event.request_context.domain_name or "") or header(app, "host")
    forwarded = header(app, "x-forwarded-proto").split(",")[0].strip().lower()
    local = is_loopback_host(urlsplit(f"//{domain}").hostname or "")
    scheme = "http" if forwarded == "http" and local else "https"
    return f"{scheme}://{domain}"


def own_host(base_url: str) -> str:
    """This stack's `host[:port]`, as an allow-list entry is written."""
    return urlsplit(base_url).netloc.lower()


def wants_html(app: APIGatewayHttpResolver) -> bool:
    """True when the caller asked for text/html (the page itself) rather than JSON."""
    accept = header(app, "accept").lower()
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index("application/json")
