"""HtouhuiClient against an httpx mock transport that checks our signature and signs with Htouhui's test key.

No real waiting: `sleep` and `clock` are injected, and a time-out advances the fake clock by the time-out
the client asked for. One test at the end uses a real local HTTP server to prove the real time-out path.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from htouhui import options as options_module
from htouhui import protocol
from htouhui.client import (
    DEFAULT_QUERY_PATH,
    REGISTER_PATH,
    CallRecord,
    ClientOptions,
    HtouhuiClient,
    RetryPolicy,
    Timeouts,
)
from htouhui.errors import (
    HtouhuiBusy,
    HtouhuiError,
    HtouhuiProtocolError,
    HtouhuiRejected,
    HtouhuiSignatureError,
    HtouhuiTimeout,
)
from htouhui.models import QueryRequest, RegisterRequest

PARTNER = "P2026000001"
BASE_URL = "https://new-uat.test.htouhui.com"
REGISTER = RegisterRequest(mobile="13800138000", password="Pa55word", third_party_user_id="u-10001")
QUERY = QueryRequest(id_card="11010519491231002X", third_party_user_id="u-10001")
Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class FakeHtouhui:
    """Checks every request like Htouhui would, then plays the scripted answers (the last one repeats)."""

    def __init__(
        self, merchant_public: protocol.PublicKey, htouhui_private: protocol.PrivateKey, clock: FakeClock
    ) -> None:
        self.merchant_public = merchant_public
        self.htouhui_private = htouhui_private
        self.clock = clock
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.timeouts: list[dict[str, float]] = []
        self.script: list[Handler] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        assert isinstance(body, dict) and all(isinstance(v, str) for v in body.values())
        # The merchant's signature must verify with the merchant's public key, as Htouhui checks it.
        assert protocol.verify(body, self.merchant_public), "the client sent a badly signed request"
        assert body["partner_id"] == PARTNER and body["version"] == "1.0" and body["sign_type"] == "RSA2"
        assert protocol.REQUEST_NO_PATTERN.fullmatch(body["request_no"])
        protocol.parse_china_timestamp(body["timestamp"])
        self.requests.append((request.url.path, body))
        self.timeouts.append(request.extensions["timeout"])
        handler = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return handler(request, body)

    # --- answers ---

    def answer(self, code: str = "0000", message: str = "成功", **extra: str) -> Handler:
        def handle(request: httpx.Request, body: dict[str, str]) -> httpx.Response:
            fields = self.echo(body, code=code, message=message, **extra)
            return httpx.Response(200, json=protocol.signed(fields, self.htouhui_private))

        return handle

    def echo(self, body: dict[str, str], **fields: str) -> dict[str, str]:
        answer = {
            "partner_id": body["partner_id"],
            "request_no": body["request_no"],
            "timestamp": protocol.china_timestamp(),
            "third_party_user_id": body["third_party_user_id"],
            **fields,
        }
        return {name: value for name, value in answer.items() if value is not None}

    def registered(self) -> Handler:
        return self.answer(htouhui_user_id="10000000001")

    def time_out(self) -> Handler:
        def handle(request: httpx.Request, body: dict[str, str]) -> httpx.Response:
            self.clock.now += request.extensions["timeout"]["read"]
            raise httpx.ReadTimeout("timed out", request=request)

        return handle

    def refuse_connection(self) -> Handler:
        def handle(request: httpx.Request, body: dict[str, str]) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        return handle

    def raw(self, status: int, content: bytes | str, content_type: str = "application/json") -> Handler:
        def handle(request: httpx.Request, body: dict[str, str]) -> httpx.Response:
            return httpx.Response(status, content=content, headers={"content-type": content_type})

        return handle

    def custom(self, make: Callable[[dict[str, str]], Any]) -> Handler:
        def handle(request: httpx.Request, body: dict[str, str]) -> httpx.Response:
            return httpx.Response(200, json=make(body))

        return handle


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(
    merchant_public_key: protocol.PublicKey, htouhui_private_key: protocol.PrivateKey, clock: FakeClock
) -> FakeHtouhui:
    return FakeHtouhui(merchant_public_key, htouhui_private_key, clock)


@pytest.fixture
def worst_case_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The jitter always picks the longest delay, so the bounds are checked at their worst."""
    monkeypatch.setattr(options_module.random, "uniform", lambda low, high: high)


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
def make_client(
    fake: FakeHtouhui,
    clock: FakeClock,
    records: list[CallRecord],
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
) -> Iterator[Callable[..., HtouhuiClient]]:
    made: list[HtouhuiClient] = []

    def make(
        *, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None, query_path: str = DEFAULT_QUERY_PATH
    ) -> HtouhuiClient:
        options = ClientOptions(
            PARTNER,
            BASE_URL,
            query_path=query_path,
            timeouts=timeouts or Timeouts(connect=2.0, read=5.0),
            retry=retry or RetryPolicy(max_attempts=3, total_seconds=12.0),
        )
        made.append(
            HtouhuiClient(
                options,
                merchant_private_key,
                [htouhui_public_key],
                transport=httpx.MockTransport(fake),
                sleep=clock.sleep,
                clock=clock,
                on_attempt=records.append,
            )
        )
        return made[-1]

    yield make
    for client in made:
        client.close()


