"""Docs that cannot drift: every name README.md, SECURITY.md and docs/*.md (not docs/spec/, the binding copies)
give in backticks exists. A CamelCase name is a template resource, parameter or output, or a name the code
defines; an UPPER_SNAKE name is a setting of onboarding/config.py (SETTINGS), a variable of the local stack or
the Makefile, or one of a few named external ones; an index named as one is the template's. The tables of
parameters and outputs and the alarm counts in docs/deploy.md and docs/runbook.md are compared with the template,
the configuration table of README with SETTINGS, and every `make admin-…`/`make probe` line with the Makefile.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import ROOT
from template_tools import load_template

from onboarding.config import SETTINGS

DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
BACKTICKED = re.compile(r"`([^`\n]+)`")
CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z0-9][a-z0-9]*)+$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
INDEX_MENTION = re.compile(r"`([a-z][a-z0-9-]*)` (?:index|GSI)")
# Names from outside this repository that the docs rightly mention (AWS, Lambda, the shell, the tools).
EXTERNAL = {
    # AWS and the SDKs' environment
    "AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_EVENTS",
    "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_FUNCTION_NAME", "SAM_CLI_TELEMETRY", "PYTHONPATH",
    "NEW_AND_OLD_IMAGES", "KEYS_ONLY", "PAY_PER_REQUEST", "TRIM_HORIZON", "AWS_IAM", "CI",
    # CloudFormation, Lambda and API Gateway vocabulary
    "DeletionPolicy", "UpdateReplacePolicy", "MaximumConcurrency", "ReportBatchItemFailures", "OnDemandThroughput",
    "IteratorAge", "ApproximateNumberOfMessages", "ApproximateAgeOfOldestMessage", "ReadThrottleEvents",
    "WriteThrottleEvents", "TableName", "GlobalSecondaryIndexName", "RouteSettings", "DefaultRouteSettings",
    "FilterCriteria", "SnapStart", "AutoPublishAlias", "ProvisionedConcurrencyConfig", "ReservedConcurrentExecutions",
    "BisectBatchOnFunctionError", "DestinationConfig", "OnFailure", "EventBridge", "CloudFront", "CloudWatch",
    "DynamoDB", "PowerTools", "Powertools", "GitHub", "OpenAPI", "JavaScript", "PyPI", "ConsumedCapacity",
    "ScannedCount", "LastEvaluatedKey", "UnprocessedItems", "ConditionalCheckFailedException", "ResourceNotFound",
    "ProvisionedThroughputExceededException", "TransactionCanceledException", "ThrottlingException",
    "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable", "LambdaContext",
    # AWS API actions and fields, and Powertools' own metric
    "GetItem", "PutItem", "UpdateItem", "TransactWriteItems", "GetSecretValue", "PutEvents",
    "ProvisionedThroughputExceeded", "DeadLetterConfig", "EventInvokeConfig", "PendingConfirmation",
    "VersionDescription", "ColdStart", "NaN", "POWERTOOLS_LOG_LEVEL",
    # placeholders in an ARN pattern
    "API_ID",
}  # fmt: skip
# Event and metric vocabulary of this application that is data, not a defined name.
EVENTS = {"UserStatusChanged", "CheckUserStatus", "ExportUser", "EraseUser", "DataRightsOutcome"}


def docs() -> list[Path]:
    return [path for path in DOCS if path.is_file()]


def strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {*value, *(s for item in value.values() for s in strings(item))}
    if isinstance(value, list):
        return {s for item in value for s in strings(item)}
    return set()


def template_names() -> set[str]:
    """Logical ids of resources, parameters, outputs, conditions and rules, and the names inside (Sids, keys)."""
    return strings(load_template())


def index_names() -> set[str]:
    return {
        index["IndexName"]
        for resource in load_template()["Resources"].values()
        if resource["Type"] == "AWS::DynamoDB::Table"
        for index in resource["Properties"].get("GlobalSecondaryIndexes", [])
    }


def code_names() -> set[str]:
    """Classes, functions and constants' string values defined in the layer, the functions, local/ and scripts."""
    names: set[str] = set()
    for folder in ("layers", "functions", "local", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef | ast.FunctionDef):
                    names.add(node.name)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 60:
                    names.add(node.value)
                elif isinstance(node, ast.Name):
                    names.add(node.id)
    return names


