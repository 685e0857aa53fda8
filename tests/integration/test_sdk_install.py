"""`pip install ./layers/common` in a fresh virtualenv, as a merchant off AWS would: `import htouhui` and every
name of `__all__` work without boto3, botocore or Powertools, and the package ships py.typed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from helpers import LAYER

pytestmark = pytest.mark.slow

PROBE = """
import importlib.util, json, sys, pathlib
import htouhui
for name in htouhui.__all__:
    getattr(htouhui, name)
key = htouhui.generate_private_key()
fields = htouhui.signed({"partner_id": "P1", "request_no": "R1"}, key)
print(json.dumps({
    "names": len(htouhui.__all__),
    "verified": htouhui.verify(fields, key.public_key()),
    "aws_loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "aws_lambda_powertools")),
    "aws_installed": [m for m in ("boto3", "botocore", "aws_lambda_powertools") if importlib.util.find_spec(m)],
    "py_typed": (pathlib.Path(htouhui.__file__).parent / "py.typed").is_file(),
    "from_site": "site-packages" in htouhui.__file__,
}))
"""


def test_the_sdk_installs_and_imports_without_aws(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    clean = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # make exports the tree's
    source = shutil.copytree(LAYER, tmp_path / "common", ignore=shutil.ignore_patterns("__pycache__", "build"))
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=clean,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    ran = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env=clean
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout)
    assert report == {
        "names": report["names"],
        "verified": True,
        "aws_loaded": [],
        "aws_installed": [],
        "py_typed": True,
        "from_site": True,
    }
    assert report["names"] >= 30
    assert sys.prefix not in str(python)