# --- success ---------------------------------------------------------------------------------------


def test_register_success(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [fake.registered()]
    answer = make_client().register(REGISTER)
    assert answer.code == "0000" and answer.htouhui_user_id == "10000000001"
    assert answer.third_party_user_id == "u-10001"
    ((path, body),) = fake.requests
    assert path == REGISTER_PATH
    assert {k: body[k] for k in ("mobile", "password", "third_party_user_id")} == REGISTER.fields()
    assert set(body) == {*REGISTER.fields(), "partner_id", "request_no", "timestamp", "version", "sign_type", "sign"}


def test_register_without_password_sends_no_password_field(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.registered()]
    make_client().register(RegisterRequest(mobile="13800138000", third_party_user_id="u-1"))
    assert "password" not in fake.requests[0][1]


def test_query_success(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [
        fake.answer(htouhui_user_id="10000000001", status="3", borrower="0", bank_card_number="6222020200112233445")
    ]
    answer = make_client().query(QUERY)
    assert (answer.status, answer.borrower, answer.bank_card_number) == ("3", "0", "6222020200112233445")
    ((path, body),) = fake.requests
    assert path == DEFAULT_QUERY_PATH
    assert body["id_card"] == "11010519491231002X"


def test_query_path_is_configurable(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [fake.answer(status="0", borrower="0")]
    make_client(query_path="/openapi/v2/user/info").query(QUERY)
    assert fake.requests[0][0] == "/openapi/v2/user/info"


def test_a_client_needs_a_htouhui_key(merchant_private_key: protocol.PrivateKey) -> None:
    with pytest.raises(ValueError, match="Htouhui public key"):
        HtouhuiClient(ClientOptions(PARTNER, BASE_URL), merchant_private_key, [])


# --- every result code of PROTOCOL.md §5 ---------------------------------------------------------------

REJECTIONS = {
    "1001": False,
    "1002": False,
    "1003": False,
    "1004": False,
    "2001": True,
    "2002": False,
    "2003": True,
    "2004": True,
    "3001": True,
}


@pytest.mark.parametrize(("code", "is_conflict"), REJECTIONS.items())
@pytest.mark.parametrize("interface", ["register", "query"])
def test_every_error_code_is_a_rejection_and_not_retried(
    code: str,
    is_conflict: bool,
    interface: str,
    fake: FakeHtouhui,
    make_client: Callable[..., HtouhuiClient],
    records: list[CallRecord],
) -> None:
    fake.script = [fake.answer(code=code, message=f"错误 {code}")]
    client = make_client()
    with pytest.raises(HtouhuiRejected) as caught:
        client.register(REGISTER) if interface == "register" else client.query(QUERY)
    assert caught.value.code == code
    assert caught.value.message == f"错误 {code}"
    assert caught.value.is_conflict is is_conflict
    assert len(fake.requests) == 1
    assert [(r.interface, r.attempt, r.outcome) for r in records] == [(interface, 1, code)]


def test_9999_every_time_is_busy_after_max_attempts(
    fake: FakeHtouhui,
    clock: FakeClock,
    make_client: Callable[..., HtouhuiClient],
    records: list[CallRecord],
    worst_case_jitter: None,
) -> None:
    fake.script = [fake.answer(code="9999", message="系统繁忙")]
    with pytest.raises(HtouhuiBusy) as caught:
        make_client(retry=RetryPolicy(max_attempts=4, total_seconds=60, base_delay=0.5, max_delay=1.5)).register(
            REGISTER
        )
    assert caught.value.code == "9999"
    assert len(fake.requests) == 4
    assert clock.sleeps == [0.5, 1.0, 1.5]  # exponential, capped at max_delay
    assert [r.outcome for r in records] == ["9999"] * 4
    assert [r.attempt for r in records] == [1, 2, 3, 4]
    numbers = [body["request_no"] for _, body in fake.requests]
    assert len(set(numbers)) == 4, "each retry must carry a fresh request_no"


def test_9999_then_success(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [fake.answer(code="9999", message="忙"), fake.registered()]
    assert make_client().register(REGISTER).htouhui_user_id == "10000000001"
    assert len(fake.requests) == 2


# --- answers that cannot be believed --------------------------------------------------------------------


def test_an_answer_signed_with_the_wrong_key_is_a_signature_error(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient], merchant_private_key: protocol.PrivateKey
) -> None:
    fake.script = [
        fake.custom(
            lambda body: protocol.signed(
                fake.echo(body, code="0000", message="ok", htouhui_user_id="1"), merchant_private_key
            )
        )
    ]
    with pytest.raises(HtouhuiSignatureError):
        make_client().register(REGISTER)
    assert len(fake.requests) == 1


def test_a_tampered_answer_is_a_signature_error(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient], htouhui_private_key: protocol.PrivateKey
) -> None:
    def tampered(body: dict[str, str]) -> dict[str, str]:
        answer = protocol.signed(fake.echo(body, code="2001", message="已注册"), htouhui_private_key)
        return {**answer, "code": "0000", "htouhui_user_id": "10000000666"}

    fake.script = [fake.custom(tampered)]
    with pytest.raises(HtouhuiSignatureError):
        make_client().register(REGISTER)


def test_an_unsigned_answer_is_a_signature_error(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [fake.custom(lambda body: fake.echo(body, code="0000", message="ok", htouhui_user_id="1"))]
    with pytest.raises(HtouhuiSignatureError):
        make_client().register(REGISTER)


def test_an_unsigned_error_answer_is_not_believed_either(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.custom(lambda body: fake.echo(body, code="2003", message="手机号已注册"))]
    with pytest.raises(HtouhuiSignatureError):
        make_client().register(REGISTER)


@pytest.mark.parametrize(
    "content",
    [b"<html>502 Bad Gateway</html>", b"", b'{"code": "0000"', "成功".encode("gbk")],
    ids=["html", "empty", "truncated", "not-utf8"],
)
def test_an_answer_that_is_not_json_is_a_protocol_error(
    content: bytes, fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient], records: list[CallRecord]
) -> None:
    fake.script = [fake.raw(200, content)]
    with pytest.raises(HtouhuiProtocolError, match=r"answer \(not_json_http_200\)"):
        make_client().register(REGISTER)
    assert len(fake.requests) == 1
    assert [r.outcome for r in records] == ["unreadable"]


@pytest.mark.parametrize(
    "content",
    [b"[]", b'"0000"', b"null", b'{"code": 0}', b'{"code": "0000", "nested": {"a": "b"}}'],
)
def test_json_that_is_not_an_object_of_strings_is_a_protocol_error(
    content: bytes, fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.raw(200, content)]
    with pytest.raises(HtouhuiProtocolError, match=r"not_a_json_object|not_a_string") as caught:
        make_client().register(REGISTER)
    assert caught.value.fields and all(rule in ("not_a_json_object", "not_a_string") for _, rule in caught.value.fields)


def test_json_null_is_an_absent_value_so_an_unsigned_null_answer_fails_its_signature(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.raw(200, b'{"code": null}')]
    with pytest.raises(HtouhuiSignatureError, match="unknown sign_type"):
        make_client().register(REGISTER)


@pytest.mark.parametrize("field", ["partner_id", "request_no"])
def test_an_answer_that_does_not_echo_partner_id_or_request_no_is_a_protocol_error(
    field: str,
    fake: FakeHtouhui,
    make_client: Callable[..., HtouhuiClient],
    htouhui_private_key: protocol.PrivateKey,
) -> None:
    def other(body: dict[str, str]) -> dict[str, str]:
        fields = fake.echo(body, code="0000", message="ok", htouhui_user_id="1")
        return protocol.signed({**fields, field: "OTHER123"}, htouhui_private_key)

    fake.script = [fake.custom(other)]
    with pytest.raises(HtouhuiProtocolError, match=field):
        make_client().register(REGISTER)
    assert len(fake.requests) == 1


def test_a_signed_success_that_breaks_the_model_names_the_field_not_the_value(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.answer(status="7", borrower="0", bank_card_number="6222020200112233445")]
    with pytest.raises(HtouhuiProtocolError) as caught:
        make_client().query(QUERY)
    assert "status" in str(caught.value)
    assert "6222020200112233445" not in str(caught.value) and "7" not in str(caught.value).split(":")[-1]


@pytest.mark.parametrize("code", [None, "", "0", "00000", "OK", "０００１"])
def test_a_signed_answer_without_a_result_code_is_a_protocol_error(
    code: str | None,
    fake: FakeHtouhui,
    make_client: Callable[..., HtouhuiClient],
    htouhui_private_key: protocol.PrivateKey,
) -> None:
    def answer(body: dict[str, str]) -> dict[str, str]:
        fields: dict[str, str | None] = {**fake.echo(body, message="?", htouhui_user_id="1"), "code": code}
        return protocol.signed(fields, htouhui_private_key)

    fake.script = [fake.custom(answer)]
    with pytest.raises(HtouhuiProtocolError, match=r"code \(not_a_result_code\)"):
        make_client().register(REGISTER)


def test_a_success_without_htouhui_user_id_is_a_protocol_error(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.answer()]
    with pytest.raises(HtouhuiProtocolError, match="htouhui_user_id"):
        make_client().register(REGISTER)


def test_an_answer_under_the_next_key_verifies_during_rotation(
    fake: FakeHtouhui,
    merchant_private_key: protocol.PrivateKey,
    merchant_public_key: protocol.PublicKey,
    htouhui_public_key: protocol.PublicKey,
    clock: FakeClock,
) -> None:
    next_private = protocol.generate_private_key()
    fake.htouhui_private = next_private
    fake.script = [fake.registered()]
    options = ClientOptions(PARTNER, BASE_URL)
    transport = httpx.MockTransport(fake)
    old_only = HtouhuiClient(options, merchant_private_key, [htouhui_public_key], transport=transport, clock=clock)
    with pytest.raises(HtouhuiSignatureError):
        old_only.register(REGISTER)
    both = HtouhuiClient(
        options, merchant_private_key, [htouhui_public_key, next_private.public_key()], transport=transport, clock=clock
    )
    assert both.register(REGISTER).htouhui_user_id == "10000000001"


# --- retries ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_success(
    status: int, fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient], records: list[CallRecord]
) -> None:
    fake.script = [fake.raw(status, b"<html>oops</html>", "text/html"), fake.registered()]
    assert make_client().register(REGISTER).htouhui_user_id == "10000000001"
    first, second = (body["request_no"] for _, body in fake.requests)
    assert first != second, "the retry must carry a fresh request_no"
    assert [r.outcome for r in records] == ["http_5xx", "0000"]


