"""The scale section of the bench, on a short horizon: it runs, its output is well formed, and the real code's
sample agrees with the cohort model. The figures themselves are `make bench`'s (docs/performance.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "local"))

pytest.importorskip("numpy")

from bench import scale
from bench.keys import make_keys


def test_a_short_simulation_is_well_formed_and_the_sample_agrees_with_the_model(tmp_path: Path) -> None:
    figures, details = scale.measure(
        make_keys(tmp_path / "keys"),
        days=9,
        sample_days=2,
        budgets=(50.0,),
        scenario_days=4,
        plot=tmp_path / "scale.png",
    )
    rows = details["budgets"]["50"]["days"]
    assert [row["day"] for row in rows] == list(range(1, 10))
    for row in rows:
        assert set(row) >= {"queries", "peak_qps", "index_size", "worst_delay_min", "index_writes_per_shard_per_s"}
        assert row["peak_qps"] <= 50 and row["queries"] > 0
    assert rows[-1]["queries"] == pytest.approx(1.44e6, rel=0.01)  # the ladder is done: 0.8 x (0.05 + 0.25 x 7)
    sample = details["budgets"]["50"]["sample"]
    assert sample["users"] == 2000 and sample["checked_twice_at_once"] == 0
    assert sample["busiest_interval_queries"] <= sample["slots"]
    assert {figure.section for figure in figures} == {"scale"} and all(figure.value is not None for figure in figures)
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    scenarios = {row["name"]: row for row in details["scenarios"]}
    assert len(scenarios) == 5 and any(name.startswith("10 M") for name in scenarios)
    for row in scenarios.values():
        assert set(row) >= {
            "name", "queries_per_day", "peak_qps", "budget_qps", "worst_delay_minutes", "p99_delay_minutes",
            "largest_backlog", "daily_backlog",
        }  # fmt: skip
        assert len(row["daily_backlog"]) == 4 and row["peak_qps"] <= row["budget_qps"]
        assert row["daily_backlog"][-1] <= 1  # the backlog drains: it does not grow with time
    cohort = scenarios["stated cohort"]
    assert cohort["worst_delay_minutes"] <= cohort["before"]["worst_delay_minutes"]
    outage = scenarios["nobody completes for 24 h, then normal"]
    assert outage["largest_backlog"] < outage["before"]["largest_backlog"]  # coalescing: fewer checks owed
    assert outage["queries_per_day"] > cohort["queries_per_day"]
