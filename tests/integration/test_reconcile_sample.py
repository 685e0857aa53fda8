"""The honest sample (bench/sample.py) on a short window: the real dispatcher and worker handlers, threads, moto's
DynamoDB and SQS. It agrees with the model, redelivers what lost its reply without checking anyone twice, and its
double-check count does see a broken lease. The bench's figures are `make bench`'s (docs/performance.md)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT))

from bench import sample


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return sample.in_child(sample.QUICK, timeout=300)


def test_the_sample_runs_the_real_handlers_in_batches_of_ten_with_two_dispatchers(quick: dict[str, Any]) -> None:
    assert quick["error_count"] == 0, quick["errors"]
    assert quick["on_ladder"] > 50 and quick["sample"]["queries"] >= quick["on_ladder"]
    assert quick["largest_batch"] == 10  # the template's BatchSize, as Lambda's poller hands it over
    assert quick["dispatch_runs"] >= 2 * 15  # both dispatchers, every simulated minute
    assert quick["dispatch_taken"] > 0  # they raced: the claim let one of them send each user
    # the pacing: at most one query start per slot in any pacing interval
    assert quick["busiest_interval_queries"] <= quick["slots"]


def test_lost_replies_are_redelivered_and_nobody_is_checked_twice(quick: dict[str, Any]) -> None:
    assert quick["lost_replies"] > 0
    assert quick["redelivered"] > 0  # the same messages, back after the visibility time-out
    assert quick["double_checks"] == 0


def test_the_sample_agrees_with_the_model_within_the_stated_tolerance(quick: dict[str, Any]) -> None:
    assert quick["agrees"] == {"worst_delay": True, "p99_delay": True, "largest_backlog": True}, (
        quick["sample"],
        quick["model"],
    )
    assert set(quick["sample"]) >= {"worst_delay_minutes", "p99_delay_minutes", "largest_backlog"}


def test_a_broken_lease_makes_the_double_check_count_non_zero() -> None:
    short = dataclasses.replace(sample.QUICK, end=sample.QUICK.start + 120, horizon=sample.QUICK.start + 600)
    broken = sample.in_child(short, broken_lease=True, timeout=300)
    assert broken["error_count"] == 0, broken["errors"]
    assert broken["double_checks"] > 0


def test_the_clock_moves_only_when_every_participant_waits() -> None:
    import threading

    clock = sample.JumpClock(100.0, participants=2)
    seen: list[tuple[str, float]] = []

    def sleeper(name: str, seconds: float) -> None:
        clock.sleep(seconds)
        seen.append((name, clock.now))
        clock.leave()

    threads = [
        threading.Thread(target=sleeper, args=("long", 30.0)),
        threading.Thread(target=sleeper, args=("short", 5.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [("short", 105.0), ("long", 130.0)]


def test_the_bench_rows_hold_the_sample_beside_the_model(quick: dict[str, Any]) -> None:
    rows = {figure.name: figure for figure in sample.figures(quick)}
    worst = next(figure for name, figure in rows.items() if "worst delay vs model" in name)
    assert worst.value == quick["sample"]["worst_delay_minutes"]
    assert rows["honest sample: double checks (two dispatchers, threads, redelivery)"].ok is True
    assert rows["honest sample: measures outside the stated tolerance"].ok is True
    assert rows["honest sample: largest batch against the template's BatchSize"].ratio == 1.0
