"""template.yaml as a deployment would see it, offline: translated with aws-sam-translator (no AWS call), with a
set of parameter values, its conditions evaluated (by the local stack's resolver) so that only the resources
that deployment creates remain. Shared by the unit tests of alarms and operations and the integration test
that checks the alarms' metrics are emitted.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import ROOT
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse
from stack.template import Resolver, parameter_value

TEMPLATE = ROOT / "template.yaml"
PARTNER_ID = "P2026000001"
ENVIRONMENTS = ("uat", "stage", "prod", "cn")
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaDynamoDBExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
    "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
}


def load_template() -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    return template


def translate(parameters: dict[str, Any] | None = None, region: str = "ap-east-1") -> dict[str, Any]:
    template = load_template()
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):  # `sam package` would upload these; the translator wants S3
            if isinstance(properties.get(name), str):
                properties[name] = "s3://bucket/" + properties[name].strip("/")
    session = boto3.session.Session(region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
    translator = Translator(None, Parser(), boto_session=session)
    values = {"PartnerId": PARTNER_ID, **(parameters or {})}
    output: dict[str, Any] = translator.translate(
        template, values, get_managed_policy_map=lambda: dict(MANAGED_POLICIES)
    )
    return output


def samconfig_overrides(environment: str) -> dict[str, str]:
    """The environment's parameter_overrides, placeholders (SET-...) replaced as the deployer must."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    overrides = config[environment]["deploy"]["parameters"]["parameter_overrides"]
    pairs = dict(item.split("=", 1) for item in (overrides if isinstance(overrides, list) else overrides.split()))
    replacements = {"PartnerId": PARTNER_ID, "AlarmEmail": f"ops-{environment}@example.com"}
    return {name: replacements.get(name, value) if value.startswith("SET-") else value for name, value in pairs.items()}


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    given = {**{name: spec["Default"] for name, spec in template["Parameters"].items() if "Default" in spec}}
    given.update({"PartnerId": PARTNER_ID, **overrides})
    return {name: parameter_value(template["Parameters"].get(name, {}), value) for name, value in given.items()}


def deployed(overrides: dict[str, str]) -> tuple[dict[str, Any], Resolver]:
    """The translated resources that this deployment creates (conditions applied), and a resolver for values."""
    translated = translate(overrides)
    parameters = parameter_values(translated, overrides)
    resolver = Resolver(translated, parameters, {name: name for name in translated["Resources"]})
    resources = {
        name: resource
        for name, resource in translated["Resources"].items()
        if "Condition" not in resource or resolver.condition(resource["Condition"])
    }
    return resources, resolver


def alarms_of(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its single metric, or each MetricStat of its metric math."""
    if "MetricName" in alarm:
        return [{key: alarm.get(key) for key in ("Namespace", "MetricName", "Dimensions")}]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


# function logical id -> folder under functions/ (the names the bundle design fixes)
FUNCTIONS = {
    "RegisterFunction": "register",
    "OpenAccountFunction": "open_account",
    "QueryUserFunction": "query_user",
    "NotifyFunction": "notify",
    "ReconcileDispatchFunction": "reconcile_dispatch",
    "ReconcileWorkerFunction": "reconcile_worker",
    "PublishStatusFunction": "publish_status",
    "DataRightsFunction": "data_rights",
}

# API.md section 1: (method, path) -> (function, authorisation)
ROUTES = {
    ("post", "/users"): ("RegisterFunction", "AWS_IAM"),
    ("post", "/users/{third_party_user_id}/open-account"): ("OpenAccountFunction", "AWS_IAM"),
    ("get", "/users/{third_party_user_id}"): ("QueryUserFunction", "AWS_IAM"),
    ("post", "/htouhui/notify"): ("NotifyFunction", "NONE"),
    ("get", "/htouhui/return"): ("NotifyFunction", "NONE"),
}


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: make venv")
    return path
