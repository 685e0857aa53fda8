"""AWS China as a deployer there meets it: the template refuses a China deploy without the ICP acknowledgement,
the `cn` environment exists and lints for the China regions, the docs write ARNs with the partition, a PyPI
mirror reaches `sam build`, and docs/china.md backs each claim with a docs.amazonaws.cn page or says it is not."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from typing import Any

import pytest
from helpers import ROOT
from template_tools import load_template, samconfig_overrides

CHINA = ("cn-north-1", "cn-northwest-1")
REGIONS = ("us-east-1", "ap-east-1", *CHINA)
DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def evaluate(expression: Any, parameters: dict[str, Any]) -> Any:
    """The CloudFormation rule functions the template's Rules use, over parameter values and pseudo parameters."""
    if isinstance(expression, dict) and len(expression) == 1:
        ((name, argument),) = expression.items()
        if name == "Ref":
            return parameters[argument]
        if name == "Fn::Equals":
            left, right = (evaluate(part, parameters) for part in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not evaluate(argument[0], parameters)
        if name == "Fn::And":
            return all(evaluate(part, parameters) for part in argument)
        if name == "Fn::Or":
            return any(evaluate(part, parameters) for part in argument)
        if name == "Fn::Contains":
            values, value = argument
            return evaluate(value, parameters) in [evaluate(item, parameters) for item in values]
        raise AssertionError(f"a rule function this test does not know: {name}")
    if isinstance(expression, list):
        return [evaluate(item, parameters) for item in expression]
    return expression


def refused_by(rule: str, region: str, overrides: dict[str, str]) -> list[str]:
    """The AssertDescriptions of `rule` that fail for a deploy to `region` with these parameter values."""
    template = load_template()
    defaults = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    parameters = {**defaults, **overrides, "AWS::Region": region, "AWS::Partition": partition}
    definition = template["Rules"][rule]
    if "RuleCondition" in definition and not evaluate(definition["RuleCondition"], parameters):
        return []
    return [a["AssertDescription"] for a in definition["Assertions"] if not evaluate(a["Assert"], parameters)]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("acknowledged", ["no", "yes"])
def test_a_china_deploy_needs_the_icp_acknowledgement(region: str, acknowledged: str) -> None:
    refused = refused_by("ChinaNeedsIcpRecordal", region, {"IcpAcknowledged": acknowledged})
    if region in CHINA and acknowledged == "no":
        [message] = refused
        assert "ICP" in message and "IcpAcknowledged=yes" in message and "docs/china.md" in message
    else:
        assert refused == []


def test_the_icp_parameter_defaults_to_not_acknowledged() -> None:
    parameter = load_template()["Parameters"]["IcpAcknowledged"]
    assert parameter["Default"] == "no" and parameter["AllowedValues"] == ["no", "yes"]


def test_the_cn_environment_deploys_to_beijing_and_is_refused_until_the_recordal() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert config["cn"]["deploy"]["parameters"]["region"] == "cn-north-1"
    assert config["cn"]["deploy"]["parameters"]["stack_name"] == "htouhui-onboarding-cn"
    overrides = samconfig_overrides("cn")
    assert overrides["IcpAcknowledged"] == "no"  # the deployer says yes, after the recordal
    assert refused_by("ChinaNeedsIcpRecordal", "cn-north-1", overrides)
    assert refused_by("ChinaNeedsIcpRecordal", "cn-north-1", {**overrides, "IcpAcknowledged": "yes"}) == []
    # SnapStart is refused there too: the cn environment must not ask for it
    assert refused_by("NotifySnapStartOutsideChina", "cn-north-1", overrides) == []


def make_dry_run(*arguments: str) -> str:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PIP_INDEX")}
    environment.pop("PIP_TRUSTED_HOST", None)
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_make_lints_the_china_regions_too() -> None:
    for target in ("cfn-lint", "validate"):
        lint = [line for line in make_dry_run(target).splitlines() if "cfn-lint" in line]
        assert lint and all(set(CHINA) <= set(line.split()) for line in lint), lint
    validate = [line for line in make_dry_run("validate").splitlines() if " validate --lint" in line]
    assert any("--region cn-north-1" in line for line in validate), validate


def test_the_template_lints_clean_for_the_china_regions() -> None:
    cfn_lint = ROOT / ".venv" / "bin" / "cfn-lint"
    if not cfn_lint.exists():
        pytest.skip("cfn-lint is not installed: make venv")
    done = subprocess.run(
        [str(cfn_lint), "--regions", *CHINA, "--", "template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_pypi_mirror_reaches_sam_build() -> None:
    mirror = "https://mirror.example/simple/"
    [with_mirror] = [
        line for line in make_dry_run("build", f"PIP_INDEX_URL={mirror}").splitlines() if "sam build" in line
    ]
    assert f'PIP_INDEX_URL="{mirror}"' in with_mirror.split("sam build")[0]  # in the environment sam build runs in
    [without] = [line for line in make_dry_run("build").splitlines() if "sam build" in line]
    assert "PIP_INDEX_URL" not in without


def test_no_doc_writes_a_global_partition_arn() -> None:
    literal = re.compile(r"arn:aws:")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in DOCS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert found == [], "write arn:<partition>:… (aws-cn in China), not a literal arn:aws:"


def test_every_claim_in_docs_china_has_its_source_or_says_not_verified() -> None:
    text = (ROOT / "docs" / "china.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not set(line) <= set("|- ")]
    claims = [row for row in rows if not row.startswith(("| claim |", "| topic |"))]
    assert len(claims) >= 8
    unsourced = [row for row in claims if "https://docs.amazonaws.cn/" not in row and "not verified" not in row]
    assert unsourced == []
    for linking in ("README.md", "docs/deploy.md"):
        assert "china.md" in (ROOT / linking).read_text(encoding="utf-8"), f"{linking} does not link docs/china.md"