def test_5xx_every_time_is_busy(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [fake.raw(503, b"")]
    with pytest.raises(HtouhuiBusy) as caught:
        make_client().register(REGISTER)
    assert caught.value.code is None
    assert len(fake.requests) == 3


def test_4xx_is_not_retried(fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]) -> None:
    fake.script = [fake.raw(404, b"<html>not found</html>", "text/html"), fake.registered()]
    with pytest.raises(HtouhuiProtocolError):
        make_client().register(REGISTER)
    assert len(fake.requests) == 1


def test_a_time_out_then_success(
    fake: FakeHtouhui, clock: FakeClock, make_client: Callable[..., HtouhuiClient], records: list[CallRecord]
) -> None:
    fake.script = [fake.time_out(), fake.registered()]
    answer = make_client().register(REGISTER)
    assert answer.htouhui_user_id == "10000000001"
    first, second = (body["request_no"] for _, body in fake.requests)
    assert first != second
    assert answer.request_no == second
    assert [r.outcome for r in records] == ["timeout", "0000"]
    assert records[0].seconds == 5.0  # the read time-out, measured on the injected clock
    assert fake.timeouts[0]["connect"] == 2.0 and fake.timeouts[0]["read"] == 5.0


def test_a_connection_error_then_success(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient], records: list[CallRecord]
) -> None:
    fake.script = [fake.refuse_connection(), fake.registered()]
    assert make_client().register(REGISTER).htouhui_user_id == "10000000001"
    assert [r.outcome for r in records] == ["connection", "0000"]


