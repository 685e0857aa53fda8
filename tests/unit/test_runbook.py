"""docs/runbook.md names every alarm of template.yaml (each with what it means and what to run), and every
make target it tells the operator to use exists."""

from __future__ import annotations

import re

from helpers import ROOT
from template_tools import load_template


def test_every_alarm_has_a_runbook_entry() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    headings = "\n".join(line for line in runbook.splitlines() if line.startswith("### "))
    alarms = [name for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 25
    generic = re.compile(r"^(Register|OpenAccount|QueryUser|Notify|PublishStatus)(Errors|Throttles)Alarm$")
    missing = [name for name in alarms if f"`{name}`" not in headings and not generic.match(name)]
    assert not missing, f"alarms without a runbook entry: {missing}"
    assert "`…ErrorsAlarm` / `…ThrottlesAlarm`" in headings


def test_the_make_targets_the_runbook_uses_exist() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    used = set(re.findall(r"make (admin-[a-z]+)", runbook))
    documented = set(re.findall(r"^(admin-[a-z]+): .*## ", makefile, re.MULTILINE))
    assert {"admin-show", "admin-erase", "admin-export"} <= documented
    assert used == documented, f"runbook only: {used - documented}; Makefile only: {documented - used}"
