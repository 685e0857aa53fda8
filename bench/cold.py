"""Cold start: each function's import plus its first real request in a fresh interpreter, against the minimal
handler (bench/minimal: the design's mandated parts, nothing of ours) and the bare floor (bench/floor).

Every round runs every target once (the floor, the minimal handler, the functions, a bare interpreter for the
memory baseline), in a rotating order, so that machine noise falls on all alike; one round is thrown away
first (disk cache, .pyc files). Each function is called with its sample event from events/, against moto and
the Htouhui sandbox (bench.first_request), the world put back before each sample. The figure is the median
over the rounds. The import alone (and its first request's set-up) is measured in a second set of rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import first_request
from bench.environment import ROOT, function_environment, function_ids
from bench.environment import functions as template_functions
from bench.first_request import EXPECTED_STATUS, MINIMAL, World
from bench.stats import Figure, median

CHILD = Path(__file__).resolve().parent / "cold_child.py"
FLOOR = Path(__file__).resolve().parent / "floor"
LAYER = ROOT / "layers" / "common"
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
TARGET = 1.25  # against the bare floor
MINIMAL_TARGET = 1.0  # against the minimal handler
MINIMAL_NAME = "minimal handler"


@dataclass(frozen=True)
class Target:
    name: str
    folder: str  # "-" for the bare interpreter
    layer: str
    env: dict[str, str]
    flags: tuple[str, ...] = ()  # e.g. -B: no .pyc written (Lambda's /opt and /var/task are read-only)
    setup: str = ""  # "setup": also time the first request's set-up; "request": the first request itself
    event: str = ""  # with "request": the event file the handler is called with


def _base_environment() -> dict[str, str]:
    base = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    base.update(AWS_ENV)
    return base


def targets(keys_dir: Path, functions: list[str] | None = None, world: World | None = None) -> list[Target]:
    """The bare interpreter, the floor, (with a world) the minimal handler, then the functions.

    Without a world each function's import and its first request's set-up are timed; with one, its import and
    its first real request (its sample event, against the world's moto and sandbox)."""
    source = template_functions()
    base = _base_environment()
    names = functions or sorted(function_ids(source))
    found = [
        Target("(bare interpreter)", "-", "", base),
        Target("floor", str(FLOOR), "", base),
    ]
    if world is not None:
        found.append(
            Target(
                MINIMAL_NAME,
                str(MINIMAL),
                "",
                {**base, "USERS_TABLE": "-", **world.environment(MINIMAL_NAME)},
                setup="request",
                event=str(world.event(MINIMAL_NAME)),
            )
        )
    for name in names:
        if world is None:
            env = {**base, **function_environment(name, keys_dir=keys_dir, source=source)}
            found.append(Target(name, str(ROOT / "functions" / name), str(LAYER), env, setup="setup"))
            continue
        env = {**base, **function_environment(name, keys_dir=world.keys_dir, source=source), **world.environment(name)}
        folder = str(ROOT / "functions" / name)
        found.append(Target(name, folder, str(LAYER), env, setup="request", event=str(world.event(name))))
    return found


def run_once(target: Target, python: str = sys.executable) -> dict[str, Any]:
    extra = [target.event] if target.event else []
    result = subprocess.run(
        [python, "-E", "-s", *target.flags, str(CHILD), target.folder, target.layer, target.setup, *extra],
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
    chosen: list[Target],
    rounds: int,
    progress: Callable[[int], None] = lambda _: None,
    before: Callable[[Target], None] = lambda _: None,
) -> dict[str, list[dict[str, Any]]]:
    """One warm-up round (.pyc files written, files in the page cache), then `rounds` rounds of every target,
    in a rotating order: each target's samples by name. `before(target)` runs before each sample, off its clock."""
    samples: dict[str, list[dict[str, Any]]] = {target.name: [] for target in chosen}
    for target in chosen:
        before(target)
        run_once(target)
    for number in range(rounds):
        shift = number % len(chosen)
        for target in chosen[shift:] + chosen[:shift]:
            before(target)
            samples[target.name].append(run_once(target))
        progress(number + 1)
    return samples


def check_answer(name: str, sample: dict[str, Any]) -> None:
    """A first request that failed measured nothing: the answer must be the one the sample event earns."""
    expected = EXPECTED_STATUS.get(name)
    if expected is not None and sample.get("status") != expected:
        raise RuntimeError(f"{name}'s first request answered {sample.get('status')}, not {expected}")
    answer = sample.get("answer")
    if expected is None and isinstance(answer, dict) and answer.get("batchItemFailures"):
        raise RuntimeError(f"{name}'s first request reported failures: {answer}")


def measure(
    keys_dir: Path,
    *,
    rounds: int = 11,
    functions: list[str] | None = None,
    scratch: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    """Each function's import plus its first real request, against the minimal handler and the bare floor, all
    in the same rounds; the import alone (and its first request's set-up) in a second set of rounds."""
    with contextlib.ExitStack() as stack:
        folder = scratch or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="htouhui-cold-")))
        here = stack.enter_context(first_request.world(folder / "cold-world"))
        chosen = targets(keys_dir, functions, here)
        samples = run_rounds(
            chosen,
            rounds,
            lambda number: progress(f"cold start, first request: round {number}/{rounds}"),
            lambda target: here.reset(target.name) if target.setup == "request" else None,
        )
    for target in chosen[2:]:
        for sample in samples[target.name]:
            check_answer(target.name, sample)
    imports = targets(keys_dir, functions)
    import_samples = run_rounds(
        imports, rounds, lambda number: progress(f"cold start, import: round {number}/{rounds}")
    )

    def med(name: str, key: str, of: dict[str, list[dict[str, Any]]] = samples) -> float:
        return median([float(sample[key]) for sample in of[name]])

    floor_ms = med("floor", "seconds") * 1000
    minimal_ms = med(MINIMAL_NAME, "with_first_request") * 1000
    floor_rss = med("floor", "maxrss_kib") / 1024
    bare_rss = med("(bare interpreter)", "maxrss_kib") / 1024
    import_floor_ms = med("floor", "seconds", import_samples) * 1000
    figures = [
        Figure(
            "cold start",
            f"{MINIMAL_NAME}: import + first request",
            minimal_ms,
            floor_ms,
            "ms",
            note="Powertools resolver, Logger, Metrics, a pydantic model, GetItem, httpx, RSA load + verify",
            extra={"import_ms": round(med(MINIMAL_NAME, "seconds") * 1000, 1)},
        )
    ]
    raw: dict[str, Any] = {
        "rounds": rounds,
        "bare_interpreter_rss_mib": round(bare_rss, 1),
        "floor_ms": round(floor_ms, 1),
        "minimal_handler_ms": round(minimal_ms, 1),
        "targets": {},
        "import_only": {},
    }
    functions_measured = [target for target in chosen if target.folder.startswith(str(ROOT / "functions"))]
    for target in functions_measured:
        ms = med(target.name, "with_first_request") * 1000
        import_ms = med(target.name, "seconds", import_samples) * 1000
        rss = med(target.name, "maxrss_with_first_request_setup_kib") / 1024
        figures.append(
            Figure(
                "cold start",
                target.name,
                ms,
                minimal_ms,
                "ms",
                target=MINIMAL_TARGET,
                note=(
                    f"import + first request ({first_request.EVENT_OF[target.name]}) against the minimal handler; "
                    f"{ms / floor_ms:.2f}x the bare floor; import alone {import_ms:.0f} ms; peak RSS {rss:.0f} MiB"
                ),
                extra={
                    "against_bare_floor": round(ms / floor_ms, 3),
                    "import_ms": round(import_ms, 1),
                    "import_floor_ms": round(import_floor_ms, 1),
                    "peak_rss_mib": round(rss, 1),
                    "floor_peak_rss_mib": round(floor_rss, 1),
                    "modules_imported": int(med(target.name, "modules")),
                },
            )
        )
    worst = max(functions_measured, key=lambda target: med(target.name, "with_first_request"))
    worst_ms = med(worst.name, "with_first_request") * 1000
    figures.append(
        Figure(
            "cold start",
            f"worst function ({worst.name}) against the bare floor",
            worst_ms,
            floor_ms,
            "ms",
            target=TARGET,
            note="import + first request against boto3 + a DynamoDB client + httpx + cryptography, imported only",
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
        if values and values[0].get("with_first_request") is not None:
            raw["targets"][name]["with_first_request_ms"] = round(med(name, "with_first_request") * 1000, 2)
            raw["targets"][name]["status"] = values[0].get("status")
    for name in import_samples:
        raw["import_only"][name] = {"median_ms": round(med(name, "seconds", import_samples) * 1000, 2)}
        if import_samples[name] and import_samples[name][0].get("with_first_request_setup") is not None:
            raw["import_only"][name]["with_first_request_setup_ms"] = round(
                med(name, "with_first_request_setup", import_samples) * 1000, 2
            )
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
