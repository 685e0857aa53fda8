"""`make bench` (= `python -m bench`): every figure against its floor, measured side by side in this run.

Prints a table and writes bench/results.json. `--quick` runs tiny sizes (a smoke test of the bench itself,
figures meaningless); `--only cold,priming,warm,...` runs some sections.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
for folder in (LAYER, ROOT / "local"):  # the layer, and the local stack (tables from template.yaml)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench import cold, idle, scale, signing, sizes, warm  # noqa: E402
from bench.keys import make_keys  # noqa: E402
from bench.servers import moto_server  # noqa: E402
from bench.stats import Figure, table, write_results  # noqa: E402

SECTIONS = ("sizes", "cold", "priming", "signing", "warm", "idle", "scale")
FULL = {
    "cold_rounds": 11,
    "deployed_rounds": 5,
    "warm_invocations": 2000,
    "warm_warmup": 30,
    "warm_block": 50,
    "sign_rounds": 60,
    "scale_days": 365,
    "scale_sample_days": 14,
    "idle_seconds": 20,
    "build": True,
}
QUICK = {
    **FULL,
    "cold_rounds": 1,
    "deployed_rounds": 1,
    "warm_invocations": 12,
    "warm_warmup": 3,
    "warm_block": 4,
    "sign_rounds": 4,
    "scale_days": 10,
    "scale_sample_days": 3,
    "idle_seconds": 2,
    "build": False,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the bench runs, not the code's speed")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--no-build", action="store_true", help="measure sizes of the existing .aws-sam/build only")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    settings: dict[str, Any] = dict(QUICK if args.quick else FULL)
    if args.no_build:
        settings["build"] = False
    settings["sections"] = chosen

    def progress(line: str) -> None:
        print(f"  [{time.monotonic() - started:6.1f} s] {line}", file=sys.stderr, flush=True)

    started = time.monotonic()
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="htouhui-bench-") as scratch:
        keys_dir = make_keys(Path(scratch) / "keys")
        if "sizes" in chosen:
            found, details["sizes"] = sizes.measure(build=settings["build"], progress=progress)
            figures += found
        if "cold" in chosen:
            found, details["cold"] = cold.measure(
                keys_dir, rounds=settings["cold_rounds"], scratch=Path(scratch), progress=progress
            )
            figures += found
            found, details["cold_deployed"] = cold.measure_deployed(
                keys_dir, Path(scratch), rounds=settings["deployed_rounds"]
            )
            figures += found
            progress("cold start done")
        if "priming" in chosen:
            found, details["priming"] = cold.measure_priming(
                keys_dir, rounds=settings["cold_rounds"], progress=progress
            )
            figures += found
            progress("priming done")
        if "signing" in chosen:
            found, details["signing"] = signing.measure(
                keys_dir, sign_rounds=settings["sign_rounds"], verify_rounds=settings["sign_rounds"], progress=progress
            )
            figures += found
            progress("signing done")
        if "warm" in chosen:
            with moto_server() as moto:
                found, details["warm"] = warm.measure(
                    keys_dir,
                    moto.url,
                    invocations=settings["warm_invocations"],
                    warmup=settings["warm_warmup"],
                    block=settings["warm_block"],
                    progress=progress,
                )
            figures += found
            progress("warm notify done")
        if "idle" in chosen:
            found, details["idle"] = idle.measure(Path(scratch), seconds=settings["idle_seconds"], progress=progress)
            figures += found
            progress("idle done")
        if "scale" in chosen:
            found, details["scale"] = scale.measure(
                keys_dir,
                days=settings["scale_days"],
                sample_days=settings["scale_sample_days"],
                plot=args.out.with_name("scale.png"),
                progress=progress,
                cost=True,  # results["scale"]["cost"]: bench.cost
                honest=not args.quick,  # results["scale"]["honest_sample"]: bench.sample (its test runs it quick)
            )
            figures += found
            progress("scale done")
    seconds = time.monotonic() - started
    data = write_results(args.out, figures, settings=settings, seconds=seconds, details=details)
    print(table(figures))
    print(f"\n{len(figures)} figures in {seconds:.0f} s; written to {args.out}")
    if data["missed"]:
        print("targets missed (see docs/performance.md for why): " + "; ".join(data["missed"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
