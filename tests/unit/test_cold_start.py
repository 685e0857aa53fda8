"""NotifyColdStart (none | snapstart | provisioned): the notify function behind its alias "live", SnapStart on its
published versions or provisioned concurrency on the alias; every mode translates (each one's lint is in
test_template.py / test_egress.py, which lint every condition's branches, for the China regions too).

SAM decides whether to publish a new version from the template's text, not from parameter values
(aws/serverless-application-model#1640): the values that change the notify path go into the version's
description, whose change publishes one. The last test keeps that list complete."""

from __future__ import annotations

import re
from typing import Any

import pytest
from stack.template import NO_VALUE
from template_tools import deployed, load_template

NOTIFY = "NotifyFunction"
ALIAS = "NotifyFunctionAliaslive"
# Parameters that reach the notify function's configuration but not its behaviour (other functions read them),
# or that live on the alias (no new version needed).
NOT_READ_BY_NOTIFY = {
    "HtouhuiBaseUrl",  # the Htouhui client (register, query, reconcile)
    "HtouhuiQueryPath",
    "AllowedReturnHosts",  # open_account's return_url check
    "PublicBaseUrl",  # notify_url and the default return_url (open_account)
    "DomainName",
    "EventBusName",  # publish_status
    "ReconcileLadder",  # the reconciliation functions
    "ReconcileRateBudget",
    "ReconcileShards",
    "ReconcileWorkers",
    "RefreshRateBudget",  # query_user's ?refresh=true
    "NotifyProvisionedConcurrency",  # on the alias
}


def _version(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(name, version)] = [(n, r) for n, r in resources.items() if r["Type"] == "AWS::Lambda::Version"]
    return name, version


@pytest.mark.parametrize("mode", ["none", "snapstart", "provisioned"])
def test_each_mode_deploys_the_notify_function_behind_its_alias(mode: str) -> None:
    resources, resolver = deployed({"NotifyColdStart": mode, "NotifyProvisionedConcurrency": "3"})
    function = resources[NOTIFY]["Properties"]
    alias = resources[ALIAS]["Properties"]
    _, version = _version(resources)
    assert alias["Name"] == "live"
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [_version(resources)[0], "Version"]}
    assert version["Properties"]["FunctionName"] == {"Ref": NOTIFY}
    assert version["DeletionPolicy"] == "Retain"  # old versions (and their snapshots) are removed by an operator

    apply_on = resolver.resolve(function["SnapStart"]["ApplyOn"])
    provisioned = resolver.resolve(alias["ProvisionedConcurrencyConfig"])
    environment = {k: resolver.resolve(v) for k, v in function["Environment"]["Variables"].items()}
    if mode == "snapstart":
        assert apply_on == "PublishedVersions" and provisioned is NO_VALUE
    elif mode == "provisioned":
        assert apply_on == "None" and provisioned == {"ProvisionedConcurrentExecutions": "3"}
    else:
        assert apply_on == "None" and provisioned is NO_VALUE
    assert environment["PRIME_HTOUHUI_KEYS"] == "false"  # NotifyPrimeKeys defaults to keeping keys out
    # no other function has a version, an alias or SnapStart
    others = [n for n, r in resources.items() if r["Type"] in ("AWS::Lambda::Version", "AWS::Lambda::Alias")]
    assert set(others) == {ALIAS, _version(resources)[0]}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function" and name != NOTIFY:
            assert "SnapStart" not in resource["Properties"], name


def test_prime_keys_reaches_the_hook_only_with_snapstart() -> None:
    for mode, expected in (("snapstart", "true"), ("provisioned", "false"), ("none", "false")):
        resources, resolver = deployed({"NotifyColdStart": mode, "NotifyPrimeKeys": "true"})
        variables = resources[NOTIFY]["Properties"]["Environment"]["Variables"]
        assert resolver.resolve(variables["PRIME_HTOUHUI_KEYS"]) == expected, mode


def test_snapstart_is_refused_in_the_china_regions() -> None:
    rule = load_template()["Rules"]["NotifySnapStartOutsideChina"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "NotifyColdStart"}, "snapstart"]}
    [assertion] = rule["Assertions"]
    regions, region = assertion["Assert"]["Fn::Not"][0]["Fn::Contains"]
    assert set(regions) == {"cn-north-1", "cn-northwest-1"} and region == {"Ref": "AWS::Region"}


def _description(overrides: dict[str, str]) -> str:
    resources, resolver = deployed(overrides)
    return str(resolver.resolve(_version(resources)[1]["Properties"]["Description"]))


def test_a_parameter_change_publishes_a_new_version() -> None:
    # the version's description is create-only: a new value replaces the version, i.e. publishes one
    base = _description({})
    for name, value in {
        "NotifyColdStart": "snapstart",
        "NotifyPrimeKeys": "true",
        "UseNextHtouhuiPublicKey": "true",
        "NotifyAllowedCidrs": "203.0.113.0/24",
        "FrontendReturnUrl": "https://shop.example.com/done",
        "NotificationHistoryDays": "30",
    }.items():
        assert _description({name: value}) != base, name
    assert len(base) < 200  # Lambda allows 256 characters: room for CIDRs and a URL


def _parameters_in(value: Any, names: set[str]) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and inner in names:
                found.add(inner)
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text)) & names
                if not isinstance(inner, str):
                    found |= _parameters_in(inner[1], names)
            else:
                found |= _parameters_in(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found |= _parameters_in(inner, names)
    return found


def test_every_parameter_the_notify_path_reads_is_in_the_version_description() -> None:
    template = load_template()
    names = set(template["Parameters"])
    conditions = template["Conditions"]
    notify = dict(template["Resources"][NOTIFY]["Properties"])
    description = notify.pop("VersionDescription")
    reaching = _parameters_in([template["Globals"]["Function"], notify], names)
    # parameters behind the conditions used there (UseNextKey -> UseNextHtouhuiPublicKey, ...)
    used = set(re.findall(r"'Fn::If': \['(\w+)'", str([template["Globals"]["Function"], notify])))
    while used:
        condition = used.pop()
        reaching |= _parameters_in(conditions[condition], names)
        used |= set(re.findall(r"'Condition': '(\w+)'", str(conditions[condition])))
    described = _parameters_in(description, names)
    assert reaching - NOT_READ_BY_NOTIFY <= described, sorted(reaching - NOT_READ_BY_NOTIFY - described)
    assert described <= reaching | {"NotifyColdStart", "NotifyPrimeKeys"}
