"""Idle: what an idle `make run` (`python -m stack`) costs the laptop, in CPU time per second of wall time.

The stack is started as `make run` starts it (sandbox included, the default schedule), on free ports, in a
scratch folder; once it is ready and has settled, its CPU time (user + system, from /proc: every thread, moto's
server and the pollers included) is read at the start and the end of a window in which nobody calls it. The
figure is the stack process's share of one core; its children (the sandbox, function processes the schedule
started) are reported beside it. The target is 1 % of a core.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.environment import ROOT
from bench.servers import cpu_seconds
from bench.stats import Figure

TARGET_SHARE = 0.01  # of one core


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def measure(
    scratch: Path,
    *,
    seconds: float = 20.0,
    settle: float = 3.0,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    folder = scratch / "idle-stack"
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "local"), str(ROOT / "layers" / "common")]),
        API_PORT=str(_free_port()),
        DYNAMODB_PORT=str(_free_port()),
        SANDBOX_PORT=str(_free_port()),
        HTOUHUI_KEYS_DIR=str(folder / "keys"),
        STACK_LOGS_DIR=str(folder / "logs"),
    )
    output = folder / "stack-output.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "stack"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while "ready in" not in output.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the local stack did not start:\n{output.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        time.sleep(settle)  # start-up's own work (threads starting, first polls) is not idling
        progress(f"idle: the stack is up; measuring {seconds:g} s of idling")
        children = descendants(process.pid)
        own_before = cpu_seconds(process.pid)
        children_before = {pid: cpu_seconds(pid) for pid in children}
        wall_before = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - wall_before
        own = cpu_seconds(process.pid) - own_before
        later = descendants(process.pid)
        children_cpu = sum(cpu_seconds(pid) - children_before.get(pid, 0.0) for pid in later)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    share = own / wall
    children_share = children_cpu / wall
    figures = [
        Figure(
            "idle",
            "idle `make run`: the stack process (moto's server, pollers, schedules), share of one core",
            share * 100,
            100.0,  # one core: the ratio is the share of it
            "%",
            target=TARGET_SHARE,
            note=f"{own:.2f} s CPU in {wall:.0f} s; its children (sandbox, functions) {children_share * 100:.2f} %",
            extra={"children_percent": round(children_share * 100, 3)},
        )
    ]
    raw = {
        "seconds": round(wall, 2),
        "stack_cpu_seconds": round(own, 3),
        "stack_percent_of_a_core": round(share * 100, 3),
        "children_cpu_seconds": round(children_cpu, 3),
        "children_percent_of_a_core": round(children_share * 100, 3),
        "target_percent": TARGET_SHARE * 100,
    }
    return figures, raw
