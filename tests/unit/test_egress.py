"""EgressMode: `direct` creates no network at all; `nat` a VPC with private subnets in two zones, a NAT gateway with
an Elastic IP in each, a DynamoDB gateway endpoint and a Secrets Manager interface endpoint, and puts exactly the
functions that call Htouhui in it. Both modes translate, and the template lints for the regions we deploy to
(Hong Kong, and the AWS China regions)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from helpers import ROOT
from stack.template import NO_VALUE
from template_tools import FUNCTIONS, TEMPLATE, deployed, tool

# the functions whose code calls Htouhui's server-to-server interfaces (HtouhuiClient.register / .query)
CALLERS = {"RegisterFunction", "QueryUserFunction", "ReconcileWorkerFunction"}
NETWORK_TYPES = ("AWS::EC2::",)


def _network(resources: dict[str, Any]) -> dict[str, str]:
    return {name: r["Type"] for name, r in resources.items() if r["Type"].startswith(NETWORK_TYPES)}


def test_the_callers_are_exactly_the_functions_that_use_the_htouhui_client() -> None:
    calling = set()
    for logical, folder in FUNCTIONS.items():
        source = (ROOT / "functions" / folder / "app.py").read_text(encoding="utf-8")
        # register() and refresh() reach HtouhuiClient, and reconcile.work() through check_now/check_scheduled
        if re.search(r"\.(register|refresh)\(|\bwork\(", source):
            calling.add(logical)
    assert calling == CALLERS


def _vpc_config(resolver: Any, resources: dict[str, Any], name: str) -> Any:
    value = resolver.resolve(resources[name]["Properties"].get("VpcConfig"))
    return None if value is NO_VALUE else value


def test_direct_mode_creates_no_network_and_no_function_is_in_a_vpc() -> None:
    resources, resolver = deployed({"EgressMode": "direct"})
    assert _network(resources) == {}
    for name in FUNCTIONS:
        assert _vpc_config(resolver, resources, name) is None, name


def test_nat_mode_fixes_the_egress_addresses() -> None:
    resources, resolver = deployed({"EgressMode": "nat"})
    network = _network(resources)
    count = {kind: sum(1 for t in network.values() if t == kind) for kind in set(network.values())}
    assert count["AWS::EC2::VPC"] == 1
    assert count["AWS::EC2::NatGateway"] == 2
    assert count["AWS::EC2::EIP"] == 2
    assert count["AWS::EC2::Subnet"] == 4
    private = {"PrivateSubnetA", "PrivateSubnetB"}
    zones = {str(resources[s]["Properties"]["AvailabilityZone"]) for s in private}
    assert len(zones) == 2  # two different zones (Select 0 and 1 of GetAZs)
    for zone in ("A", "B"):
        nat = resources[f"NatGateway{zone}"]["Properties"]
        assert nat["AllocationId"] == {"Fn::GetAtt": [f"EgressIp{zone}", "AllocationId"]}
        assert nat["SubnetId"] == {"Ref": f"PublicSubnet{zone}"}
        route = resources[f"PrivateDefaultRoute{zone}"]["Properties"]
        assert route["NatGatewayId"] == {"Ref": f"NatGateway{zone}"}
        assert route["DestinationCidrBlock"] == "0.0.0.0/0"
        assert resources[f"EgressIp{zone}"]["DeletionPolicy"] == "Retain"
    endpoints = {
        resolver.resolve(r["Properties"]["ServiceName"]): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    }
    region = "us-east-1"  # the resolver's region
    assert endpoints[f"com.amazonaws.{region}.dynamodb"]["VpcEndpointType"] == "Gateway"
    assert endpoints[f"com.amazonaws.{region}.secretsmanager"]["PrivateDnsEnabled"] is True
    assert set(endpoints) == {f"com.amazonaws.{region}.dynamodb", f"com.amazonaws.{region}.secretsmanager"}

    in_vpc = set()
    for name in FUNCTIONS:
        if _vpc_config(resolver, resources, name):
            in_vpc.add(name)
            assert {s["Ref"] for s in resources[name]["Properties"]["VpcConfig"]["Fn::If"][1]["SubnetIds"]} == private
    assert in_vpc == CALLERS
    egress = resources["EgressFunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert [(rule["FromPort"], rule["ToPort"]) for rule in egress] == [(443, 443)]
    translated_outputs = resolver.template["Outputs"]
    assert translated_outputs["EgressIps"]["Condition"] == "UseNat"
    assert translated_outputs["EgressIps"]["Value"] == {"Fn::Join": [",", [{"Ref": "EgressIpA"}, {"Ref": "EgressIpB"}]]}


@pytest.mark.parametrize("regions", [["ap-east-1", "cn-north-1", "cn-northwest-1"]])
def test_template_lints_for_hong_kong_and_the_china_regions(regions: list[str]) -> None:
    result = subprocess.run(
        [tool("cfn-lint"), "--regions", *regions, "--", str(TEMPLATE)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