def test_connection_errors_every_time_are_a_timeout(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient]
) -> None:
    fake.script = [fake.refuse_connection()]
    with pytest.raises(HtouhuiTimeout) as caught:
        make_client().register(REGISTER)
    assert "13800138000" not in str(caught.value)
    assert len(fake.requests) == 3


def test_time_outs_every_time_stop_at_max_attempts(
    fake: FakeHtouhui,
    clock: FakeClock,
    make_client: Callable[..., HtouhuiClient],
    records: list[CallRecord],
    worst_case_jitter: None,
) -> None:
    fake.script = [fake.time_out()]
    start = clock.now
    retry = RetryPolicy(max_attempts=3, total_seconds=60.0, base_delay=0.25, max_delay=2.0)
    with pytest.raises(HtouhuiTimeout):
        make_client(retry=retry, timeouts=Timeouts(connect=1.0, read=4.0)).query(QUERY)
    assert len(fake.requests) == 3
    assert clock.sleeps == [0.25, 0.5]
    assert clock.now - start == pytest.approx(3 * 4.0 + 0.25 + 0.5)
    assert [r.outcome for r in records] == ["timeout"] * 3
    assert len({body["request_no"] for _, body in fake.requests}) == 3


def test_time_outs_every_time_stop_at_the_total_time(
    fake: FakeHtouhui,
    clock: FakeClock,
    make_client: Callable[..., HtouhuiClient],
    records: list[CallRecord],
    worst_case_jitter: None,
) -> None:
    fake.script = [fake.time_out()]
    start = clock.now
    retry = RetryPolicy(max_attempts=10, total_seconds=12.0, base_delay=0.2, max_delay=2.0)
    with pytest.raises(HtouhuiTimeout):
        make_client(retry=retry, timeouts=Timeouts(connect=2.0, read=5.0)).register(REGISTER)
    # 0-5 time-out, sleep 0.2, 5.2-10.2 time-out, sleep 0.4, 10.6-12.0 (the read time-out shrinks to what is left)
    assert len(fake.requests) == 3
    assert [t["read"] for t in fake.timeouts] == pytest.approx([5.0, 5.0, 1.4])
    assert fake.timeouts[2]["connect"] == pytest.approx(1.4)
    assert clock.now - start == pytest.approx(12.0)
    assert clock.now - start <= retry.total_seconds + 1e-9
    assert len({body["request_no"] for _, body in fake.requests}) == 3


