"""onboarding.api: the one table from a failure to API.md's error answer, and the request helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import http_event, invoke, json_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from htouhui.errors import HtouhuiBusy, HtouhuiProtocolError, HtouhuiRejected, HtouhuiSignatureError, HtouhuiTimeout
from onboarding import api, runtime
from onboarding.config import Settings
from onboarding.errors import (
    HtouhuiUserIdMismatch,
    IdCardMismatch,
    InvalidInput,
    MobileMismatch,
    RegistrationInProgress,
    RegistrationRequired,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.models import RegisterBody, UserView

# Powertools warns when an invocation counted nothing: normal here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

SECRET_MESSAGE = "mobile 13800138000 already used"


@pytest.mark.parametrize(
    ("exc", "status", "code", "htouhui_code"),
    [
        (UserNotFound("u1"), 404, "not_found", None),
        (RegistrationRequired(), 409, "conflict", None),
        (RegistrationInProgress(), 409, "conflict", None),
        (MobileMismatch(), 409, "conflict", None),
        (IdCardMismatch(), 409, "conflict", None),
        (HtouhuiUserIdMismatch(), 409, "conflict", None),
        (HtouhuiRejected("2001", SECRET_MESSAGE), 409, "conflict", "2001"),
        (HtouhuiRejected("2003", SECRET_MESSAGE), 409, "conflict", "2003"),
        (HtouhuiRejected("2004", SECRET_MESSAGE), 409, "conflict", "2004"),
        (HtouhuiRejected("3001", SECRET_MESSAGE), 409, "conflict", "3001"),
        (HtouhuiRejected("1001", SECRET_MESSAGE), 502, "upstream_error", "1001"),
        (HtouhuiRejected("1002", SECRET_MESSAGE), 502, "upstream_error", "1002"),
        (HtouhuiRejected("2002", SECRET_MESSAGE), 502, "upstream_error", "2002"),
        (HtouhuiRejected("7777", SECRET_MESSAGE), 502, "upstream_error", "7777"),
        (HtouhuiSignatureError("x"), 502, "upstream_error", None),
        (HtouhuiProtocolError("x"), 502, "upstream_error", None),
        (HtouhuiBusy("x", code="9999"), 503, "upstream_busy", "9999"),
        (HtouhuiBusy("HTTP 503"), 503, "upstream_busy", None),
        (HtouhuiTimeout("x"), 504, "upstream_timeout", None),
        (StoreUnavailable("DynamoDB GetItem failed: ResourceNotFoundException"), 503, "unavailable", None),
        (RuntimeError("boom 11010519491231002X"), 500, "internal_error", None),
    ],
)
def test_error_table(exc: Exception, status: int, code: str, htouhui_code: str | None) -> None:
    error = api.error_for(exc)
    assert (error.status, error.code, error.htouhui_code) == (status, code, htouhui_code)
    assert "13800138000" not in error.message and "11010519491231002X" not in error.message
    assert "DynamoDB" not in error.message


def test_invalid_input_lists_fields() -> None:
    error = api.error_for(InvalidInput([("return_url", "return_url_not_allowed"), ("id_card", "id_card_format")]))
    assert (error.status, error.code) == (400, "invalid_request")
    body = api.error_body(error, "rid")
    assert body == {
        "error": {
            "code": "invalid_request",
            "message": "the request is invalid",
            "fields": [
                {"field": "return_url", "reason": "return_url_not_allowed"},
                {"field": "id_card", "reason": "id_card_format"},
            ],
            "request_id": "rid",
        }
    }


def test_error_body_omits_empty_parts_and_response_headers() -> None:
    body = api.error_body(api.ApiError(504, "upstream_timeout", "no answer"), "r1")
    assert body == {"error": {"code": "upstream_timeout", "message": "no answer", "request_id": "r1"}}
    response = api.error_response(api.ApiError(503, "upstream_busy", "busy", htouhui_code="9999"), "r2")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert json.loads(str(response.body))["error"]["htouhui_code"] == "9999"


def test_validation_fields_strip_location_and_never_use_input() -> None:
    errors = [
        {"loc": ("body", "mobile"), "type": "mobile_pattern", "msg": "mobile must be 11 digits", "input": "123"},
        {"loc": ("body", "mobile"), "type": "mobile_pattern", "msg": "mobile must be 11 digits", "input": "123"},
        {"loc": ("body", 0), "type": "json_invalid", "msg": "JSON decode error", "input": {}},
        {"loc": ("path", "third_party_user_id"), "type": "string_pattern_mismatch", "msg": "bad", "input": "a b"},
        {"loc": ("body",), "type": "model_attributes_type", "msg": "Input should be an object", "input": [1]},
        {"loc": ("body", "x"), "type": "extra_forbidden", "msg": "Extra inputs are not permitted", "input": "v"},
    ]
    assert api.validation_fields(errors) == [
        ("mobile", "mobile must be 11 digits"),
        ("body", "body must be valid JSON"),
        ("third_party_user_id", "bad"),
        ("body", "body must be a JSON object"),
        ("x", "unknown field"),
    ]


class _FakeApp:
    def __init__(self, event: dict[str, Any]) -> None:
        from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

        self.current_event = APIGatewayProxyEventV2(event)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html", True),
        ("text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("application/json", False),
        ("application/json, text/html", False),
        ("", False),
        ("*/*", False),
    ],
)
def test_wants_html(accept: str, html: bool) -> None:
    event = http_event("POST", "/users/u1/open-account", headers={"accept": accept} if accept else None)
    assert api.wants_html(_FakeApp(event)) is html  # type: ignore[arg-type]


def test_own_base_url() -> None:
    event = http_event("POST", "/x", domain="api.example.com")
    assert api.own_base_url(_FakeApp(event), None) == "https://api.example.com"  # type: ignore[arg-type]
    assert api.own_base_url(_FakeApp(event), "https://pay.example.com/") == "https://pay.example.com"  # type: ignore[arg-type]
    local = http_event("POST", "/x", domain="127.0.0.1:3000", headers={"x-forwarded-proto": "http"})
    assert api.own_base_url(_FakeApp(local), None) == "http://127.0.0.1:3000"  # type: ignore[arg-type]
    downgrade = http_event("POST", "/x", domain="api.example.com", headers={"x-forwarded-proto": "http"})
    assert api.own_base_url(_FakeApp(downgrade), None) == "https://api.example.com"  # type: ignore[arg-type]
    odd = http_event("POST", "/x", domain="api.example.com", headers={"x-forwarded-proto": "gopher"})
    assert api.own_base_url(_FakeApp(odd), None) == "https://api.example.com"  # type: ignore[arg-type]
    assert api.own_host("http://127.0.0.1:3000") == "127.0.0.1:3000"  # host[:port], as an allow-list entry
    assert api.own_host("https://API.example.com") == "api.example.com"


# --- the register handler never answers 500 to whatever a caller sends ------------------------------------


class _Registering:
    def register(self, body: RegisterBody) -> tuple[UserView, bool]:
        view = UserView.of(
            third_party_user_id=body.third_party_user_id,
            htouhui_user_id="10001",
            status=None,
            open_requested=False,
            borrower=None,
            bank_card_number=None,
            id_card=None,
            updated_at=None,
        )
        return view, True


@pytest.fixture
def fake_onboarding(merchant_private_key: Any) -> Any:
    from helpers import TEST_KEYS

    current = Settings.from_env(
        {
            "HTOUHUI_PARTNER_ID": "P2026000001",
            "MERCHANT_PRIVATE_KEY": f"file:{TEST_KEYS / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{TEST_KEYS / 'htouhui_public.pem'}",
        }
    )
    runtime.reset()
    runtime.configure(settings=current, onboarding=_Registering())
    yield
    runtime.reset()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
bodies = (
    st.binary(max_size=64)
    | st.text(max_size=64)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries(
        {"third_party_user_id": st.text(max_size=60), "mobile": st.text(max_size=12)},
        optional={"password": json_values},
    ).map(json.dumps)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, base64_body=st.booleans())
def test_register_never_answers_500(fake_onboarding: Any, body: str | bytes, base64_body: bool) -> None:
    event = http_event(
        "POST", "/users", body=body, base64_body=base64_body, headers={"content-type": "application/json"}
    )
    answer = invoke("register", event)
    assert answer["statusCode"] in (201, 400), answer
    if answer["statusCode"] == 400:
        error = json_body(answer)["error"]
        assert error["code"] == "invalid_request" and error["fields"]
        assert error["request_id"] == event["requestContext"]["requestId"]


def test_the_most_specific_entry_of_the_table_wins_whatever_its_place() -> None:
    from htouhui.errors import HtouhuiTimeout, HtouhuiUnreachable
    from onboarding.api import ERRORS, error_for
    from onboarding.errors import MobileMismatch

    class LateTimeout(HtouhuiTimeout):
        """A subclass nobody listed: it takes its nearest listed ancestor's answer."""

    assert (error_for(HtouhuiUnreachable("x")).status, error_for(HtouhuiUnreachable("x")).code) == (
        503,
        "upstream_unreachable",
    )
    assert error_for(LateTimeout("x")).code == "upstream_timeout"
    assert error_for(MobileMismatch()).status == 409
    reordered = dict(reversed(list(ERRORS.items())))  # the table's order does not decide
    ERRORS.clear()
    ERRORS.update(reordered)
    try:
        assert error_for(HtouhuiUnreachable("x")).code == "upstream_unreachable"
        assert error_for(LateTimeout("x")).code == "upstream_timeout"
    finally:
        original = dict(reversed(list(ERRORS.items())))
        ERRORS.clear()
        ERRORS.update(original)
    assert error_for(KeyError("x")).code == "internal_error"
