"""template.yaml, checked offline: linted, transformed with aws-sam-translator (no AWS call), and compared with
the code it deploys: every handler imports, every route reaches the function and the authorisation API.md gives,
the tables are those `onboarding.store` uses (exercised against moto with the template's own definitions), and each
function's role grants exactly what that function touches.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import LAYER, ROOT
from template_tools import FUNCTIONS, ROUTES, load_template, tool, translate

TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
PARTNER_ID = "P2026000001"


BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
STREAM = "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"
SQS = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": BASIC,
    "AWSLambdaDynamoDBExecutionRole": STREAM,
    "AWSLambdaSQSQueueExecutionRole": SQS,
}

USERS = "UsersTable.Arn"
NOTIFICATIONS = "NotificationsTable.Arn"
DUE_INDEX_ARN = "${UsersTable.Arn}/index/due-checks"
HTOUHUI_SECRETS = ("HtouhuiPublicKeySecret", "HtouhuiPublicKeyNextSecret")
SECRETS = ("MerchantPrivateKeySecret", *HTOUHUI_SECRETS)
BUS = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"


def _grants(table_actions: dict[str, tuple[str, ...]], *, keys: tuple[str, ...] = SECRETS) -> set[tuple[str, str]]:
    grants = {(action, resource) for resource, actions in table_actions.items() for action in actions}
    if keys:
        grants |= {("secretsmanager:GetSecretValue", secret) for secret in keys}
        grants.add(("kms:Decrypt", "DataKey.Arn"))
    return grants


# What each function touches (read from onboarding.store and onboarding.runtime): the store's calls per use case, and
# the key secrets a function reads: Settings.keys() (a Htouhui client, a signed form) reads all of them,
# Settings.htouhui_public_keys() (verifying a notification or a return) only Htouhui's.
# TransactWriteItems is not an IAM action: its Put and Update need PutItem and UpdateItem on their tables.
EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    # claim_registration/complete_registration: UpdateItem; release_claim: DeleteItem; explain/get: GetItem
    "RegisterFunction": _grants({USERS: ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")}),
    # mark_open_requested: UpdateItem (+ GetItem to explain a refusal), then sign the form
    "OpenAccountFunction": _grants({USERS: ("dynamodb:GetItem", "dynamodb:UpdateItem")}),
    # get; ?refresh=true: one UpdateItem on the refresh budget table (onboarding.refresh, nothing else there), then
    # query Htouhui, apply_status without notify_no (UpdateItem, no history)
    "QueryUserFunction": _grants(
        {USERS: ("dynamodb:GetItem", "dynamodb:UpdateItem"), "RefreshBudgetTable.Arn": ("dynamodb:UpdateItem",)}
    ),
    # apply_status with notify_no: TransactWriteItems (Put history + Update user), a plain Put when stale
    "NotifyFunction": _grants(
        {USERS: ("dynamodb:GetItem", "dynamodb:UpdateItem"), NOTIFICATIONS: ("dynamodb:PutItem",)},
        keys=HTOUHUI_SECRETS,
    ),
    # due(): Query on the due-time index only (never Scan); claim_dispatch: UpdateItem; the queue: send and depth
    "ReconcileDispatchFunction": _grants(
        {
            USERS: ("dynamodb:UpdateItem",),
            DUE_INDEX_ARN: ("dynamodb:Query",),
            "ReconcileQueue.Arn": ("sqs:SendMessage", "sqs:GetQueueAttributes"),
        },
        keys=(),
    ),
    # begin_check/settle_check/release_check: UpdateItem; get and the monotonic store: GetItem, UpdateItem;
    # the queues are read through the event source mappings (SAM's AWSLambdaSQSQueueExecutionRole)
    "ReconcileWorkerFunction": _grants({USERS: ("dynamodb:GetItem", "dynamodb:UpdateItem")}),
    # the stream is read through the event source mapping (SAM's AWSLambdaDynamoDBExecutionRole)
    "PublishStatusFunction": {("events:PutEvents", BUS)},
    # ExportUser: stored + history_of (GetItem, Query by-user, GetItem); EraseUser: UpdateItem on both tables;
    # the export object (PutObject, GetObject for HeadObject) under the data key; the outcome event
    "DataRightsFunction": _grants(
        {
            USERS: ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            NOTIFICATIONS: ("dynamodb:GetItem", "dynamodb:UpdateItem"),
            "${NotificationsTable.Arn}/index/by-user": ("dynamodb:Query",),
            "${ExportBucket.Arn}/exports/*": ("s3:PutObject", "s3:GetObject"),
            "DataKey.Arn": ("kms:GenerateDataKey", "kms:Decrypt"),
            BUS: ("events:PutEvents",),
        },
        keys=(),
    ),
}
# policies SAM adds for the failure destinations
EXPECTED_DESTINATION_GRANTS = {
    "ReconcileDispatchFunction": {("sqs:SendMessage", "AsyncFailureQueue.Arn")},
    "PublishStatusFunction": {("sqs:SendMessage", "StreamFailureQueue.Arn")},
    "DataRightsFunction": {("sqs:SendMessage", "AsyncFailureQueue.Arn")},
}
VPC_ACCESS = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
# The functions that call Htouhui may run in the VPC (EgressMode=nat): SAM attaches the ENI policy whenever
# VpcConfig is present, also when its Fn::If gives NoValue (test_egress.py).
EGRESS_FUNCTIONS = ("RegisterFunction", "QueryUserFunction", "ReconcileWorkerFunction")
EXPECTED_MANAGED = (
    {name: {BASIC} for name in FUNCTIONS}
    | {"PublishStatusFunction": {BASIC, STREAM}}
    | {name: {BASIC, VPC_ACCESS} for name in EGRESS_FUNCTIONS}
    | {"ReconcileWorkerFunction": {BASIC, SQS, VPC_ACCESS}}
)


# ------------------------------------------------------------------------------------------------ helpers


def name_of(value: Any) -> str:
    """A resource reference as text: Ref X -> X, GetAtt X.Y -> X.Y, Sub s -> s."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return str(value["Ref"])
    if "Fn::GetAtt" in value:
        attribute = value["Fn::GetAtt"]
        return attribute if isinstance(attribute, str) else ".".join(attribute)
    if "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    raise AssertionError(f"unexpected reference {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_grants(resources: dict[str, Any], function: str) -> tuple[set[tuple[str, str]], list[dict[str, Any]]]:
    role = resources[f"{function}Role"]["Properties"]
    grants: set[tuple[str, str]] = set()
    statements: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            statements.append(statement)
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    grants.add((action, name_of(resource)))
    return grants, statements


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return translate()


@pytest.fixture(scope="module")
def resources(translated: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = translated["Resources"]
    return result


# ------------------------------------------------------------------------------------------------ linters


def test_cfn_lint_reports_nothing() -> None:
    result = subprocess.run([tool("cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_sam_validate_lint_passes() -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "ap-east-1"}
    result = subprocess.run(
        [tool("sam"), "validate", "--lint", "--template", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "parameters",
    [
        {"Environment": "prod", "HtouhuiBaseUrl": "https://www.htouhui.com"},
        {"DeletionProtection": "false", "UseNextHtouhuiPublicKey": "true"},
        {"AlarmTopicArn": "arn:aws:sns:ap-east-1:123456789012:ops", "ReconcileRateBudget": "20"},
        {"ReconcileLadder": "1m,10m,1d", "ReconcileShards": "4", "ReconcileWorkers": "4"},
    ],
)
def test_translates_with_other_parameter_values(parameters: dict[str, str]) -> None:
    assert "HttpApi" in translate(parameters)["Resources"]


# ------------------------------------------------------------------------------------------------ functions


def test_exactly_the_eight_functions_with_the_shared_layer(template: dict[str, Any]) -> None:
    functions = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == set(FUNCTIONS)
    for name, properties in functions.items():
        assert properties["CodeUri"] == f"functions/{FUNCTIONS[name]}/"
        assert properties["Handler"] == "app.lambda_handler"
        assert properties["Layers"] == [{"Ref": "HtouhuiLayer"}]
        assert "Role" not in properties  # SAM builds one role per function from its own Policies
        assert "Environment" not in properties  # one environment, in Globals


def test_globals_runtime_and_environment(template: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert 3 <= function["Timeout"] <= 29  # under the HTTP API's 30 s integration limit
    assert function["MemorySize"] >= 256
    env = function["Environment"]["Variables"]
    for name in (
        "POWERTOOLS_SERVICE_NAME",
        "HTOUHUI_PARTNER_ID",
        "HTOUHUI_ENV",
        "HTOUHUI_BASE_URL",
        "HTOUHUI_QUERY_PATH",
        "USERS_TABLE",
        "NOTIFICATIONS_TABLE",
        "ALLOWED_RETURN_HOSTS",
        "FRONTEND_RETURN_URL",
        "EVENT_BUS_NAME",
        "RECONCILE_LADDER",
        "RECONCILE_SHARDS",
        "RECONCILE_RATE_BUDGET",
        "RECONCILE_WORKERS",
        "RECONCILE_PRIORITY_WORKERS",
        "RECONCILE_QUEUE_URL",
        "REFRESH_RATE_BUDGET",
        "REFRESH_BUDGET_TABLE",
        "MERCHANT_PRIVATE_KEY",
        "HTOUHUI_PUBLIC_KEY",
        "HTOUHUI_PUBLIC_KEY_NEXT",
    ):
        assert name in env, name
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Htouhui"
    assert env["USERS_TABLE"] == {"Ref": "UsersTable"}
    assert env["NOTIFICATIONS_TABLE"] == {"Ref": "NotificationsTable"}
    assert env["HTOUHUI_PARTNER_ID"] == {"Ref": "PartnerId"}
    assert env["RECONCILE_QUEUE_URL"] == {"Ref": "ReconcileQueue"}
    # the settings' defaults are the template's: one ladder, one budget, whichever way a function is started
    from onboarding.config import Settings
    from onboarding.schedule import parse_ladder

    parameters = template["Parameters"]
    defaults = Settings.__dataclass_fields__
    assert parse_ladder(parameters["ReconcileLadder"]["Default"]) == defaults["reconcile_ladder"].default
    assert parameters["ReconcileShards"]["Default"] == defaults["reconcile_shards"].default
    assert parameters["ReconcileRateBudget"]["Default"] == defaults["reconcile_rate_budget"].default
    assert parameters["ReconcileWorkers"]["Default"] == defaults["reconcile_workers"].default
    assert parameters["RefreshRateBudget"]["Default"] == defaults["refresh_rate_budget"].default
    assert env["REFRESH_RATE_BUDGET"] == {"Ref": "RefreshRateBudget"}
    assert env["REFRESH_BUDGET_TABLE"] == {"Ref": "RefreshBudgetTable"}
    assert int(env["RECONCILE_PRIORITY_WORKERS"]) == defaults["reconcile_priority_workers"].default
    # keys: a secretsmanager: source naming a secret this template creates, never key material
    assert env["MERCHANT_PRIVATE_KEY"] == {"Fn::Sub": "secretsmanager:${MerchantPrivateKeySecret}"}
    assert env["HTOUHUI_PUBLIC_KEY"] == {"Fn::Sub": "secretsmanager:${HtouhuiPublicKeySecret}"}
    assert env["HTOUHUI_PUBLIC_KEY_NEXT"] == {
        "Fn::If": [
            "UseNextKey",
            {"Fn::Sub": "secretsmanager:${HtouhuiPublicKeyNextSecret}"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    for secret in SECRETS:
        assert template["Resources"][secret]["Type"] == "AWS::SecretsManager::Secret"
        assert "SecretString" not in template["Resources"][secret]["Properties"]  # created empty
        assert template["Resources"][secret]["Properties"]["KmsKeyId"] == {"Ref": "DataKey"}


def test_no_parameter_carries_key_material(template: dict[str, Any]) -> None:
    for name, parameter in template["Parameters"].items():
        assert not re.search(r"private|secret|pem|password", name, re.IGNORECASE), name
        assert "BEGIN" not in str(parameter.get("Default", ""))
    assert "PRIVATE KEY" not in TEMPLATE.read_text(encoding="utf-8")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_file_exists_and_imports(function: str, template: dict[str, Any], monkeypatch: Any) -> None:
    properties = template["Resources"][function]["Properties"]
    module_name, handler_name = properties["Handler"].rsplit(".", 1)
    path = ROOT / properties["CodeUri"] / f"{module_name}.py"
    assert path.is_file(), f"{function}: {path.relative_to(ROOT)} does not exist"
    monkeypatch.syspath_prepend(str(LAYER))
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "htouhui-onboarding",
        "POWERTOOLS_METRICS_NAMESPACE": "Htouhui",
    }.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"template_handler_{FUNCTIONS[function]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, handler_name, None)), f"{function}: no {handler_name} in {path.name}"


def test_function_requirements_add_nothing_to_the_layer() -> None:
    for folder in FUNCTIONS.values():
        requirements = ROOT / "functions" / folder / "requirements.txt"
        if requirements.exists():
            lines = [
                line for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")
            ]
            assert lines == [], f"functions/{folder}/requirements.txt: dependencies belong in the layer"


def test_layer_builds_for_python313_arm64_without_boto3(template: dict[str, Any]) -> None:
    layer = template["Resources"]["HtouhuiLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/common/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    requirements = (ROOT / "layers" / "common" / "requirements.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in requirements if line.split("#")[0].strip()]
    assert pins and all("==" in pin for pin in pins), pins
    assert not any(re.match(r"(boto3|botocore)\b", pin, re.IGNORECASE) for pin in pins)


# ------------------------------------------------------------------------------------------------ HTTP API


def test_routes_reach_the_right_function_with_the_right_auth(resources: dict[str, Any]) -> None:
    body = resources["HttpApi"]["Properties"]["Body"]
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["payloadFormatVersion"] == "2.0"
            # the notify function through its alias "live" (NotifyColdStart: SnapStart and provisioned concurrency
            # apply to published versions), the others unqualified
            match = re.search(r"\$\{(\w+?)(?:\.Arn|Aliaslive)\}", name_of(integration["uri"]))
            assert match, integration["uri"]
            assert ("Aliaslive}" in name_of(integration["uri"])) == (match.group(1) == "NotifyFunction"), path
            security = operation.get("security")
            assert security is not None and len(security) == 1, (path, method, security)
            (auth,) = security[0]
            found[(method, path)] = (match.group(1), auth)
    assert found == ROUTES
    assert body["components"]["securitySchemes"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    # API Gateway may invoke each function on its own routes of this API only
    invocable: dict[str, set[str]] = {}
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Permission" and properties["Principal"] == "apigateway.amazonaws.com":
            arn, variables = properties["SourceArn"]["Fn::Sub"]
            assert variables["__ApiId__"] == {"Ref": "HttpApi"}
            route = arn.split("${__Stage__}/", 1)[1]
            invocable.setdefault(properties["FunctionName"]["Ref"].removesuffix("Aliaslive"), set()).add(route)
    expected: dict[str, set[str]] = {}
    for (method, path), (function, _) in ROUTES.items():
        expected.setdefault(function, set()).add(method.upper() + re.sub(r"\{[^}]+\}", "*", path))
    assert invocable == expected


def test_http_api_defaults_to_iam_with_throttling_and_access_logs(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"] == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}
    stage = next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage")
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
        "DetailedMetricsEnabled": True,  # per-route 5xx for the alarms (test_alarms.py)
    }
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    log_format = stage["AccessLogSettings"]["Format"]
    assert "$context.requestId" in log_format
    # no query string, path or body in the access log: nothing personal can land there
    assert "$context.path" not in log_format and "querystring" not in log_format.lower()
    assert resources["ApiAccessLogs"]["Type"] == "AWS::Logs::LogGroup"


def test_outputs_hand_htouhui_the_notify_url(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    base = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": base}
    for name, path in (("NotifyUrl", "/htouhui/notify"), ("ReturnUrl", "/htouhui/return")):
        # PublicBaseUrl, else the custom domain, else execute-api (test_custom_domain.py)
        assert outputs[name]["Value"]["Fn::If"][2]["Fn::If"][2] == {"Fn::Sub": base + path}
    for name in (
        "UsersTableName",
        "NotificationsTableName",
        "MerchantPrivateKeySecretArn",
        "HtouhuiPublicKeySecretArn",
        "HtouhuiPublicKeyNextSecretArn",
    ):
        assert name in outputs


# ------------------------------------------------------------------------------------------------ state


def test_tables_match_the_store(template: dict[str, Any]) -> None:
    from onboarding import store

    users = template["Resources"]["UsersTable"]["Properties"]
    assert users["KeySchema"] == [{"AttributeName": store.USERS_KEY, "KeyType": "HASH"}]
    (index,) = users["GlobalSecondaryIndexes"]  # the due-time index only (no by-htouhui-user-id: nothing read it)
    assert index["IndexName"] == store.DUE_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": store.SHARD_ATTRIBUTE, "KeyType": "HASH"},
        {"AttributeName": store.DUE_ATTRIBUTE, "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {item["AttributeName"]: item["AttributeType"] for item in users["AttributeDefinitions"]}
    assert types == {store.USERS_KEY: "S", store.SHARD_ATTRIBUTE: "S", store.DUE_ATTRIBUTE: "N"}
    assert users["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}

    notifications = template["Resources"]["NotificationsTable"]["Properties"]
    assert notifications["KeySchema"] == [{"AttributeName": store.NOTIFICATIONS_KEY, "KeyType": "HASH"}]
    # one index: a user's history by Query (htouhui.admin, erasure); keys only, the records are read by notify_no
    (by_user,) = notifications["GlobalSecondaryIndexes"]
    assert by_user["KeySchema"] == [
        {"AttributeName": "third_party_user_id", "KeyType": "HASH"},
        {"AttributeName": "received_at", "KeyType": "RANGE"},
    ]
    assert by_user["Projection"] == {"ProjectionType": "KEYS_ONLY"}

    # the refresh budget's windows (onboarding.refresh): keyed by the window's epoch second, expiring by TTL
    from onboarding import refresh

    budget = template["Resources"]["RefreshBudgetTable"]["Properties"]
    assert budget["KeySchema"] == [{"AttributeName": refresh.WINDOW_KEY, "KeyType": "HASH"}]
    assert budget["AttributeDefinitions"] == [{"AttributeName": refresh.WINDOW_KEY, "AttributeType": "N"}]
    assert budget["TimeToLiveSpecification"] == {"AttributeName": refresh.EXPIRES_ATTRIBUTE, "Enabled": True}
    assert "GlobalSecondaryIndexes" not in budget and "StreamSpecification" not in budget

    for table in (users, notifications, budget):
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "DataKey"}}
        assert table["DeletionProtectionEnabled"] == {"Fn::If": ["IsDeletionProtected", True, False]}
    assert template["Parameters"]["DeletionProtection"]["Default"] == "true"
    for name in ("UsersTable", "NotificationsTable", "RefreshBudgetTable", "DataKey"):
        assert template["Resources"][name]["DeletionPolicy"] == "Retain"


def test_customer_key_rotates_and_has_a_policy(template: dict[str, Any]) -> None:
    key = template["Resources"]["DataKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    account = [
        s
        for s in statements
        if s["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    ]
    assert account, "the account must administer the key through IAM"
    # anyone else only through DynamoDB, in this account
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    for statement in cloudwatch:  # publishes to the encrypted alarm topic: this account's alarms only
        assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    for statement in statements:
        if statement not in account and statement not in cloudwatch:
            assert statement["Condition"]["StringEquals"]["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
            assert statement["Condition"]["StringEquals"]["kms:ViaService"] in (
                {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"},
                {"Fn::Sub": "backup.${AWS::Region}.amazonaws.com"},  # the users table's backups (issue 19)
            )
    vault = template["Resources"]["BackupVault"]["Properties"]
    assert vault["EncryptionKeyArn"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "DataKey"}
    notify = template["Resources"]["NotifyFunction"]["Properties"]
    assert notify["ReservedConcurrentExecutions"] == {"Ref": "NotifyReservedConcurrency"}


def _boto3_table(properties: dict[str, Any], name: str, deletion_protection: bool) -> dict[str, Any]:
    """The template's table definition as CreateTable arguments (moto has no KMS-backed SSE to check)."""
    table = copy.deepcopy(properties)
    for cloudformation_only in (
        "SSESpecification",
        "PointInTimeRecoverySpecification",
        "Tags",
        "TimeToLiveSpecification",
    ):
        table.pop(cloudformation_only, None)
    table["DeletionProtectionEnabled"] = deletion_protection
    table["StreamSpecification"] = {"StreamEnabled": True, **table.get("StreamSpecification", {})}
    if "StreamViewType" not in table["StreamSpecification"]:
        table.pop("StreamSpecification")
    return {"TableName": name, **table}


@pytest.fixture
def template_tables(template: dict[str, Any], in_process_aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    for logical in ("UsersTable", "NotificationsTable"):
        client.create_table(**_boto3_table(template["Resources"][logical]["Properties"], logical, False))
    return client


def test_store_works_on_the_tables_the_template_declares(template_tables: Any) -> None:
    from onboarding.schedule import Slot
    from onboarding.store import ApplyOutcome, ClaimOutcome, DueUser, StatusUpdate, UserStore

    store = UserStore("UsersTable", "NotificationsTable", dynamodb=template_tables)
    now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    epoch = int(now.timestamp())
    claim = store.claim_registration("u-1", "d" * 64, now)
    assert claim.outcome is ClaimOutcome.CLAIMED
    store.complete_registration("u-1", "H100", now)
    assert store.due("03", epoch + 10_000, 10) == []  # registered, no form: not scheduled
    store.mark_open_requested("u-1", "110105199003071234", now)
    assert store.restart_schedule("u-1", Slot(epoch, 0, epoch + 300), "03")
    assert store.due("03", epoch + 299, 10) == []
    assert store.due("03", epoch + 300, 10) == [DueUser("u-1", epoch + 300, "03")]
    assert store.claim_dispatch(DueUser("u-1", epoch + 300, "03"), epoch + 1200)

    def update(status: int, notify_no: str | None) -> StatusUpdate:
        return StatusUpdate("u-1", "H100", status, "notify" if notify_no else "query", now, notify_no=notify_no)

    assert store.apply_status(update(1, "N1")) is ApplyOutcome.APPLIED
    assert store.apply_status(update(1, "N1")) is ApplyOutcome.DUPLICATE
    assert store.due("03", epoch + 1200, 10) == [DueUser("u-1", epoch + 1200, "03")]
    assert store.apply_status(update(3, None)) is ApplyOutcome.APPLIED
    assert store.due("03", epoch + 10**7, 10) == []  # status 3 left the sparse index


# ------------------------------------------------------------------------------------------------ permissions


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_role_grants_exactly_what_the_function_touches(function: str, resources: dict[str, Any]) -> None:
    grants, statements = role_grants(resources, function)
    assert grants == EXPECTED_GRANTS[function] | EXPECTED_DESTINATION_GRANTS.get(function, set())
    managed = resources[f"{function}Role"]["Properties"]["ManagedPolicyArns"]
    conditional = [arn for arn in managed if isinstance(arn, dict)]  # the profile in SSM: test_template_profile.py
    assert all(arn["Fn::If"][0] == "ProfileInSsm" for arn in conditional)
    assert {arn for arn in managed if isinstance(arn, str)} == EXPECTED_MANAGED[function]
    for statement in statements:
        assert "*" not in [name_of(resource) for resource in as_list(statement["Resource"])]
        assert not any(action.endswith("*") for action in as_list(statement["Action"]))
        if statement["Action"] == "kms:Decrypt":  # the key only as Secrets Manager uses it
            assert statement["Condition"] == {
                "StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}
            }


def test_nothing_may_scan(resources: dict[str, Any]) -> None:
    text = str(resources)
    assert "dynamodb:Scan" not in text
    assert "dynamodb:*" not in text


# ------------------------------------------------------------------------------------------------ events


def test_dispatcher_runs_every_minute_with_a_dead_letter_queue(resources: dict[str, Any]) -> None:
    (schedule,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert "Name" not in schedule  # generated: two stacks in one account do not collide
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["ReconcileDispatchFunction", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0  # the next minute is the retry


def test_check_user_status_rule_sends_to_its_own_queue(resources: dict[str, Any]) -> None:
    rule = resources["CheckUserStatusRule"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "EventBusName"}
    # any source unless CheckUserStatusSources names some (test_data_lifecycle.py)
    assert rule["EventPattern"]["Fn::If"][0] == "HasCheckSources"
    assert rule["EventPattern"]["Fn::If"][2] == {"detail-type": ["CheckUserStatus"]}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["CheckUserStatusQueue", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"]}}
    for policy in ("CheckUserStatusQueuePolicy", "ReconcileDeadLetterQueuePolicy"):
        statement = resources[policy]["Properties"]["PolicyDocument"]["Statement"][0]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["CheckUserStatusRule", "Arn"]}


def test_worker_consumes_both_queues_within_the_budget(template: dict[str, Any], resources: dict[str, Any]) -> None:
    mappings = {
        name_of(r["Properties"]["EventSourceArn"]): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "ReconcileWorkerFunction"}
    }
    assert set(mappings) == {"ReconcileQueue.Arn", "CheckUserStatusQueue.Arn"}
    scheduled, priority = mappings["ReconcileQueue.Arn"], mappings["CheckUserStatusQueue.Arn"]
    assert scheduled["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ReconcileWorkers"}}
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["RECONCILE_WORKERS"] == {"Ref": "ReconcileWorkers"}  # the pacing counts the same slots
    assert priority["ScalingConfig"] == {"MaximumConcurrency": int(env["RECONCILE_PRIORITY_WORKERS"])}
    for mapping in (scheduled, priority):
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] <= 10
    worker_timeout = template["Resources"]["ReconcileWorkerFunction"]["Properties"]["Timeout"]
    for queue in ("ReconcileQueue", "CheckUserStatusQueue"):
        properties = template["Resources"][queue]["Properties"]
        assert properties["VisibilityTimeout"] > worker_timeout
        assert properties["RedrivePolicy"]["deadLetterTargetArn"] == {
            "Fn::GetAtt": ["ReconcileWorkDeadLetterQueue", "Arn"]
        }
        # a message is retried more than once before it is dead-lettered
        assert properties["RedrivePolicy"]["maxReceiveCount"] >= 3


def test_asynchronous_invocations_have_an_on_failure_destination(resources: dict[str, Any]) -> None:
    configs = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    invoked = {config["FunctionName"]["Ref"] for config in configs}
    assert invoked == {"ReconcileDispatchFunction", "DataRightsFunction"}  # the scheduled and the event-driven ones
    for config in configs:
        assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}


def test_data_rights_requests_reach_their_function_and_exports_expire(resources: dict[str, Any]) -> None:
    (rule,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule"
        and r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["DataRightsFunction", "Arn"]}
    ]
    assert rule["EventBusName"] == {"Ref": "EventBusName"}
    condition, sources, anyone = rule["EventPattern"]["Fn::If"]
    assert condition == "HasDataRightsSources" and sources["source"] == {"Ref": "DataRightsSources"}
    # the stack's own outcome events never come back as requests
    assert anyone == {"detail-type": ["ExportUser", "EraseUser"], "source": [{"anything-but": "htouhui.onboarding"}]}
    bucket = resources["ExportBucket"]["Properties"]
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    data_key = {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": data_key}
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled" and lifecycle["ExpirationInDays"] == 1
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    (tls,) = resources["ExportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_stream_publishes_status_changes(resources: dict[str, Any]) -> None:
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "PublishStatusFunction"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["UsersTable", "StreamArn"]}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]  # publish_status reports the first failure
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]}
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    # a status (published), a registration completed and a form handed out (the funnel's metrics)
    assert [set(p["dynamodb"]["NewImage"]) for p in patterns] == [{"status"}, {"registration"}, {"open_requested"}]
    assert all(p["eventName"] == ["INSERT", "MODIFY"] for p in patterns)


def test_alarms_on_errors_throttles_and_dead_letters(resources: dict[str, Any]) -> None:
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    lambda_alarms = {
        (a["MetricName"], a["Dimensions"][0]["Value"]["Ref"])
        for a in alarms
        if a.get("Namespace") == "AWS/Lambda" and a.get("MetricName") in ("Errors", "Throttles")
    }
    assert lambda_alarms == {(metric, f) for metric in ("Errors", "Throttles") for f in FUNCTIONS}

    def alarmed(metric: str) -> set[str]:
        return {
            a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
            for a in alarms
            if a.get("Namespace") == "AWS/SQS" and a.get("MetricName") == metric
        }

    work_queues = {"ReconcileQueue", "CheckUserStatusQueue"}
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    assert alarmed("ApproximateNumberOfMessagesVisible") == queues - work_queues  # any dead letter alarms
    assert alarmed("ApproximateAgeOfOldestMessage") == work_queues  # work waiting too long alarms
    for alarm in alarms:  # every alarm reaches the given topic or the stack's own (test_alarms.py)
        assert alarm["AlarmActions"] == [{"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]
    assert "ReconcileFailures" in {a.get("MetricName") for a in alarms if a.get("Namespace") == "Htouhui"}


# ------------------------------------------------------------------------------------------------ samconfig


def test_samconfig_environments_use_the_protocol_base_urls() -> None:
    from htouhui.client import ENVIRONMENTS

    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    template_parameters = load_template()["Parameters"]
    for environment in ("uat", "stage", "prod"):
        deploy = config[environment]["deploy"]["parameters"]
        overrides = deploy["parameter_overrides"]
        pairs = dict(item.split("=", 1) for item in (overrides if isinstance(overrides, list) else overrides.split()))
        assert pairs["Environment"] == environment
        assert pairs["HtouhuiBaseUrl"] == ENVIRONMENTS[environment]
        assert set(pairs) <= set(template_parameters)
        # the placeholder cannot be deployed by mistake: the template's pattern rejects it
        pattern = template_parameters["PartnerId"]["AllowedPattern"]
        assert re.fullmatch(pattern, PARTNER_ID)
        if pairs["PartnerId"].startswith("SET-"):  # until the merchant puts its number in
            assert not re.fullmatch(pattern, pairs["PartnerId"])
        else:
            assert re.fullmatch(pattern, pairs["PartnerId"])
        assert deploy["stack_name"].endswith(environment)
        assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
