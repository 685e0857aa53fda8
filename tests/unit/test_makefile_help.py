"""`make help` lists every target of the Makefile, and every target is phony (none names a file)."""

from __future__ import annotations

import re
import subprocess

from helpers import ROOT

MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?!=)", re.MULTILINE)  # `name:` but not `name := value`


def makefile_targets() -> set[str]:
    return {name for name in TARGET.findall(MAKEFILE) if not name.startswith(".")}


def phony_targets() -> set[str]:
    return {name for line in re.findall(r"^\.PHONY:(.*)$", MAKEFILE, re.MULTILINE) for name in line.split()}


def test_the_makefile_parse_finds_the_targets() -> None:
    assert {"help", "run", "e2e", "stack-routes", "keygen", "clean"} <= makefile_targets()


def test_make_help_lists_every_target() -> None:
    listed = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True
    ).stdout
    shown = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert makefile_targets() - shown == set()
    assert shown - makefile_targets() == set()


def test_every_target_is_phony() -> None:
    assert makefile_targets() - phony_targets() == set()
