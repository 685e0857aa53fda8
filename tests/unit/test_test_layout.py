"""The tests a newcomer can navigate: each module has one subject, shares fixtures only through conftest.py,
and no test only prints."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT
from subjects import SUBJECTS, subject_of

TESTS = ROOT / "tests"
MODULES = sorted(TESTS.rglob("test_*.py"))


def test_every_test_module_has_exactly_one_subject() -> None:
    names = {path.stem for path in MODULES}
    assert [name for name in sorted(names) if subject_of(name) is None] == []
    listed = set().union(*SUBJECTS.values())
    assert sorted(listed - names) == []  # no subject lists a module that is gone


def test_a_subject_selects_its_modules_and_only_them() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "sdk", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    selected = {Path(line.split("::")[0]).stem for line in done.stdout.splitlines() if "::" in line}
    assert selected == SUBJECTS["sdk"]


def _imported_modules(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def test_no_test_module_imports_another() -> None:
    """Shared fixtures live in conftest.py, shared helpers in modules that are not tests."""
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(
            name for name in _imported_modules(ast.parse(path.read_text())) if name.startswith("test_")
        )
        for path in MODULES
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def _asserts(function: ast.FunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("raises", "fail", "skip", "warns"):
            return True
    return False


def _prints(function: ast.FunctionDef) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
        for node in ast.walk(function)
    )


def test_no_test_only_prints() -> None:
    print_only = [
        f"{path.relative_to(ROOT)}::{node.name}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and _prints(node) and not _asserts(node)
    ]
    assert print_only == []