def test_no_attempt_starts_when_the_backoff_would_pass_the_deadline(
    fake: FakeHtouhui, clock: FakeClock, make_client: Callable[..., HtouhuiClient], worst_case_jitter: None
) -> None:
    fake.script = [fake.time_out()]
    with pytest.raises(HtouhuiTimeout):
        make_client(
            retry=RetryPolicy(max_attempts=5, total_seconds=5.5, base_delay=1.0), timeouts=Timeouts(read=5.0)
        ).register(REGISTER)
    assert len(fake.requests) == 1  # 5.0 + a 1.0 backoff is past 5.5
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "make_failure",
    [
        lambda fake: fake.answer(code="1002", message="mobile"),
        lambda fake: fake.custom(lambda body: fake.echo(body, code="0000", message="unsigned")),
        lambda fake: fake.raw(200, b"not json"),
    ],
    ids=["rejected", "signature", "unreadable"],
)
def test_a_non_retryable_error_is_not_retried(
    make_failure: Callable[[FakeHtouhui], Handler],
    fake: FakeHtouhui,
    clock: FakeClock,
    make_client: Callable[..., HtouhuiClient],
) -> None:
    fake.script = [make_failure(fake), fake.registered()]
    with pytest.raises(HtouhuiError) as caught:
        make_client().register(REGISTER)
    assert not isinstance(caught.value, HtouhuiBusy | HtouhuiTimeout)
    assert len(fake.requests) == 1
    assert clock.sleeps == []


