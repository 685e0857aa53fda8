"""The bench's own arithmetic: medians, percentiles, ratios against a floor, verdicts, the table.

Pure functions, no I/O except `write_results`: tests/unit/test_bench_stats.py checks them.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Direction = Literal["max", "min"]  # "max": the ratio must stay at or below the target; "min": at or above


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of nothing")
    return float(statistics.median(values))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in (0, 1]): p99 of 2,000 samples is the 1,980th smallest."""
    if not values:
        raise ValueError("percentile of nothing")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def ratio(measured: float, floor: float) -> float:
    """measured / floor; a floor of zero gives infinity (never a division error in a report)."""
    if floor <= 0:
        return math.inf
    return measured / floor


def meets(value: float, target: float, direction: Direction) -> bool:
    return value <= target if direction == "max" else value >= target


def interleave_blocks(total: int, block: int, runners: Sequence[Callable[[int], None]]) -> None:
    """Run each runner `total` times, alternating in blocks of `block` (A×block, B×block, A×block, ...).

    A runner gets the index of its call (0..total-1). Machine noise (another process waking up, a
    frequency change) then falls on every runner alike instead of on whichever ran during it.
    """
    if block < 1:
        raise ValueError("block must be at least 1")
    done = 0
    while done < total:
        size = min(block, total - done)
        for runner in runners:
            for index in range(done, done + size):
                runner(index)
        done += size


@dataclass
class Figure:
    """One row of the table: a measurement, its floor, the ratio and the target it is held to."""

    section: str
    name: str
    value: float
    floor: float | None
    unit: str
    ratio: float | None = None
    target: float | None = None
    direction: Direction = "max"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.floor is not None:
            self.ratio = ratio(self.value, self.floor)

    @property
    def ok(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return meets(self.ratio, self.target, self.direction)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        for key in ("value", "floor", "ratio"):
            if isinstance(data[key], float) and not math.isfinite(data[key]):
                data[key] = None  # JSON has no infinity
        return data


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "us":
        return f"{value:.1f} µs"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "KiB":
        return f"{value:.0f} KiB"
    if unit == "users/s":
        return f"{value:.0f} users/s"
    return f"{value:.3g} {unit}".strip()


def verdict(figure: Figure) -> str:
    if figure.ok is None:
        return ""
    sign = "<=" if figure.direction == "max" else ">="
    return f"{'ok  ' if figure.ok else 'MISS'} ({sign} {figure.target:g})"


def table(figures: Iterable[Figure]) -> str:
    """A plain-text table: section, name, value, floor, ratio, verdict, note."""
    rows = [("section", "measure", "value", "floor", "ratio", "target", "note")]
    for figure in figures:
        rows.append(
            (
                figure.section,
                figure.name,
                _number(figure.value, figure.unit),
                _number(figure.floor, figure.unit),
                "-" if figure.ratio is None or not math.isfinite(figure.ratio) else f"{figure.ratio:.2f}",
                verdict(figure),
                figure.note,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": platform.system(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_results(
    path: Path,
    figures: Sequence[Figure],
    *,
    settings: dict[str, Any],
    seconds: float,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """results.json: when, where, with which settings, how long, every figure, and each section's raw data."""
    data = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        "seconds": round(seconds, 1),
        "figures": [figure.as_dict() for figure in figures],
        "missed": [f"{figure.section}: {figure.name}" for figure in figures if figure.ok is False],
        "details": details or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return data
