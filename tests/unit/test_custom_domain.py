"""An optional custom domain (TLS 1.2) for a stable notify_url: the domain, its mapping to the API's stage, an alias
record when a hosted zone is given, and the NotifyUrl/ReturnUrl outputs and PUBLIC_BASE_URL following it unless
PublicBaseUrl is set (which still wins). Checked on the translated template with the conditions evaluated, and on
what the local stack's reader gives the functions."""

from __future__ import annotations

from typing import Any

from helpers import ROOT
from stack import template as local_template
from template_tools import deployed

DOMAIN = {
    "DomainName": "htouhui-api.example.com",
    "CertificateArn": "arn:aws:acm:ap-east-1:123456789012:certificate/0a-1b",
}
EXECUTE_API = "https://HttpApi.execute-api.us-east-1.amazonaws.com"  # the resolver's Sub of the execute-api host


def _outputs(resolver: Any) -> dict[str, Any]:
    outputs = resolver.template["Outputs"]
    return {
        name: resolver.resolve(output["Value"])
        for name, output in outputs.items()
        if "Condition" not in output or resolver.condition(output["Condition"])
    }


def _public_base_url(resources: dict[str, Any], resolver: Any) -> Any:
    """PUBLIC_BASE_URL as every function gets it (Globals, merged into each function by the translation)."""
    values = {
        resolver.resolve(r["Properties"]["Environment"]["Variables"]["PUBLIC_BASE_URL"])
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert len(values) == 1, values
    return values.pop()


def test_no_domain_keeps_the_execute_api_address() -> None:
    resources, resolver = deployed({})
    assert not [
        r for r in resources.values() if r["Type"].startswith(("AWS::ApiGatewayV2::DomainName", "AWS::Route53"))
    ]
    outputs = _outputs(resolver)
    assert outputs["NotifyUrl"] == EXECUTE_API + "/htouhui/notify"
    assert _public_base_url(resources, resolver) == ""
    assert "CustomDomainTarget" not in outputs


def test_domain_with_tls_12_mapped_to_the_stage_and_used_for_notify_url() -> None:
    resources, resolver = deployed({**DOMAIN, "HostedZoneId": "Z0123456789ABC"})
    domain = resources["CustomDomain"]["Properties"]
    assert resolver.resolve(domain["DomainName"]) == DOMAIN["DomainName"]
    (configuration,) = domain["DomainNameConfigurations"]
    assert configuration["SecurityPolicy"] == "TLS_1_2"
    assert configuration["EndpointType"] == "REGIONAL"
    assert resolver.resolve(configuration["CertificateArn"]) == DOMAIN["CertificateArn"]
    mapping = resources["CustomDomainMapping"]
    assert mapping["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    stage = next(name for name, r in resources.items() if r["Type"] == "AWS::ApiGateway" + "V2::Stage")
    assert mapping["DependsOn"] == stage
    assert mapping["Properties"]["Stage"] == resources[stage]["Properties"]["StageName"]
    record = resources["CustomDomainRecord"]["Properties"]
    assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["CustomDomain", "RegionalDomainName"]}
    outputs = _outputs(resolver)
    assert outputs["NotifyUrl"] == "https://htouhui-api.example.com/htouhui/notify"
    assert outputs["ReturnUrl"] == "https://htouhui-api.example.com/htouhui/return"
    assert _public_base_url(resources, resolver) == "https://htouhui-api.example.com"


def test_without_a_hosted_zone_no_record_and_the_target_is_an_output() -> None:
    resources, resolver = deployed(DOMAIN)
    assert "CustomDomain" in resources and "CustomDomainRecord" not in resources
    assert "CustomDomainTarget" in _outputs(resolver)


def test_an_explicit_public_base_url_still_wins() -> None:
    resources, resolver = deployed({**DOMAIN, "PublicBaseUrl": "https://front.example.com"})
    assert _outputs(resolver)["NotifyUrl"] == "https://front.example.com/htouhui/notify"
    assert _public_base_url(resources, resolver) == "https://front.example.com"


def test_a_domain_needs_its_certificate_rule() -> None:
    _, resolver = deployed({})
    rule = resolver.template["Rules"]["CustomDomainNeedsItsCertificate"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}


def test_the_local_stack_gives_the_functions_the_same_public_base_url() -> None:
    plain = local_template.load(ROOT / "template.yaml", parameter_overrides={"PartnerId": "P1"})
    assert plain.functions["NotifyFunction"].environment["PUBLIC_BASE_URL"] == ""
    with_domain = local_template.load(ROOT / "template.yaml", parameter_overrides={"PartnerId": "P1", **DOMAIN})
    assert with_domain.functions["NotifyFunction"].environment["PUBLIC_BASE_URL"] == "https://htouhui-api.example.com"
