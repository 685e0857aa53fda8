"""Every `python -m …` entry point the docs show starts as documented: run as a subprocess, the way a person types
it, with `--help` after the documented module and subcommand, it answers its usage and exits 0. (The forms that
do real work are run against the stack by the e2e tests; this catches a module or subcommand the docs name that
no longer exists, or that breaks before it parses its arguments.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers import LAYER, ROOT

DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
OURS = ("htouhui", "onboarding", "stack", "sandbox", "bench")
FORM = re.compile(r"python3? -m ((?:[a-z_]+)(?:\.[a-z_]+)*)((?: [a-z][a-z-]*)?)")


def documented_forms() -> list[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in DOCS:
        for module, sub in FORM.findall(path.read_text(encoding="utf-8")):
            if module.split(".")[0] in OURS:
                found.add((module, sub.strip()))
    return sorted(found)


def test_the_docs_show_the_entry_points() -> None:
    modules = {module for module, _ in documented_forms()}
    assert {"htouhui", "onboarding.ops", "onboarding.ops.admin", "stack", "sandbox", "bench"} <= modules


@pytest.mark.parametrize(("module", "sub"), documented_forms())
def test_a_documented_entry_point_answers_its_usage(module: str, sub: str) -> None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LAYER), str(ROOT / "local"), str(ROOT)])}
    command = [sys.executable, "-m", module, *([sub] if sub else []), "--help"]
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(command[1:])}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    assert "usage" in done.stdout.lower(), done.stdout
