"""The HtouhuiProfile parameter (issue 12): every function that reads Htouhui's messages gets HTOUHUI_PROFILE; a
profile kept in SSM is readable by exactly those functions, and only when it is used."""

from __future__ import annotations

from typing import Any

import pytest
from template_tools import deployed, samconfig_overrides

READERS = ("RegisterFunction", "OpenAccountFunction", "QueryUserFunction", "NotifyFunction")


def roles_with_profile_policy(resources: dict[str, Any], resolver: Any) -> set[str]:
    found = set()
    for name, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        arns = resolver.resolve(resource["Properties"].get("ManagedPolicyArns", []))
        if any(arn == "ProfileReadPolicy" for arn in arns if arn):
            found.add(name.removesuffix("Role"))
    return found


@pytest.mark.parametrize("environment", ["uat", "stage", "prod"])
def test_each_environment_sets_a_profile_every_function_reads(environment: str) -> None:
    resources, resolver = deployed(samconfig_overrides(environment))
    for name in READERS:
        variables = resolver.resolve(resources[name]["Properties"]["Environment"]["Variables"])
        assert variables["HTOUHUI_PROFILE"] == samconfig_overrides(environment).get("HtouhuiProfile", "default")
    assert "ProfileReadPolicy" not in resources  # a built-in profile needs no SSM read
    assert roles_with_profile_policy(resources, resolver) == set()


def test_a_profile_in_ssm_is_readable_by_the_functions_that_need_it() -> None:
    resources, resolver = deployed({"HtouhuiProfile": "ssm:/htouhui/profile"})
    statement = resources["ProfileReadPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Action"] == "ssm:GetParameter"
    assert resolver.resolve(statement["Resource"]).endswith(":parameter/htouhui/profile")
    assert set(READERS) <= roles_with_profile_policy(resources, resolver)
    assert "PublishStatusFunction" not in roles_with_profile_policy(resources, resolver)
