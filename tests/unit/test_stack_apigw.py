"""Requests become API Gateway HTTP API payload 2.0 events; Lambda results become HTTP answers."""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "local"))

from stack import apigw
from stack.template import Route

NOW = datetime(2026, 11, 28, 14, 30, 5, 123000, tzinfo=UTC)
OPEN = Route("POST", "/users/{third_party_user_id}/open-account", "OpenAccountFunction", "AWS_IAM", "OpenAccount")
NOTIFY = Route("POST", "/htouhui/notify", "NotifyFunction", "NONE", "Notify")


def request(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> apigw.HttpRequest:
    return apigw.HttpRequest(method, target, headers, body, source_ip="127.0.0.9", port=3000)


def test_a_json_post_with_path_parameters_query_headers_and_cookies() -> None:
    event = apigw.build_event(
        request(
            "POST",
            "/users/u%201/open-account?a=1&b=x%20y&a=2&empty=",
            [
                ("Host", "127.0.0.1:3000"),
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Custom", "one"),
                ("x-custom", "two"),
                ("Cookie", "s=1; t=2"),
                ("Cookie", "u=3"),
                ("User-Agent", "curl/8"),
            ],
            '{"id_card": "张"}'.encode(),
        ),
        OPEN,
        {"third_party_user_id": "u%201"},
        request_id="REQ=",
        now=NOW,
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /users/{third_party_user_id}/open-account"
    assert event["rawPath"] == "/users/u%201/open-account"
    assert event["rawQueryString"] == "a=1&b=x%20y&a=2&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["pathParameters"] == {"third_party_user_id": "u 1"}
    assert event["cookies"] == ["s=1", "t=2", "u=3"]
    headers = event["headers"]
    assert "cookie" not in headers
    assert headers["x-custom"] == "one,two"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["host"] == "127.0.0.1:3000"
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-for"] == "127.0.0.9"
    assert headers["x-forwarded-port"] == "3000" and headers["x-amzn-trace-id"].startswith("Root=1-")
    assert all(name == name.lower() for name in headers)
    assert event["body"] == '{"id_card": "张"}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/users/u%201/open-account",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.9",
        "userAgent": "curl/8",
    }
    assert context["requestId"] == "REQ=" and context["routeKey"] == event["routeKey"]
    assert context["stage"] == "$default" and context["domainName"] == "127.0.0.1:3000"
    assert context["accountId"] == "123456789012" and context["apiId"]
    assert context["time"] == "28/Nov/2026:14:30:05 +0000" and context["timeEpoch"] == int(NOW.timestamp() * 1000)
    assert context["authorizer"]["iam"]["accountId"] == "123456789012"
    json.dumps(event)  # what the worker sends must be JSON


def test_a_form_post_arrives_base64_encoded_and_has_no_query_fields() -> None:
    body = b"partner_id=P1&status=3&sign=a%2Bb%3D"
    event = apigw.build_event(
        request("POST", "/htouhui/notify", [("Content-Type", "application/x-www-form-urlencoded")], body),
        NOTIFY,
        {},
        now=NOW,
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event and "pathParameters" not in event and "cookies" not in event
    assert "authorizer" not in event["requestContext"]


@pytest.mark.parametrize(
    ("content_type", "body", "encoded"),
    [
        ("text/plain", b"hello", False),
        ("application/problem+json", b"{}", False),
        ("application/xml", b"<a/>", False),
        ("image/png", b"\x89PNG\r\n", True),
        (None, b"raw", True),
        ("text/plain", b"\xff\xfe not utf-8", True),
        ("application/octet-stream", b"\x00", True),
    ],
)
def test_binary_and_text_bodies(content_type: str | None, body: bytes, encoded: bool) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = apigw.build_event(request("POST", "/htouhui/notify", headers, body), NOTIFY, {})
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_no_body_means_no_body_field() -> None:
    event = apigw.build_event(request("GET", "/htouhui/return?x=1", []), NOTIFY, {})
    assert "body" not in event and event["isBase64Encoded"] is False


def test_a_full_response() -> None:
    response = apigw.to_http(
        {
            "statusCode": 302,
            "headers": {"Location": "https://m.example/done", "X-Number": 5},
            "cookies": ["a=1; Secure", "b=2"],
            "body": "",
        }
    )
    assert response.status == 302
    assert ("Location", "https://m.example/done") in response.headers
    assert ("X-Number", "5") in response.headers
    assert [value for name, value in response.headers if name == "set-cookie"] == ["a=1; Secure", "b=2"]
    assert response.body == b""


def test_a_base64_response_body_is_decoded() -> None:
    response = apigw.to_http(
        {"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "iVBORw==", "isBase64Encoded": True}
    )
    assert response.body == b"\x89PNG"


def test_results_without_status_code_are_json_200() -> None:
    response = apigw.to_http({"ok": True, "n": [1, 2]})
    assert (response.status, response.headers, json.loads(response.body)) == (
        200,
        [("content-type", "application/json")],
        {"ok": True, "n": [1, 2]},
    )
    assert apigw.to_http("plain text").body == b"plain text"
    assert apigw.to_http(None).body == b"null"


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200"},
        {"statusCode": 99},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "headers": {"x": ["a", "b"]}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
    ],
)
def test_unusable_results_are_api_gateway_500(result: dict[str, object]) -> None:
    response = apigw.to_http(result)
    assert response.status == 500 and json.loads(response.body) == {"message": "Internal Server Error"}


def test_not_found_is_api_gateways() -> None:
    response = apigw.not_found()
    assert response.status == 404 and json.loads(response.body) == {"message": "Not Found"}
