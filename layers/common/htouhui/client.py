"""The httpx client for Htouhui's server-to-server interfaces: register and query.

Every answer's signature is verified before any field of it is believed. Both calls are safe to
repeat (PROTOCOL.md §4), so connection errors, time-outs, 5xx and `9999` are retried with a fresh
`request_no`, exponential backoff and full jitter, within a bounded number of attempts and time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from htouhui import protocol
from htouhui.errors import (
    BUSY_CODE,
    HtouhuiBusy,
    HtouhuiError,
    HtouhuiProtocolError,
    HtouhuiRejected,
    HtouhuiSignatureError,
    HtouhuiTimeout,
    HtouhuiUnreachable,
)
from htouhui.models import (
    QueryRequest,
    QueryResponse,
    RegisterRequest,
    RegisterResponse,
    ResponseCommon,
    field_rules,
)
from htouhui.options import (  # re-exported (__all__): they live where the settings import them without the client
    DEFAULT_QUERY_PATH,
    ENVIRONMENTS,
    OPEN_ACCOUNT_PATH,
    REGISTER_PATH,
    CallRecord,
    ClientOptions,
    RetryPolicy,
    Timeouts,
)

if TYPE_CHECKING:  # httpx is imported when a client is made: settings and records need none of it (cold start)
    import httpx

__all__ = [
    "DEFAULT_QUERY_PATH",
    "ENVIRONMENTS",
    "OPEN_ACCOUNT_PATH",
    "REGISTER_PATH",
    "CallRecord",
    "ClientOptions",
    "HtouhuiClient",
    "RetryPolicy",
    "Timeouts",
]
_Answer = TypeVar("_Answer", bound=ResponseCommon)
logger = logging.getLogger(__name__)


class HtouhuiClient:
    def __init__(
        self,
        options: ClientOptions,
        merchant_key: protocol.PrivateKey,
        htouhui_keys: Sequence[protocol.PublicKey],
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_attempt: Callable[[CallRecord], None] | None = None,
    ) -> None:
        if not htouhui_keys:
            raise ValueError("at least one Htouhui public key is required")
        self.options = options
        self._merchant_key = merchant_key
        self._htouhui_keys = list(htouhui_keys)
        self._sleep = sleep
        self._clock = clock
        self._on_attempt = on_attempt
        import httpx

        self._http = httpx.Client(
            base_url=options.base_url,
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def register(self, request: RegisterRequest) -> RegisterResponse:
        return self._call("register", REGISTER_PATH, request.fields(), RegisterResponse)

    def query(self, request: QueryRequest) -> QueryResponse:
        return self._call("query", self.options.query_path, request.fields(), QueryResponse)

    def _call(self, interface: str, path: str, business: Mapping[str, str], model: type[_Answer]) -> _Answer:
        retry = self.options.retry
        deadline = self._clock() + retry.total_seconds
        attempt = 0
        while True:
            attempt += 1
            started = self._clock()
            try:
                answer = self._attempt(path, business, model, deadline)
            except HtouhuiError as failure:
                self._record(interface, attempt, started, _outcome(failure))
                if not _retryable(failure):
                    raise
                delay = retry.delay(attempt)
                if attempt >= retry.max_attempts or self._clock() + delay >= deadline:
                    raise
                self._sleep(delay)
            else:
                self._record(interface, attempt, started, answer.code)
                return answer

    def _attempt(self, path: str, business: Mapping[str, str], model: type[_Answer], deadline: float) -> _Answer:
        profile = self.options.profile
        common = protocol.request_common_fields(self.options.partner_id, profile=profile)
        message = protocol.signed({**business, **common}, self._merchant_key, profile)
        remaining = max(deadline - self._clock(), 0.001)
        timeouts = self.options.timeouts
        import httpx

        timeout = httpx.Timeout(
            connect=min(timeouts.connect, remaining),
            read=min(timeouts.read, remaining),
            write=min(timeouts.read, remaining),
            pool=min(timeouts.connect, remaining),
        )
        try:
            if profile.request_encoding == "form":
                response = self._http.post(path, data=message, timeout=timeout)
            else:
                response = self._http.post(path, json=message, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise HtouhuiTimeout(f"no answer from Htouhui within {timeout.read}s") from exc
        except httpx.ConnectError as exc:
            raise HtouhuiUnreachable(f"could not connect to Htouhui: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise _ConnectionFailed(f"could not reach Htouhui: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise HtouhuiBusy(f"Htouhui answered HTTP {response.status_code}")
        return self._read(response, message, model)

    def _read(self, response: httpx.Response, sent: Mapping[str, str], model: type[_Answer]) -> _Answer:
        profile = self.options.profile
        body = _json_object_of_strings(response)
        failure = protocol.verification_failure(body, self._htouhui_keys, profile)
        if failure is not None:
            raise HtouhuiSignatureError(f"Htouhui's answer failed signature verification: {failure}")
        for echoed in (profile.partner_field, profile.request_field):
            if body.get(echoed) != sent[echoed]:
                raise _broken_answer([(echoed, "not_echoed")])
        code = body.get("code") or ""
        if not profile.is_result_code(code):
            raise _broken_answer([("code", "not_a_result_code")])
        if code == BUSY_CODE:
            raise HtouhuiBusy("Htouhui is busy (9999)", code=code)
        if code != profile.success_code:
            raise HtouhuiRejected(code, body.get("message") or "")
        try:
            return model.read(profile.internal(body))
        except ValidationError as exc:
            raise _broken_answer(field_rules(exc, whole="answer")) from None

    def _record(self, interface: str, attempt: int, started: float, outcome: str) -> None:
        if self._on_attempt is not None:
            self._on_attempt(CallRecord(interface, attempt, self._clock() - started, outcome))


class _ConnectionFailed(HtouhuiTimeout):
    """The connection could not be made or broke: to the caller, no answer in time."""


def _retryable(failure: HtouhuiError) -> bool:
    return isinstance(failure, HtouhuiTimeout | HtouhuiBusy)


def _outcome(failure: HtouhuiError) -> str:
    if isinstance(failure, HtouhuiRejected):
        return failure.code
    if isinstance(failure, HtouhuiBusy):
        return failure.code or "http_5xx"
    if isinstance(failure, _ConnectionFailed | HtouhuiUnreachable):
        return "connection"
    if isinstance(failure, HtouhuiTimeout):
        return "timeout"
    if isinstance(failure, HtouhuiSignatureError):
        return "signature"
    return "unreadable"


def _json_object_of_strings(response: httpx.Response) -> dict[str, str | None]:
    """The answer's JSON object: every value a string or null (null is what Java writes for "absent", §9)."""
    try:
        body: Any = response.json()
    except ValueError:
        raise _broken_answer([("answer", f"not_json_http_{response.status_code}")]) from None
    if not isinstance(body, dict):
        raise _broken_answer([("answer", "not_a_json_object")])
    not_text = sorted(name for name, value in body.items() if value is not None and not isinstance(value, str))
    if not_text:
        raise _broken_answer([(protocol.loggable_name(name), "not_a_string") for name in not_text])
    return body


def _broken_answer(fields: list[tuple[str, str]]) -> HtouhuiProtocolError:
    """The error for an answer we cannot read, logged with which field broke which rule (never a value)."""
    logger.warning(
        "htouhui answer breaks the protocol",
        extra={"reason": "protocol_error", "fields": [f"{field}: {rule}" for field, rule in fields]},
    )
    described = ", ".join(f"{field} ({rule})" for field, rule in fields)
    return HtouhuiProtocolError(f"Htouhui's answer breaks the protocol in: {described}", fields=fields)
