"""STACK_IAM=1: the local stack's router (`Stack.handle`, over the real HTTP server) refuses what API Gateway's IAM
authorization refuses, each with its 403 message, and never calls the function then; it serves a valid SigV4 with
the caller in requestContext.authorizer.iam. The clock is injected: nothing sleeps. The functions are recording
stand-ins (what they would do is the e2e tests' business); the routes are template.yaml's."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ROOT, serve

sys.path.insert(0, str(ROOT / "local"))

from stack import apigw, sigv4
from stack.runner import Stack, StackConfig
from stack.template import load

NOW = datetime(2026, 1, 1, 0, 20, 0, tzinfo=UTC)
KEY = sigv4.Credentials("AKIAEXAMPLELOCAL0001", "secret/secret+secret/secret+secret/secre", name="htouhui-local")
TEMPORARY = sigv4.Credentials("ASIAEXAMPLELOCAL0002", "another-secret-of-forty-characters-xxxxx", "token-1", "temp")
REGION = "eu-central-1"


class RecordingPool:
    """Stands for a function: records each event it is given (the verifier's effect is whether it is called)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cold_starts = 0

    def invoke(self, event: dict[str, Any], trace_id: str = "") -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}


class Local:
    def __init__(self, iam: bool) -> None:
        self.stack = Stack(StackConfig())
        self.stack.template = load(ROOT / "template.yaml")
        self.pools = {logical: RecordingPool() for logical in self.stack.template.functions}
        self.stack.pools = self.pools  # type: ignore[assignment]
        self.clock = NOW
        if iam:
            self.stack.verifier = sigv4.Verifier([KEY, TEMPORARY], region=REGION, clock=lambda: self.clock)
        self.server = serve(self.stack.handle)
        self.url = self.server.url
        self.host = self.url.removeprefix("http://")

    def called(self) -> int:
        return sum(len(pool.events) for pool in self.pools.values())

    def send(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        credentials: sigv4.Credentials | None = KEY,
        at: datetime | None = None,
        token: str | None = None,
        signed_token: bool = True,
        region: str = REGION,
        service: str = "execute-api",
        authorization: str | None = None,
        signed: list[str] | None = None,
    ) -> httpx.Response:
        headers = [("host", self.host), ("x-amz-date", (at or NOW).strftime("%Y%m%dT%H%M%SZ"))]
        if body:
            headers.append(("content-type", "application/json"))
        if token is not None and signed_token:
            headers.append(("x-amz-security-token", token))
        if authorization is None and credentials is not None:
            authorization = sigv4.authorization(
                credentials, method, target, headers, body, region=region, service=service, signed=signed
            )
        if authorization is not None:
            headers.append(("authorization", authorization))
        if token is not None and not signed_token:
            headers.append(("x-amz-security-token", token))
        return httpx.request(method, self.url + target, content=body, headers=headers, timeout=10)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local() -> Iterator[Local]:
    stack = Local(iam=True)
    yield stack
    stack.close()


def refused(answer: httpx.Response, error_type: str) -> str:
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-amzn-errortype"] == error_type
    assert answer.headers["apigw-requestid"]
    assert set(answer.json()) == {"message"}
    return str(answer.json()["message"])


REGISTER = b'{"third_party_user_id": "u-1", "mobile": "13800138000"}'