def variables_known() -> set[str]:
    """SETTINGS' variables, what the local stack and its sandbox read, and the Makefile's variables."""
    known = {setting.variable for setting in SETTINGS.values()}
    for path in [*(ROOT / "local").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        known |= set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']""", path.read_text(encoding="utf-8")))
    known |= set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", (ROOT / "Makefile").read_text(encoding="utf-8")))
    return known


def named(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # shell blocks are run, not read
    return [match.group(1).strip() for match in BACKTICKED.finditer(text)]


def test_every_camel_case_name_in_the_docs_exists() -> None:
    known = template_names() | code_names() | EXTERNAL | EVENTS
    unknown = sorted(
        {
            f"{path.relative_to(ROOT)}: {name}"
            for path in docs()
            for name in named(path)
            if CAMEL.fullmatch(name) and name not in known
        }
    )
    assert not unknown, f"docs name what neither the template nor the code has: {unknown}"


def test_every_upper_snake_name_in_the_docs_exists() -> None:
    known = variables_known() | EXTERNAL | code_names()
    unknown = sorted(
        {
            f"{path.relative_to(ROOT)}: {word}"
            for path in docs()
            for name in named(path)
            for word in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", name)
            if word not in known
        }
    )
    assert not unknown, f"docs name variables nothing reads: {unknown}"


def test_every_index_the_docs_name_exists() -> None:
    indexes = index_names()
    assert indexes == {"due-checks", "by-user"}
    mentioned = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in docs()
        for name in INDEX_MENTION.findall(path.read_text(encoding="utf-8"))
        if name not in indexes
    }
    # docs/deploy.md's upgrade section names the indexes an old stack had, as removed ones
    history = {"docs/deploy.md: unfinished", "docs/deploy.md: by-htouhui-user-id"}
    assert mentioned <= history, sorted(mentioned - history)


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else len(text)]


def test_the_parameters_table_is_the_templates() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    rows = [line for line in section(deploy, "## Parameters").splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Za-z0-9]+)`", row.split("|")[1])}
    expected = set(load_template()["Parameters"])
    assert documented == expected, sorted(documented ^ expected)


def test_the_outputs_list_is_the_templates() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Za-z0-9]+)`", section(deploy, "## Outputs").split("\n\n")[1]))
    template = load_template()
    expected = set(template["Outputs"])
    # every output is listed; other names there are the parameters an output depends on (`EgressMode`, ...)
    assert expected <= documented, sorted(expected - documented)
    assert documented - expected <= set(template["Parameters"]), sorted(documented - expected)


def test_the_alarm_counts_are_the_templates() -> None:
    alarms = [name for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    for doc in ("docs/deploy.md", "docs/runbook.md"):
        counts = re.findall(r"<!-- alarm-count -->(\d+)<!-- /alarm-count -->", (ROOT / doc).read_text(encoding="utf-8"))
        assert counts == [str(len(alarms))], doc


def test_the_configuration_table_names_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in section(readme, "## Configuration reference").splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    variables = {setting.variable for setting in SETTINGS.values()}
    assert documented and documented <= variables, sorted(documented - variables)
    template = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert set(template) - EXTERNAL <= variables, sorted(set(template) - variables)  # the template sets only settings


def test_every_documented_make_command_names_a_target_and_variables_the_makefile_has() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z0-9-]+):", makefile, re.MULTILINE))
    variables = set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", makefile))
    found = 0
    problems = []
    for path in docs():
        for match in re.finditer(r"make ((?:admin-[a-z]+|probe)\b)([^`\n|;&)]*)", path.read_text(encoding="utf-8")):
            found += 1
            target, rest = match.group(1), match.group(2)
            if target not in targets:
                problems.append(f"{path.relative_to(ROOT)}: no target {target}")
            for name in re.findall(r"\b([A-Z][A-Z0-9_]*)=", rest):
                if name not in variables:
                    problems.append(f"{path.relative_to(ROOT)}: make {target} does not read {name}")
    assert found >= 10
    assert not problems, problems


def test_the_tables_indexes_in_state_and_rules_are_the_templates() -> None:
    text = (ROOT / "docs" / "state-and-rules.md").read_text(encoding="utf-8")
    resources = load_template()["Resources"]
    for line in section(text, "## The tables").splitlines():
        cells = line.split("|")
        if not line.startswith("| `") or len(cells) < 5:
            continue
        table = re.findall(r"`([A-Za-z]+)`", cells[1])[0]
        expected = {i["IndexName"] for i in resources[table]["Properties"].get("GlobalSecondaryIndexes", [])}
        documented = set(re.findall(r"^`([a-z][a-z0-9-]*)`", cells[3].strip()))
        assert documented == expected, (table, documented, expected)