def test_on_attempt_records_every_attempt_without_values(
    fake: FakeHtouhui, make_client: Callable[..., HtouhuiClient], records: list[CallRecord]
) -> None:
    fake.script = [fake.time_out(), fake.raw(502, b""), fake.answer(code="9999", message="忙"), fake.registered()]
    make_client(retry=RetryPolicy(max_attempts=4, total_seconds=60)).register(REGISTER)
    assert [(r.interface, r.attempt, r.outcome) for r in records] == [
        ("register", 1, "timeout"),
        ("register", 2, "http_5xx"),
        ("register", 3, "9999"),
        ("register", 4, "0000"),
    ]
    assert all(r.seconds >= 0 for r in records)
    assert "13800138000" not in repr(records)


def test_retry_policy_delay_is_full_jitter_within_the_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (10, 1.0)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


# --- a real local HTTP server: the real httpx time-out path ---------------------------------------------------


class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    delay = 0.0
    release = threading.Event()
    answer: Callable[[dict[str, str]], dict[str, str]]


class _SlowHandler(BaseHTTPRequestHandler):
    server: _SlowServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.release.wait(self.server.delay)
        payload = json.dumps(self.server.answer(body)).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up: that is the point

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server(htouhui_private_key: protocol.PrivateKey) -> Iterator[_SlowServer]:
    server = _SlowServer(("127.0.0.1", 0), _SlowHandler)
    server.release = threading.Event()

    def answer(body: dict[str, str]) -> dict[str, str]:
        fields = {
            "code": "0000",
            "message": "成功",
            "partner_id": body["partner_id"],
            "request_no": body["request_no"],
            "timestamp": protocol.china_timestamp(),
            "third_party_user_id": body["third_party_user_id"],
            "htouhui_user_id": "10000000001",
        }
        return protocol.signed(fields, htouhui_private_key)

    server.answer = answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def _real_client(server: _SlowServer, merchant: protocol.PrivateKey, htouhui: protocol.PublicKey) -> HtouhuiClient:
    host, port = server.server_address[:2]
    options = ClientOptions(
        PARTNER,
        f"http://{host!s}:{port}",
        timeouts=Timeouts(connect=1.0, read=0.2),
        retry=RetryPolicy(max_attempts=2, total_seconds=5.0, base_delay=0.01, max_delay=0.01),
    )
    return HtouhuiClient(options, merchant, [htouhui])


def test_real_server_answers_within_the_time_out(
    slow_server: _SlowServer, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    client = _real_client(slow_server, merchant_private_key, htouhui_public_key)
    try:
        assert client.register(REGISTER).htouhui_user_id == "10000000001"
    finally:
        client.close()


def test_real_server_slower_than_the_read_time_out(
    slow_server: _SlowServer, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    slow_server.delay = 2.0
    records: list[CallRecord] = []
    client = _real_client(slow_server, merchant_private_key, htouhui_public_key)
    client._on_attempt = records.append
    started = time.monotonic()
    try:
        with pytest.raises(HtouhuiTimeout):
            client.register(REGISTER)
    finally:
        client.close()
    elapsed = time.monotonic() - started
    assert [r.outcome for r in records] == ["timeout", "timeout"]
    assert all(0.15 <= r.seconds < 1.0 for r in records)
    assert elapsed < 1.5, "the read time-out (0.2 s) must cut the 2 s answer short"