def test_a_valid_signature_reaches_the_function_with_the_caller(local: Local) -> None:
    answer = local.send("POST", "/users", REGISTER)
    assert answer.status_code == 200, answer.text
    (event,) = local.pools["RegisterFunction"].events
    iam = event["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == KEY.access_key
    assert iam["userArn"] == "arn:aws:iam::123456789012:user/htouhui-local"
    assert iam["accountId"] == "123456789012"
    assert iam["userId"].startswith("AIDA") and iam["callerId"] == iam["userId"]
    assert event["body"] == REGISTER.decode()


def test_every_iam_route_of_the_template_is_checked_and_no_other(local: Local) -> None:
    assert local.stack.template is not None
    iam = [route for route in local.stack.template.routes if route.auth == "AWS_IAM"]
    assert {route.route_key for route in iam} >= {
        "POST /users",
        "POST /users/{third_party_user_id}/open-account",
        "GET /users/{third_party_user_id}",
    }
    for route in iam:
        path = route.path.replace("{third_party_user_id}", "u-1")
        assert refused(local.send(route.method, path, credentials=None), "MissingAuthenticationTokenException")
    assert local.called() == 0
    answer = local.send("POST", "/htouhui/notify", b"a=1", credentials=None)  # Authorizer: NONE
    assert answer.status_code == 200
    assert local.called() == 1


def test_missing(local: Local) -> None:
    message = refused(local.send("POST", "/users", REGISTER, credentials=None), "MissingAuthenticationTokenException")
    assert message == "Missing Authentication Token"
    assert local.called() == 0


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (
            "Bearer abc",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' "
            "parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=Bearer abc",
        ),
        (
            "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
            "Authorization header requires 'Credential' parameter. "
            "Authorization=AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLELOCAL0001/20260101/eu-central-1/execute-api, "
            "SignedHeaders=host;x-amz-date, Signature=00",
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got "
            "'AKIAEXAMPLELOCAL0001/20260101/eu-central-1/execute-api'",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLELOCAL0001/20260101/eu-central-1/execute-api/aws4_request, "
            "SignedHeaders=x-amz-date, Signature=00",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLELOCAL0001/20260101/eu-central-1/execute-api/aws4_request, "
            "SignedHeaders=host, Signature=00",
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ),
    ],
    ids=["not-sigv4", "no-credential", "short-credential", "host-unsigned", "date-unsigned"],
)
def test_malformed(local: Local, authorization: str, expected: str) -> None:
    message = refused(
        local.send("POST", "/users", REGISTER, authorization=authorization), "IncompleteSignatureException"
    )
    assert message == expected
    assert local.called() == 0


def test_no_date_header() -> None:
    verifier = sigv4.Verifier([KEY], region=REGION, clock=lambda: NOW)
    with pytest.raises(sigv4.Refusal) as refusal:
        verifier.verify(
            "GET",
            "/users/u-1",
            [
                ("host", "h"),
                ("authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=0"),
            ],
            b"",
        )
    assert refusal.value.message.startswith(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
    )


def test_wrong_secret(local: Local) -> None:
    wrong = sigv4.Credentials(KEY.access_key, "not-the-secret-at-all-but-forty-chars-00")
    message = refused(local.send("POST", "/users", REGISTER, credentials=wrong), "InvalidSignatureException")
    assert message.startswith(sigv4.MISMATCH + "\n\nThe Canonical String for this request should have been\n'POST\n")
    assert "\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20260101T002000Z\n" in message
    assert local.called() == 0


def test_a_body_changed_after_signing(local: Local) -> None:
    headers = [("host", local.host), ("x-amz-date", "20260101T002000Z"), ("content-type", "application/json")]
    authorization = sigv4.authorization(KEY, "POST", "/users", headers, REGISTER, region=REGION, service="execute-api")
    tampered = REGISTER.replace(b"u-1", b"u-2")
    answer = httpx.post(
        local.url + "/users", content=tampered, headers=[*headers, ("authorization", authorization)], timeout=10
    )
    assert refused(answer, "InvalidSignatureException").startswith(sigv4.MISMATCH)
    assert local.called() == 0


