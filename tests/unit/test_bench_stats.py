"""The bench's own arithmetic (bench/stats.py) and its reading of template.yaml (bench/environment.py).

No timing is asserted anywhere: benchmarks report ratios, tests check that the ratios are computed right.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from helpers import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.environment import function_environment, function_ids
from bench.stats import Figure, interleave_blocks, median, meets, percentile, ratio, table, write_results


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 2001)]  # 1..2000
    assert percentile(values, 0.99) == 1980.0
    assert percentile(values, 0.5) == 1000.0
    assert percentile(values, 1.0) == 2000.0
    assert percentile([5.0], 0.99) == 5.0
    assert percentile(list(reversed(values)), 0.99) == 1980.0  # order of samples does not matter
    with pytest.raises(ValueError):
        percentile(values, 0)
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_ratio_and_targets_in_both_directions() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) == math.inf
    assert meets(1.25, 1.25, "max") and not meets(1.26, 1.25, "max")
    assert meets(0.8, 0.8, "min") and not meets(0.79, 0.8, "min")


def test_figure_computes_its_ratio_and_verdict() -> None:
    slow = Figure("cold start", "notify", 500.0, 400.0, "ms", target=1.25)
    assert slow.ratio == 1.25 and slow.ok is True
    fast_enough = Figure("reconcile", "users/s", 300.0, 500.0, "users/s", target=0.8, direction="min")
    assert fast_enough.ratio == pytest.approx(0.6) and fast_enough.ok is False
    informative = Figure("size", "layer", 30.0, None, "MiB")
    assert informative.ratio is None and informative.ok is None
    infinite = Figure("x", "y", 1.0, 0.0, "ms").as_dict()
    assert infinite["ratio"] is None  # JSON has no infinity


def test_interleave_blocks_alternates_and_covers_every_index() -> None:
    calls: list[tuple[str, int]] = []
    interleave_blocks(5, 2, [lambda i: calls.append(("a", i)), lambda i: calls.append(("b", i))])
    assert calls == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("a", 2), ("a", 3), ("b", 2), ("b", 3), ("a", 4), ("b", 4)]
    with pytest.raises(ValueError):
        interleave_blocks(1, 0, [])


def test_table_lists_every_figure_with_its_verdict() -> None:
    text = table(
        [
            Figure("cold start", "notify", 300.0, 400.0, "ms", target=1.25),
            Figure("signing", "verify", 30.0, 24.0, "us", target=1.1, note="why"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["section", "measure", "value"]
    assert "0.75" in lines[2] and "ok" in lines[2]
    assert "1.25" in lines[3] and "MISS" in lines[3] and lines[3].endswith("why")


def test_results_json_is_well_formed(tmp_path: Path) -> None:
    figures = [
        Figure("cold start", "notify", 300.0, 400.0, "ms", target=1.25),
        Figure("signing", "verify", 30.0, 24.0, "us", target=1.1),
    ]
    path = tmp_path / "out" / "results.json"
    write_results(path, figures, settings={"rounds": 1}, seconds=1.234, details={"cold": {"rounds": 1}})
    data = json.loads(path.read_text())
    assert set(data) >= {"generated_at", "machine", "settings", "seconds", "figures", "missed", "details"}
    assert data["seconds"] == 1.2 and data["settings"] == {"rounds": 1}
    assert [figure["name"] for figure in data["figures"]] == ["notify", "verify"]
    assert data["figures"][0]["ok"] is True and data["figures"][1]["ok"] is False
    assert data["missed"] == ["signing: verify"]


def test_function_environment_follows_the_template(tmp_path: Path) -> None:
    ids = function_ids()
    assert set(ids) == {
        "register",
        "open_account",
        "query_user",
        "notify",
        "reconcile_dispatch",
        "reconcile_worker",
        "publish_status",
        "data_rights",
    }
    env = function_environment("notify", keys_dir=tmp_path)
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Htouhui"
    assert env["USERS_TABLE"] == "UsersTable" and env["NOTIFICATIONS_TABLE"] == "NotificationsTable"
    assert env["MERCHANT_PRIVATE_KEY"] == f"file:{tmp_path / 'merchant_private.pem'}"
    assert env["HTOUHUI_PUBLIC_KEY"] == f"file:{tmp_path / 'htouhui_public.pem'}"
    assert "HTOUHUI_PUBLIC_KEY_NEXT" not in env  # UseNextHtouhuiPublicKey defaults to "false": AWS::NoValue
    assert "HTOUHUI_BASE_URL" not in env  # empty parameter: the environment's address
    assert env["RECONCILE_RATE_BUDGET"] == "50" and env["RECONCILE_LADDER"] == "5m,15m,1h,4h,24h,72h,7d"
    rotating = function_environment("notify", keys_dir=tmp_path, parameters={"UseNextHtouhuiPublicKey": "true"})
    assert rotating["HTOUHUI_PUBLIC_KEY_NEXT"].startswith("file:")
