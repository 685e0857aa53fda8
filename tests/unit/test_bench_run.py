"""A tiny run of the whole bench (`python -m bench --quick`): every section runs and results.json is
well formed. The figures of a quick run mean nothing and are not looked at."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.slow


def test_quick_bench_writes_well_formed_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--no-build",
            "--only",
            "cold,priming,signing,warm,idle",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    sections = {figure["section"] for figure in data["figures"]}
    assert sections == {"cold start", "priming", "signing", "warm notify", "idle"}
    names = {figure["name"] for figure in data["figures"] if figure["section"] == "cold start"}
    functions = {"notify", "register", "open_account", "query_user", "reconcile_worker", "reconcile_dispatch"}
    functions |= {"publish_status", "data_rights"}
    assert functions <= names
    cold = {figure["name"]: figure for figure in data["figures"] if figure["section"] == "cold start"}
    minimal = cold["minimal handler: import + first request"]  # the second floor, measured in the same rounds
    assert minimal["floor"] == pytest.approx(data["details"]["cold"]["floor_ms"], abs=0.05)
    assert minimal["value"] == pytest.approx(data["details"]["cold"]["minimal_handler_ms"], abs=0.05)
    assert data["details"]["cold"]["targets"]["minimal handler"]["status"] == 200  # a real first request
    for name in functions:  # each function: import + first request against the minimal handler and the floor
        assert cold[name]["floor"] == minimal["value"] and cold[name]["target"] == 1.0, cold[name]
        assert cold[name]["extra"]["against_bare_floor"] == pytest.approx(
            cold[name]["value"] / minimal["floor"], rel=1e-2
        )
        assert "x the bare floor" in cold[name]["note"]
    for figure in data["figures"]:
        assert figure["value"] is not None and figure["value"] > 0, figure
        if figure["floor"] is not None:
            assert figure["ratio"] == pytest.approx(figure["value"] / figure["floor"]), figure
    priming = {figure["name"]: figure for figure in data["figures"] if figure["section"] == "priming"}
    assert {name.split(",")[0] for name in priming} == {"notify"} and len(priming) == 4
    fresh = priming["notify, fresh: import + first request's set-up"]
    restored = priming["notify, restored after priming: after-restore hook + the same set-up"]
    assert fresh["floor"] == restored["floor"]  # one floor, measured side by side in this run
    assert set(data["details"]["priming"]["median_ms"]) >= {"floor_import", "restored_hook", "priming"}
    warm = data["details"]["warm"]
    assert all(set(counts) == {"200"} for counts in warm["answers"].values())  # every notification accepted
    idle = data["details"]["idle"]
    assert idle["seconds"] > 0 and idle["stack_cpu_seconds"] >= 0 and idle["target_percent"] == 1.0
    assert "section" in result.stdout and "written to" in result.stdout
