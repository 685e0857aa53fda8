"""Routes and tables come from the template: a copy of template.yaml with an extra function, routes and a table
is served by the unchanged local stack. The extra function echoes its event, so this also checks, over real HTTP,
the payload 2.0 event, the response mapping, the Lambda context and environment, timeouts and errors."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from helpers import ROOT
from stack_process import StackProcess, running_stack

pytestmark = pytest.mark.slow

ECHO = textwrap.dedent(
    """
    import os
    import time

    LOADED_AT = time.time()


    def lambda_handler(event, context):
        headers = event.get("headers", {})
        answer = {
            "event": event,
            "context": {
                "function_name": context.function_name,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "aws_request_id": context.aws_request_id,
                "invoked_function_arn": context.invoked_function_arn,
            },
            "env": {name: os.environ.get(name) for name in (
                "AWS_LAMBDA_FUNCTION_NAME", "USERS_TABLE", "EXTRA_TABLE", "MERCHANT_PRIVATE_KEY",
                "HTOUHUI_PUBLIC_KEY", "AWS_ENDPOINT_URL_DYNAMODB", "PUBLIC_BASE_URL", "HTOUHUI_PARTNER_ID",
                "POWERTOOLS_SERVICE_NAME", "ONLY_HERE",
            )},
            "loaded_at": LOADED_AT,
            "cwd": os.getcwd(),
        }
        print("echo handler log line")  # goes to the function's log, never into the answer
        if headers.get("x-status"):
            return {
                "statusCode": int(headers["x-status"]),
                "headers": {"content-type": "application/json", "x-echo": "yes"},
                "cookies": ["a=1; Path=/", "b=2"],
                "body": __import__("json").dumps(answer),
            }
        return answer


    def slow(event, context):
        time.sleep(5)
        return {"statusCode": 200, "body": "too late"}


    def boom(event, context):
        raise RuntimeError("boom")


    def sleepy(event, context):
        time.sleep(1)
        return {"pid": os.getpid()}
    """
)

EXTRA_RESOURCES = textwrap.indent(
    textwrap.dedent(
        """
      ExtraTable:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions:
            - {AttributeName: pk, AttributeType: S}
            - {AttributeName: sk, AttributeType: N}
          KeySchema:
            - {AttributeName: pk, KeyType: HASH}
            - {AttributeName: sk, KeyType: RANGE}

      EchoFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: extra/echo/
          Handler: app.lambda_handler
          MemorySize: 256
          Environment:
            Variables:
              EXTRA_TABLE: !Ref ExtraTable
              ONLY_HERE: !Sub "${Environment}-echo"
          Events:
            Echo:
              Type: HttpApi
              Properties: {ApiId: !Ref HttpApi, Path: "/echo/{proxy+}", Method: ANY, Auth: {Authorizer: NONE}}
            EchoExact:
              Type: HttpApi
              Properties: {ApiId: !Ref HttpApi, Path: /echo/exact, Method: GET}

      SlowFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: extra/echo/
          Handler: app.slow
          Timeout: 1
          Events:
            Slow:
              Type: HttpApi
              Properties: {ApiId: !Ref HttpApi, Path: /slow, Method: GET}

      SleepyFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: extra/echo/
          Handler: app.sleepy
          Events:
            Sleepy:
              Type: HttpApi
              Properties: {ApiId: !Ref HttpApi, Path: /sleepy, Method: GET}

      BoomFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: extra/echo/
          Handler: app.boom
          Events:
            Boom:
              Type: HttpApi
              Properties: {ApiId: !Ref HttpApi, Path: /boom, Method: POST}
    """
    ),
    "  ",
)


def copy_template(folder: Path) -> Path:
    """template.yaml next to links to the real code, plus the extra resources inserted under Resources."""
    for name in ("functions", "layers"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    (folder / "extra" / "echo").mkdir(parents=True)
    (folder / "extra" / "echo" / "app.py").write_text(ECHO, encoding="utf-8")
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    assert "\nResources:\n" in text
    text = text.replace("\nResources:\n", "\nResources:\n" + EXTRA_RESOURCES + "\n", 1)
    path = folder / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    folder = tmp_path_factory.mktemp("copy")
    template = copy_template(folder)
    with running_stack(folder, template=template, sandbox=False) as process:
        yield process


def test_the_added_routes_and_table_are_served(stack: StackProcess) -> None:
    health = stack.wait_ready()
    routes = set(health["routes"])  # type: ignore[arg-type]
    assert {"ANY /echo/{proxy+}", "GET /echo/exact", "GET /slow", "POST /boom", "POST /users"} <= routes
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stack.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert {"ExtraTable", "UsersTable", "NotificationsTable"} <= set(dynamodb.list_tables()["TableNames"])
    key_schema = dynamodb.describe_table(TableName="ExtraTable")["Table"]["KeySchema"]
    assert key_schema == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    # the template's own routes still reach the real handlers (their 404 is API.md's, not API Gateway's)
    answer = httpx.get(f"{stack.url}/users/nobody", timeout=30)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_the_event_a_greedy_route_receives(stack: StackProcess) -> None:
    answer = httpx.get(
        f"{stack.url}/echo/a/b%20c?x=1&x=2&y=%E5%BC%A0",
        headers=[("X-Repeat", "one"), ("X-Repeat", "two"), ("Cookie", "s=1; t=2"), ("User-Agent", "e2e")],
        timeout=30,
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    event = answer.json()["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "ANY /echo/{proxy+}"
    assert event["rawPath"] == "/echo/a/b%20c" and event["rawQueryString"] == "x=1&x=2&y=%E5%BC%A0"
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["queryStringParameters"] == {"x": "1,2", "y": "张"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["headers"]["x-repeat"] == "one,two" and "cookie" not in event["headers"]
    context = event["requestContext"]
    assert context["http"]["method"] == "GET" and context["http"]["userAgent"] == "e2e"
    assert context["http"]["sourceIp"] == "127.0.0.1" and context["stage"] == "$default"
    assert context["domainName"] == f"127.0.0.1:{stack.api_port}"
    assert context["requestId"] == answer.headers["apigw-requestid"]
    assert "authorizer" not in context  # Authorizer: NONE
    assert "body" not in event and event["isBase64Encoded"] is False


def test_the_exact_route_beats_the_greedy_one_and_gets_the_default_authorizer(stack: StackProcess) -> None:
    event = httpx.get(f"{stack.url}/echo/exact", timeout=30).json()["event"]
    assert event["routeKey"] == "GET /echo/exact" and "pathParameters" not in event
    assert event["requestContext"]["authorizer"]["iam"]["accountId"] == "123456789012"


def test_bodies_text_and_binary(stack: StackProcess) -> None:
    form = httpx.post(f"{stack.url}/echo/form", data={"a": "1", "b": "张"}, timeout=30).json()["event"]
    assert form["isBase64Encoded"] is True
    assert base64.b64decode(form["body"]).decode() == "a=1&b=%E5%BC%A0"
    text = httpx.post(f"{stack.url}/echo/json", json={"a": "张"}, timeout=30).json()["event"]
    assert text["isBase64Encoded"] is False and json.loads(text["body"]) == {"a": "张"}
    raw = bytes(range(256))
    binary = httpx.put(
        f"{stack.url}/echo/bin", content=raw, headers={"content-type": "application/octet-stream"}, timeout=30
    ).json()["event"]
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == raw


def test_the_response_mapping_with_status_headers_and_cookies(stack: StackProcess) -> None:
    answer = httpx.get(f"{stack.url}/echo/x", headers={"x-status": "418"}, timeout=30)
    assert answer.status_code == 418 and answer.headers["x-echo"] == "yes"
    assert answer.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]


def test_the_context_and_the_environment(stack: StackProcess) -> None:
    answer = httpx.get(f"{stack.url}/echo/ctx", timeout=30).json()
    context, env = answer["context"], answer["env"]
    assert context["function_name"] == "EchoFunction" and context["memory_limit_in_mb"] == 256
    assert 0 < context["remaining_ms"] <= 25_000  # Globals: Timeout 25
    assert context["invoked_function_arn"].endswith(":function:EchoFunction")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert env["USERS_TABLE"] == "UsersTable" and env["EXTRA_TABLE"] == "ExtraTable"
    assert env["ONLY_HERE"] == "uat-echo"  # !Sub with a parameter's default
    assert env["MERCHANT_PRIVATE_KEY"] == f"file:{(stack.folder / 'keys' / 'merchant_private.pem').resolve()}"
    assert env["HTOUHUI_PUBLIC_KEY"] == f"file:{(stack.folder / 'keys' / 'htouhui_public.pem').resolve()}"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == stack.dynamodb_url
    assert env["PUBLIC_BASE_URL"] == stack.url and env["HTOUHUI_PARTNER_ID"] == "P2026000001"
    assert env["POWERTOOLS_SERVICE_NAME"] == "htouhui-onboarding"  # from Globals
    assert Path(answer["cwd"]).resolve() == (stack.folder / "extra" / "echo").resolve()
    # a warm environment keeps its module: the second call sees the same import time
    assert httpx.get(f"{stack.url}/echo/ctx", timeout=30).json()["loaded_at"] == answer["loaded_at"]
    log = (stack.folder / "logs" / "EchoFunction.log").read_text(encoding="utf-8")
    assert "echo handler log line" in log


def test_a_timeout_is_a_503_and_an_exception_a_500(stack: StackProcess) -> None:
    slow = httpx.get(f"{stack.url}/slow", timeout=30)
    assert (slow.status_code, slow.json()) == (503, {"message": "Service Unavailable"})
    boom = httpx.post(f"{stack.url}/boom", timeout=30)
    assert (boom.status_code, boom.json()) == (500, {"message": "Internal Server Error"})
    assert "RuntimeError: boom" in (stack.folder / "logs" / "BoomFunction.log").read_text(encoding="utf-8")
    text = stack.text()
    assert "GET /slow -> 503" in text and "timeout" in text
    assert "POST /boom -> 500" in text


def test_concurrent_invocations_get_their_own_environments(stack: StackProcess) -> None:
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{stack.url}/sleepy", timeout=30), range(2)))
    assert [answer.status_code for answer in answers] == [200, 200]
    assert len({answer.json()["pid"] for answer in answers}) == 2
    assert httpx.get(f"{stack.url}/_local/health").json()["functions"]["SleepyFunction"]["cold_starts"] == 2
