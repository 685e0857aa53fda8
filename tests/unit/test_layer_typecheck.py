"""`mypy` on the SDK, the application and the bench (strict, per pyproject.toml) stays clean, whether or not `make`
runs it: the bench's in-memory store is checked against the same `Store` protocol as the DynamoDB one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT


def test_the_layer_is_clean_under_mypy_strict() -> None:
    pytest.importorskip("mypy")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "layers/common/htouhui", "layers/common/onboarding", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