def test_unknown_key(local: Local) -> None:
    stranger = sigv4.Credentials("AKIAUNKNOWNUNKNOWN00", KEY.secret_key)
    message = refused(local.send("POST", "/users", REGISTER, credentials=stranger), "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."
    assert local.called() == 0


def test_twenty_minutes_old(local: Local) -> None:
    message = refused(
        local.send("POST", "/users", REGISTER, at=NOW - timedelta(minutes=20)), "InvalidSignatureException"
    )
    assert message == (
        "Signature expired: 20260101T000000Z is now earlier than 20260101T001500Z (20260101T002000Z - 5 min.)"
    )
    assert local.called() == 0


def test_six_minutes_ahead(local: Local) -> None:
    message = refused(local.send("GET", "/users/u-1", at=NOW + timedelta(minutes=6)), "InvalidSignatureException")
    assert message == (
        "Signature not yet current: 20260101T002600Z is still later than 20260101T002500Z (20260101T002000Z + 5 min.)"
    )
    assert local.called() == 0


def test_within_five_minutes_either_way(local: Local) -> None:
    for offset in (-5, 5):
        assert local.send("GET", "/users/u-1", at=NOW + timedelta(minutes=offset)).status_code == 200
    assert local.called() == 2


def test_the_clock_decides_not_the_date_alone(local: Local) -> None:
    """The same signed request, later on the verifier's clock: refused once 5 minutes have passed."""
    headers = [("host", local.host), ("x-amz-date", "20260101T002000Z")]
    authorization = sigv4.authorization(KEY, "GET", "/users/u-1", headers, b"", region=REGION, service="execute-api")
    sent = [*headers, ("authorization", authorization)]
    assert httpx.get(local.url + "/users/u-1", headers=sent, timeout=10).status_code == 200
    local.clock = NOW + timedelta(minutes=5, seconds=1)
    refused(httpx.get(local.url + "/users/u-1", headers=sent, timeout=10), "InvalidSignatureException")
    assert local.called() == 1


@pytest.mark.parametrize(
    ("token", "signed_token"),
    [(None, True), ("token-2", True), ("token-2", False)],
    ids=["no-token", "wrong-token", "wrong-token-unsigned"],
)
def test_bad_session_token(local: Local, token: str | None, signed_token: bool) -> None:
    answer = local.send("POST", "/users", REGISTER, credentials=TEMPORARY, token=token, signed_token=signed_token)
    assert refused(answer, "UnrecognizedClientException") == "The security token included in the request is invalid."
    assert local.called() == 0


def test_a_token_for_credentials_without_one(local: Local) -> None:
    answer = local.send("POST", "/users", REGISTER, token="token-1")
    assert refused(answer, "UnrecognizedClientException") == "The security token included in the request is invalid."


@pytest.mark.parametrize("signed_token", [True, False], ids=["signed", "added-after-signing"])
def test_the_session_token_signed_or_added_after(local: Local, signed_token: bool) -> None:
    answer = local.send("POST", "/users", REGISTER, credentials=TEMPORARY, token="token-1", signed_token=signed_token)
    assert answer.status_code == 200, answer.text
    (event,) = local.pools["RegisterFunction"].events
    assert event["requestContext"]["authorizer"]["iam"]["userArn"].endswith(":user/temp")


@pytest.mark.parametrize(
    ("region", "service", "expected"),
    [
        ("us-east-1", "execute-api", "Credential should be scoped to a valid region. "),
        (REGION, "lambda", "Credential should be scoped to correct service: 'execute-api'. "),
    ],
)
def test_the_wrong_scope(local: Local, region: str, service: str, expected: str) -> None:
    answer = local.send("POST", "/users", REGISTER, region=region, service=service)
    assert refused(answer, "InvalidSignatureException") == expected
    assert local.called() == 0


def test_a_date_unlike_the_scope(local: Local) -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY.access_key}/20251231/{REGION}/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00"
    )
    message = refused(local.send("GET", "/users/u-1", authorization=authorization), "InvalidSignatureException")
    assert message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20251231' != '20260101', from '20260101T002000Z'."
    )


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PATCH", "BREW"])
@pytest.mark.parametrize("iam", [True, False], ids=["STACK_IAM=1", "STACK_IAM unset"])
def test_an_undeclared_method_is_not_found(method: str, iam: bool) -> None:
    local = Local(iam=iam)
    try:
        answer = httpx.request(method, local.url + "/users/u-1", timeout=10)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == b'{"message":"Not Found"}'
        assert local.called() == 0
    finally:
        local.close()


def test_without_stack_iam_nothing_is_checked_and_the_local_caller_stays() -> None:
    local = Local(iam=False)
    try:
        assert httpx.post(local.url + "/users", content=REGISTER, timeout=10).status_code == 200
        (event,) = local.pools["RegisterFunction"].events
        assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "ASIALOCALSTACKCALLER"
    finally:
        local.close()


def test_the_credentials_file_is_made_once_private_and_an_sdk_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    path, found, created = sigv4.ensure_credentials(tmp_path / "keys")
    assert created and path == tmp_path / "keys" / "iam-credentials"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (credentials,) = found
    assert credentials.name == "htouhui-local" and credentials.access_key.startswith("AKIA")
    assert len(credentials.access_key) == 20 and len(credentials.secret_key) == 40
    text = path.read_text()
    again, found_again, created_again = sigv4.ensure_credentials(tmp_path / "keys")
    assert (again, found_again, created_again) == (path, found, False)
    assert path.read_text() == text
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    frozen = boto3.Session(profile_name="htouhui-local").get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        credentials.access_key,
        credentials.secret_key,
        None,
    )
    other = sigv4.ensure_credentials(tmp_path / "other")[1][0]
    assert other.access_key != credentials.access_key and other.secret_key != credentials.secret_key


def test_forbidden_is_api_gateways_shape() -> None:
    answer = apigw.forbidden("Missing Authentication Token", "MissingAuthenticationTokenException")
    assert (answer.status, answer.body) == (403, b'{"message":"Missing Authentication Token"}')
