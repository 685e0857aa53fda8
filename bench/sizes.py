"""Sizes of what is deployed: the built layer and each function, unzipped and zipped.

Built by `make build` (sam build for arm64 without a container, then compiled to .pyc), into .aws-sam/build;
a build newer than every source is reused.
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.environment import ROOT, function_ids
from bench.stats import Figure

BUILD_DIR = ROOT / ".aws-sam" / "build"
SOURCES = (ROOT / "layers" / "common", ROOT / "functions", ROOT / "template.yaml")
LAMBDA_UNZIPPED_LIMIT_MIB = 250


def _newest(paths: tuple[Path, ...]) -> float:
    newest = 0.0
    for path in paths:
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def build_is_current() -> bool:
    built = BUILD_DIR / "template.yaml"
    return built.is_file() and built.stat().st_mtime >= _newest(SOURCES)


def sam_build() -> None:
    """`make build`: sam build for arm64, then the layer and functions compiled to .pyc (what deploy ships)."""
    result = subprocess.run(
        ["make", "--no-print-directory", "build"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError("make build failed:\n" + (result.stdout + result.stderr)[-3000:])


def folder_sizes(folder: Path) -> tuple[int, int, int]:
    """(bytes unzipped, bytes zipped with deflate, number of files)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder))
    return sum(p.stat().st_size for p in files), len(buffer.getvalue()), len(files)


def measure(
    *, build: bool = True, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    built_now = False
    if build and not build_is_current():
        progress("sizes: sam build (arm64, no container)")
        sam_build()
        built_now = True
    if not (BUILD_DIR / "HtouhuiLayer").is_dir():
        return [], {"error": f"no build in {BUILD_DIR}: run make build"}
    figures = []
    raw: dict[str, Any] = {"build_dir": str(BUILD_DIR.relative_to(ROOT)), "built_now": built_now, "parts": {}}
    layer = BUILD_DIR / "HtouhuiLayer"
    unzipped, zipped, count = folder_sizes(layer)
    pyc = sum(1 for _ in layer.rglob("*.pyc"))
    packages: dict[str, int] = {}
    for child in (layer / "python").iterdir():
        if child.name.endswith(".dist-info") or child.name == "__pycache__":
            continue
        size = (
            sum(p.stat().st_size for p in child.rglob("*") if p.is_file()) if child.is_dir() else child.stat().st_size
        )
        packages[child.name] = size
    biggest = sorted(packages.items(), key=lambda item: -item[1])[:6]
    figures.append(
        Figure(
            "size",
            "layer (unzipped)",
            unzipped / 2**20,
            None,
            "MiB",
            note=(
                f"zipped {zipped / 2**20:.1f} MiB, {count} files, {pyc} .pyc; "
                f"Lambda's limit {LAMBDA_UNZIPPED_LIMIT_MIB} MiB unzipped with the function"
            ),
        )
    )
    raw["parts"]["layer"] = {
        "unzipped_bytes": unzipped,
        "zipped_bytes": zipped,
        "files": count,
        "pyc_files": pyc,
        "largest_packages_bytes": dict(biggest),
    }
    for name, logical_id in sorted(function_ids().items()):
        folder = BUILD_DIR / logical_id
        if not folder.is_dir():
            continue
        unzipped, zipped, count = folder_sizes(folder)
        figures.append(
            Figure("size", f"function {name}", unzipped / 1024, None, "KiB", note=f"zipped {zipped / 1024:.1f} KiB")
        )
        raw["parts"][name] = {"unzipped_bytes": unzipped, "zipped_bytes": zipped, "files": count}
    return figures, raw
