"""What importing each function pulls in (its cold start, issue 22): a path pays only for what it uses.

Each function is imported in a fresh interpreter (a subprocess: this process has imported everything already)
and the test reads what that import left in sys.modules. It pins: no function imports httpx before its first
request; the reconciliation functions, which build no view and validate no body, import no pydantic and none of
the Htouhui client's models; and no wire model of htouhui.models is built (its pydantic schema) at import: each is
built where it is first used (defer_build), so a message defined but not used on a path costs that path nothing.
(Our own bodies and the user view are built at import: Powertools validates through adapters of them, and an
adapter of a model not yet built would build its schema again.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))
NO_PYDANTIC = {"reconcile_dispatch", "reconcile_worker"}
PROBE = """
import json, sys
import app
found = {"modules": sorted(sys.modules), "built": []}
if "pydantic" in sys.modules:
    from pydantic import BaseModel
    module = sys.modules.get("htouhui.models")
    for value in vars(module).values() if module else ():
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == "htouhui.models":
            found["models"] = found.get("models", 0) + 1
            if value.__pydantic_complete__:
                found["built"].append(value.__name__)
print(json.dumps(found))
"""


def imported_by(function: str) -> dict[str, Any]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers" / "common")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_every_function_is_probed() -> None:
    assert {"register", "open_account", "reconcile_dispatch", "reconcile_worker"} <= set(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_imports_only_what_its_path_needs(function: str) -> None:
    found = imported_by(function)
    modules = set(found["modules"])
    assert "httpx" not in modules  # the Htouhui client's library: imported when a client is first made
    assert found["built"] == [], found["built"]  # the wire models: built where first used
    if function == "register":
        assert found["models"] >= 9  # the probe saw htouhui.models' wire models (and found none built)
    if function in NO_PYDANTIC:
        unwanted = {"pydantic", "htouhui.models", "htouhui.client", "onboarding.models"} & modules
        assert not unwanted, sorted(unwanted)


def test_the_models_powertools_validates_through_are_built_once() -> None:
    # An adapter of a model not yet built builds the model's schema again for itself: a route's models are built
    # when they are defined, so the route's adapters reuse that one schema; the wire models are deferred.
    from htouhui.models import RegisterRequest, RegisterResponse
    from onboarding.api import ErrorResponse, OpenAccountAnswer
    from onboarding.models import OpenAccountBody, RegisterBody, UserView

    for model in (RegisterBody, OpenAccountBody, UserView, OpenAccountAnswer, ErrorResponse):
        assert not model.model_config.get("defer_build"), model.__name__
    for wire in (RegisterRequest, RegisterResponse):
        assert wire.model_config.get("defer_build"), wire.__name__
