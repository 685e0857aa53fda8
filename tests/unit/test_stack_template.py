"""The local stack reads routes, tables, functions, environments and event sources from the template."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "local"))

from stack import aws
from stack.template import Route, load, match

FIXTURE = textwrap.dedent(
    """
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      Stage: {Type: String, Default: uat}
      PartnerId: {Type: String}
      UseNext: {Type: String, Default: "false"}
      Rate: {Type: String, Default: rate(5 minutes)}
    Conditions:
      Next: !Equals [!Ref UseNext, "true"]
    Globals:
      Function:
        Runtime: python3.13
        Timeout: 7
        MemorySize: 256
        Environment:
          Variables:
            STAGE: !Ref Stage
            PARTNER: !Ref PartnerId
            TABLE: !Ref Users
            TABLE_ARN: !GetAtt Users.Arn
            KEY: !Sub "secretsmanager:${KeySecret}"
            NEXT: !If [Next, !Sub "secretsmanager:${KeySecret}", !Ref AWS::NoValue]
            REGION_TEXT: !Sub "${AWS::Region}/${Stage}"
    Resources:
      KeySecret: {Type: AWS::SecretsManager::Secret}
      Layer:
        Type: AWS::Serverless::LayerVersion
        Properties: {ContentUri: layer/}
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          Auth: {DefaultAuthorizer: AWS_IAM, EnableIamAuthorizer: true}
      Users:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PAY_PER_REQUEST
          AttributeDefinitions:
            - {AttributeName: id, AttributeType: S}
            - {AttributeName: open, AttributeType: S}
          KeySchema: [{AttributeName: id, KeyType: HASH}]
          GlobalSecondaryIndexes:
            - IndexName: open
              KeySchema: [{AttributeName: open, KeyType: HASH}]
              Projection: {ProjectionType: KEYS_ONLY}
          StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
          SSESpecification: {SSEEnabled: true}
          PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
          DeletionProtectionEnabled: !If [Next, true, false]
      Named:
        Type: AWS::DynamoDB::Table
        Properties:
          TableName: !Sub "named-${Stage}"
          AttributeDefinitions: [{AttributeName: k, AttributeType: S}]
          KeySchema: [{AttributeName: k, KeyType: HASH}]
          ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
      Hello:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/hello/
          Handler: app.lambda_handler
          Layers: [!Ref Layer]
          Environment:
            Variables:
              STAGE: local-wins
          Events:
            Get:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Path: "/items/{id}", Method: get}
            Exact:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Path: /items/special, Method: GET, Auth: {Authorizer: NONE}}
            Any:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Path: "/files/{proxy+}", Method: ANY}
            Tick:
              Type: ScheduleV2
              Properties: {ScheduleExpression: !Ref Rate, Input: '{"a": 1}'}
            Stream:
              Type: DynamoDB
              Properties:
                Stream: !GetAtt Users.StreamArn
                StartingPosition: LATEST
                BatchSize: 5
                FunctionResponseTypes: [ReportBatchItemFailures]
            Rule:
              Type: EventBridgeRule
              Properties:
                Pattern: {detail-type: [Check]}
    """
)


@pytest.fixture
def fixture_template(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(FIXTURE, encoding="utf-8")
    return path


def test_routes_functions_and_environment(fixture_template: Path, tmp_path: Path) -> None:
    template = load(fixture_template, parameter_overrides={"PartnerId": "P1"})
    keys = {route.route_key: route for route in template.routes}
    assert set(keys) == {"GET /items/{id}", "GET /items/special", "ANY /files/{proxy+}"}
    assert keys["GET /items/{id}"].auth == "AWS_IAM"  # the API's default authorizer
    assert keys["GET /items/special"].auth == "NONE"
    hello = template.functions["Hello"]
    assert hello.code_uri == (tmp_path / "functions" / "hello").resolve()
    assert hello.handler == "app.lambda_handler"
    assert hello.layers == ((tmp_path / "layer").resolve(),)
    assert (hello.timeout, hello.memory) == (7, 256)
    env = hello.environment
    assert env["STAGE"] == "local-wins"  # the function's own value beats Globals
    assert env["PARTNER"] == "P1"
    assert env["TABLE"] == "Users"  # !Ref of a table: its local name
    assert env["TABLE_ARN"] == "arn:aws:dynamodb:us-east-1:123456789012:table/Users"
    assert env["KEY"] == "secretsmanager:KeySecret"
    assert "NEXT" not in env  # AWS::NoValue drops the variable
    assert env["REGION_TEXT"] == "us-east-1/uat"
    assert template.unresolved == []


def test_a_parameter_without_default_is_reported(fixture_template: Path) -> None:
    template = load(fixture_template)
    assert "PARTNER" not in template.functions["Hello"].environment
    assert template.unresolved == ["Hello.PARTNER"]


def test_conditions_and_parameter_overrides(fixture_template: Path) -> None:
    template = load(fixture_template, parameter_overrides={"UseNext": "true", "Stage": "prod"})
    env = template.functions["Hello"].environment
    assert env["NEXT"] == "secretsmanager:KeySecret"
    assert template.tables["Named"].name == "named-prod"
    assert template.tables["Users"].properties["DeletionProtectionEnabled"] is True


def test_event_sources(fixture_template: Path) -> None:
    template = load(fixture_template, attributes=lambda logical, name: f"arn:{logical}:{name}")
    (schedule,) = template.schedules
    assert (schedule.kind, schedule.expression, schedule.input) == ("ScheduleV2", "rate(5 minutes)", '{"a": 1}')
    (stream,) = template.streams
    assert stream.table == "Users" and stream.stream_arn == "arn:Users:StreamArn"
    assert (stream.batch_size, stream.starting_position, stream.report_batch_item_failures) == (5, "LATEST", True)
    (rule,) = template.rules
    assert rule.pattern == {"detail-type": ["Check"]} and rule.bus is None


def test_tables_become_create_table_requests(fixture_template: Path) -> None:
    template = load(fixture_template)
    users = aws.create_table_request(template.tables["Users"])
    assert users == {
        "TableName": "Users",
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "open", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "open",
                "KeySchema": [{"AttributeName": "open", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    named = aws.create_table_request(template.tables["Named"])
    assert named["TableName"] == "named-uat"
    assert named["ProvisionedThroughput"] == {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}


def test_the_real_template_declares_what_api_md_lists() -> None:
    template = load(ROOT / "template.yaml")
    assert {route.route_key for route in template.routes} >= {
        "POST /users",
        "POST /users/{third_party_user_id}/open-account",
        "GET /users/{third_party_user_id}",
        "POST /htouhui/notify",
        "GET /htouhui/return",
    }
    assert {"UsersTable", "NotificationsTable"} <= set(template.tables)
    users = aws.create_table_request(template.tables["UsersTable"])
    assert {index["IndexName"] for index in users["GlobalSecondaryIndexes"]} == {"due-checks"}
    assert users["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    for function in template.functions.values():
        assert (function.code_uri / "app.py").exists(), function.logical_id


ROUTES = [
    Route("GET", "/items/{id}", "F1", "NONE", "a"),
    Route("GET", "/items/special", "F2", "NONE", "b"),
    Route("ANY", "/items/{id}", "F3", "NONE", "c"),
    Route("ANY", "/files/{proxy+}", "F4", "NONE", "d"),
    Route("POST", "/users/{id}/open-account", "F5", "NONE", "e"),
]


@pytest.mark.parametrize(
    ("method", "path", "function", "parameters"),
    [
        ("GET", "/items/special", "F2", {}),  # the exact path beats the parameter
        ("GET", "/items/42", "F1", {"id": "42"}),  # the method beats ANY
        ("DELETE", "/items/42", "F3", {"id": "42"}),
        ("GET", "/files/a/b/c.txt", "F4", {"proxy": "a/b/c.txt"}),
        ("POST", "/users/u%201/open-account", "F5", {"id": "u%201"}),
        ("GET", "/items", None, None),
        ("GET", "/items/", None, None),
        ("GET", "/files/", None, None),
        ("GET", "/users/u1/open-account", None, None),  # path known, method not: 404 as API Gateway
        ("POST", "/nowhere", None, None),
    ],
)
def test_route_matching(method: str, path: str, function: str | None, parameters: dict[str, str] | None) -> None:
    found = match(ROUTES, method, path)
    if function is None:
        assert found is None
    else:
        assert found is not None
        assert (found[0].function, found[1]) == (function, parameters)
