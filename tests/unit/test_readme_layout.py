"""README's layout table names every module of the layer's packages, and names no module that is gone."""

from __future__ import annotations

import re

from helpers import LAYER, ROOT

PACKAGES = ("htouhui", "onboarding", "onboarding/store", "onboarding/ops")


def layout_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`layers/common/"):
            rows[cells[0].strip("`").removeprefix("layers/common/").rstrip("/")] = cells[1]
    return rows


def modules(package: str) -> set[str]:
    return {path.stem for path in (LAYER / package).glob("*.py") if path.stem != "__init__"}


def test_the_layout_names_each_module_of_each_package_once_and_only_those() -> None:
    rows = layout_rows()
    assert set(PACKAGES) <= set(rows), sorted(rows)
    for package in PACKAGES:
        named = set(re.findall(r"`([a-z_]+)`", rows[package])) & (modules(package) | {"__main__"})
        missing = modules(package) - named
        assert missing == set(), f"README's layout row for {package} does not name {sorted(missing)}"
    for package in rows:
        assert (LAYER / package).is_dir(), f"README's layout names layers/common/{package}/, which does not exist"
