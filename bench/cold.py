"""Cold start: each function's init phase (import of app.py) in a fresh interpreter, against the floor.

Every round runs every target once (the floor, the six functions, a bare interpreter for the memory
baseline), in a rotating order, so that machine noise falls on all alike; one round is thrown away
first (disk cache, .pyc files). The figure is the median over the rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.environment import ROOT, function_environment, function_ids
from bench.environment import functions as template_functions
from bench.stats import Figure, median

CHILD = Path(__file__).resolve().parent / "cold_child.py"
FLOOR = Path(__file__).resolve().parent / "floor"
LAYER = ROOT / "layers" / "common"
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
TARGET = 1.25


@dataclass(frozen=True)
class Target:
    name: str
    folder: str  # "-" for the bare interpreter
    layer: str
    env: dict[str, str]
    flags: tuple[str, ...] = ()  # e.g. -B: no .pyc written (Lambda's /opt and /var/task are read-only)
    setup: str = ""  # "setup": also time the first request's set-up (functions only)


def targets(keys_dir: Path, functions: list[str] | None = None) -> list[Target]:
    source = template_functions()
    base = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    base.update(AWS_ENV)
    names = functions or sorted(function_ids(source))
    found = [
        Target("(bare interpreter)", "-", "", base),
        Target("floor", str(FLOOR), "", base),
    ]
    for name in names:
        env = {**base, **function_environment(name, keys_dir=keys_dir, source=source)}
        found.append(Target(name, str(ROOT / "functions" / name), str(LAYER), env, setup="setup"))
    return found


def run_once(target: Target, python: str = sys.executable) -> dict[str, Any]:
    result = subprocess.run(
        [python, "-E", "-s", *target.flags, str(CHILD), target.folder, target.layer, target.setup],
        capture_output=True,
        text=True,
        env=target.env,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cold import of {target.name} failed:\n{result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def run_rounds(
    chosen: list[Target], rounds: int, progress: Callable[[int], None] = lambda _: None
) -> dict[str, list[dict[str, Any]]]:
    """One warm-up round (.pyc files written, files in the page cache), then `rounds` rounds of every target,
    in a rotating order: each target's samples by name."""
    samples: dict[str, list[dict[str, Any]]] = {target.name: [] for target in chosen}
    for target in chosen:
        run_once(target)
    for number in range(rounds):
        shift = number % len(chosen)
        for target in chosen[shift:] + chosen[:shift]:
            samples[target.name].append(run_once(target))
        progress(number + 1)
    return samples


