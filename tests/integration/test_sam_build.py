"""`sam build` without a container, as `make build` runs it: the layer holds `htouhui` and its pinned
dependencies for arm64, and neither boto3 nor botocore (the python3.13 runtime provides them).

Needs PyPI (lambda-builders downloads the manylinux aarch64 wheels) and the virtualenv's python3.13.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
EM_AARCH64 = 183  # ELF e_machine of 64-bit ARM
EM_X86_64 = 62
FUNCTIONS = (
    "register",
    "open_account",
    "query_user",
    "notify",
    "reconcile_dispatch",
    "reconcile_worker",
    "publish_status",
    "data_rights",
)


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "layers" / "common" / "requirements.txt").read_text().splitlines():
        requirement = line.split("#")[0].strip()
        if requirement:
            name, version = requirement.split("==")
            pins[re.sub(r"[-_.]+", "_", name.strip().lower())] = version.strip()
    return pins


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float]]:
    python313 = BIN / "python3.13"
    if not python313.exists():
        pytest.fail(f"{python313} is missing: the virtualenv must be Python 3.13 (the Lambda runtime)")
    sam = BIN / "sam"
    build_dir = tmp_path_factory.mktemp("sam-build") / "build"
    cache_dir = build_dir.parent / "cache"
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    started = time.monotonic()
    result = subprocess.run(
        [
            str(sam),
            "build",
            "--template",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(cache_dir),
            "--no-cached",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=build_dir.parent,  # sam's scratch folders (.aws-sam/deps) land there, not in the work tree
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Build Succeeded" in result.stdout + result.stderr
    yield build_dir, elapsed
    shutil.rmtree(build_dir.parent, ignore_errors=True)


def test_layer_holds_htouhui_and_the_pinned_dependencies(build: tuple[Path, float]) -> None:
    build_dir, elapsed = build
    python = build_dir / "HtouhuiLayer" / "python"
    for package, modules in {
        "htouhui": ("__init__", "protocol", "models", "client", "page", "errors"),
        "onboarding": ("__init__", "config", "store/__init__", "rules", "core", "ops/admin"),
    }.items():
        for module in modules:
            assert (python / package / f"{module}.py").is_file(), f"{package}/{module}"
    assert (python / "htouhui" / "py.typed").is_file()
    installed = {}
    for info in python.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "_", name.lower())] = version
    for name, version in _pins().items():
        assert installed.get(name) == version, f"{name}=={version} missing from the layer (found {installed.get(name)})"
    size = sum(f.stat().st_size for f in python.rglob("*") if f.is_file())
    assert size < 250 * 1024 * 1024  # Lambda's unzipped limit for a function and its layers
    print(f"\nsam build: {elapsed:.1f} s, layer {size / 1024 / 1024:.1f} MiB unzipped")


def test_layer_has_no_boto3(build: tuple[Path, float]) -> None:
    python = build[0] / "HtouhuiLayer" / "python"
    for name in ("boto3", "botocore", "s3transfer"):
        assert not (python / name).exists(), f"{name} is in the layer: the runtime provides it"
        assert not list(python.glob(f"{name}-*.dist-info")), f"{name} is in the layer"


def test_native_code_is_arm64(build: tuple[Path, float]) -> None:
    python = build[0] / "HtouhuiLayer" / "python"
    rust = list((python / "cryptography" / "hazmat" / "bindings").glob("_rust*.so"))
    assert rust, "cryptography's compiled binding is missing"
    extensions = list(python.rglob("*.so"))
    assert any("pydantic_core" in str(path) for path in extensions)
    for path in extensions:
        machine = _elf_machine(path)
        assert machine == EM_AARCH64, f"{path.relative_to(python)} is built for e_machine {machine}, not aarch64"
        assert "x86_64" not in path.name


def test_functions_are_only_their_handlers(build: tuple[Path, float]) -> None:
    build_dir = build[0]
    template = yaml.safe_load((build_dir / "template.yaml").read_text())
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            folder = build_dir / resource["Properties"]["CodeUri"]
            assert (folder / "app.py").is_file(), name
            # everything else comes from the layer: no second copy of a dependency beside a handler
            assert not [p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"], name
    built = {
        resource["Properties"]["CodeUri"]
        for resource in template["Resources"].values()
        if "CodeUri" in resource.get("Properties", {})
    }
    assert len(built) == len(FUNCTIONS)