def measure(
    keys_dir: Path,
    *,
    rounds: int = 11,
    functions: list[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    chosen = targets(keys_dir, functions)
    samples = run_rounds(chosen, rounds, lambda number: progress(f"cold start: round {number}/{rounds}"))

    def med(name: str, key: str) -> float:
        return median([float(sample[key]) for sample in samples[name]])

    floor_ms = med("floor", "seconds") * 1000
    floor_rss = med("floor", "maxrss_kib") / 1024
    bare_rss = med("(bare interpreter)", "maxrss_kib") / 1024
    figures = []
    raw: dict[str, Any] = {"rounds": rounds, "bare_interpreter_rss_mib": round(bare_rss, 1), "targets": {}}
    for target in chosen[2:]:
        ms = med(target.name, "seconds") * 1000
        then_ms = med(target.name, "with_first_request_setup") * 1000
        rss = med(target.name, "maxrss_kib") / 1024
        rss_then = med(target.name, "maxrss_with_first_request_setup_kib") / 1024
        figures.append(
            Figure(
                "cold start",
                target.name,
                ms,
                floor_ms,
                "ms",
                target=TARGET,
                note=(
                    f"peak RSS {rss:.0f} MiB, {rss_then:.0f} with the first request's set-up "
                    f"(floor {floor_rss:.0f}, bare python {bare_rss:.0f})"
                ),
                extra={
                    "peak_rss_mib": round(rss, 1),
                    "peak_rss_with_first_request_setup_mib": round(rss_then, 1),
                    "floor_peak_rss_mib": round(floor_rss, 1),
                    "with_first_request_setup_ms": round(then_ms, 1),
                    "modules_imported": int(med(target.name, "modules")),
                    "floor_modules_imported": int(med("floor", "modules")),
                },
            )
        )
    figures.append(
        Figure(
            "cold start",
            "worst, counting the first request's set-up",
            max(med(target.name, "with_first_request_setup") for target in chosen[2:]) * 1000,
            floor_ms,
            "ms",
            target=TARGET,
            note="import + settings + store + DynamoDB client (the first request's; the floor pays it at init)",
        )
    )
    for name, values in samples.items():
        raw["targets"][name] = {
            "median_ms": round(med(name, "seconds") * 1000, 2),
            "min_ms": round(min(float(v["seconds"]) for v in values) * 1000, 2),
            "max_ms": round(max(float(v["seconds"]) for v in values) * 1000, 2),
            "median_peak_rss_mib": round(med(name, "maxrss_kib") / 1024, 1),
            "modules": int(med(name, "modules")),
        }
        if values and values[0].get("with_first_request_setup") is not None:
            raw["targets"][name]["with_first_request_setup_ms"] = round(med(name, "with_first_request_setup") * 1000, 2)
    return figures, raw


# --- SnapStart: what priming moves out of the first request (onboarding.ops.priming) ---------------------------


def measure_priming(
    keys_dir: Path,
    *,
    rounds: int = 11,
    function: str = "notify",
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    """The notify function's first request, fresh and restored from a primed snapshot, against the floor.

    Fresh: a new interpreter imports app.py and does the first request's set-up (settings, store, DynamoDB
    client), as the "cold start" section counts it. Restored: the same interpreter after onboarding.ops.priming's
    before-snapshot hook, forked (the child stands in for an environment restored from the snapshot: its memory
    is the primed one), timed from the fork through the after-restore hook and the same set-up. What Lambda's
    restore itself costs (loading the snapshot) is not measured here.
    """
    base = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    base.update(AWS_ENV)
    env = {**base, **function_environment(function, keys_dir=keys_dir)}
    folder = str(ROOT / "functions" / function)
    floor, fresh, restored = "floor", f"{function}, fresh", f"{function}, restored after priming"
    chosen = [
        Target(floor, str(FLOOR), "", base),
        Target(fresh, folder, str(LAYER), env, setup="setup"),
        Target(restored, folder, str(LAYER), env, setup="restored"),
    ]
    samples = run_rounds(chosen, rounds, lambda number: progress(f"priming: round {number}/{rounds}"))
    if not all(sample["primed"] for sample in samples[restored]):
        raise RuntimeError("priming did not build the store: the restored child measured an unprimed process")

    def med(name: str, key: str) -> float:
        return median([float(sample[key]) for sample in samples[name]]) * 1000

    floor_ms = med(floor, "seconds")
    fresh_ms = med(fresh, "with_first_request_setup")
    restored_ms = med(restored, "with_first_request_setup")
    hook_ms = med(restored, "seconds")
    priming_ms = med(restored, "priming_seconds")
    figures = [
        Figure(
            "priming",
            f"{function}, fresh: import + first request's set-up",
            fresh_ms,
            floor_ms,
            "ms",
            target=TARGET,
            note="what an on-demand cold start pays (settings, store, DynamoDB client on the first request)",
        ),
        Figure(
            "priming",
            f"{function}, restored after priming: after-restore hook + the same set-up",
            restored_ms,
            floor_ms,
            "ms",
            target=TARGET,
            note=f"after-restore hook {hook_ms:.2f} ms; Lambda's own restore (snapshot loading) not included",
        ),
        Figure(
            "priming",
            f"{function}, restored against fresh",
            restored_ms,
            fresh_ms,
            "ms",
            note=f"priming moves {fresh_ms - restored_ms:.0f} ms out of the first request",
        ),
        Figure(
            "priming",
            f"{function}, priming itself (before the snapshot, once per published version)",
            priming_ms,
            None,
            "ms",
            note="includes a throw-away RSA key for the verify path; paid when the version is published",
        ),
    ]
    raw = {
        "rounds": rounds,
        "median_ms": {
            "floor_import": round(floor_ms, 2),
            "fresh_import_and_setup": round(fresh_ms, 2),
            "restored_hook_and_setup": round(restored_ms, 2),
            "restored_hook": round(hook_ms, 3),
            "priming": round(priming_ms, 1),
        },
    }
    return figures, raw


# --- the layer as Lambda sees it: read-only, so no .pyc is ever written there ---------------------------

SITE = Path(sysconfig.get_paths()["purelib"])
BUILT_LAYER = ROOT / ".aws-sam" / "build" / "HtouhuiLayer" / "python"
LAYER_PACKAGES = (  # the layer's top-level entries when there is no build to read them from
    "htouhui",
    "onboarding",
    "aws_lambda_powertools",
    "pydantic",
    "pydantic_core",
    "httpx",
    "httpcore",
    "anyio",
    "h11",
    "idna",
    "certifi",
    "cryptography",
    "cffi",
    "typing_extensions.py",
    "typing_inspection",
    "annotated_types",
    "jmespath",
)


def copy_layer(into: Path, *, compiled: bool) -> Path:
    """The layer's packages (this machine's builds of them), htouhui and onboarding, with or without .pyc files.

    With: compiled as `make build` compiles the built layer (unchecked-hash: used without a source
    timestamp check). Without: what `sam build` alone ships, so Lambda compiles every module at every cold
    start (its /opt is read-only, nothing is cached).
    """
    names = (
        sorted(p.name for p in BUILT_LAYER.iterdir() if not p.name.endswith((".dist-info", ".txt", ".data")))
        if BUILT_LAYER.is_dir()
        else list(LAYER_PACKAGES)
    )
    target = into / "python"
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in names:
        source = LAYER / name if name in ("htouhui", "onboarding") else SITE / name
        if name.endswith(".so"):  # the build's own is for arm64: this machine's stands in
            matches = sorted(SITE.glob(name.split(".")[0] + ".*.so"))
            if not matches:
                continue
            source = matches[0]
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, target / source.name)
    if compiled:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
            check=True,
            capture_output=True,
        )
    return target


def measure_deployed(
    keys_dir: Path, scratch: Path, *, rounds: int = 5, function: str = "notify"
) -> tuple[list[Figure], dict[str, Any]]:
    """One function and the floor, importing the layer's packages with and without .pyc (python -B)."""
    bare = copy_layer(scratch / "layer-no-pyc", compiled=False)
    built = copy_layer(scratch / "layer-pyc", compiled=True)
    base = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    base.update(AWS_ENV)
    env = {**base, **function_environment(function, keys_dir=keys_dir)}
    folder = str(ROOT / "functions" / function)
    chosen = [
        Target(f"{function}, layer without .pyc", folder, str(bare), env, ("-B",)),
        Target(f"{function}, layer with .pyc", folder, str(built), env, ("-B",)),
        Target("floor, packages without .pyc", str(FLOOR), str(bare), base, ("-B",)),
        Target("floor, packages with .pyc", str(FLOOR), str(built), base, ("-B",)),
    ]
    samples: dict[str, list[float]] = {target.name: [] for target in chosen}
    for number in range(rounds):
        shift = number % len(chosen)
        for target in chosen[shift:] + chosen[:shift]:
            samples[target.name].append(float(run_once(target)["seconds"]) * 1000)
    ms = {name: median(values) for name, values in samples.items()}
    without, with_ = ms[chosen[0].name], ms[chosen[1].name]
    figures = [
        Figure(
            "cold start",
            f"{function}, layer as sam build ships it (no .pyc)",
            without,
            ms[chosen[2].name],
            "ms",
            target=TARGET,
            note="Lambda cannot cache bytecode in /opt: every module compiled at every cold start",
        ),
        Figure(
            "cold start",
            f"{function}, layer as make build ships it (.pyc)",
            with_,
            ms[chosen[3].name],
            "ms",
            target=TARGET,
            note=f"make build compiles the layer: {without - with_:.0f} ms less per cold start",
        ),
    ]
    return figures, {"rounds": rounds, "median_ms": {name: round(value, 1) for name, value in ms.items()}}
