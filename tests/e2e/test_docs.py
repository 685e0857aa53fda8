"""Every shell block in README.md and docs/*.md is marked runnable (```sh, ```bash) or not (```sh no-run:
servers, deploys, AWS, the bench, test commands), and every runnable one works verbatim: pasted into bash from
the repository root against a fresh local stack on the documented default ports, it exits 0 (each ends in a
check that could fail)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import ROOT
from stack_process import StackProcess, port_is_free

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Not marked yet: its owner's to change. Its blocks are neither checked for a marker nor run.
UNMARKED: set[str] = set()
SHELLS = {"sh", "bash"}
NOT_RUNNABLE = "no-run"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
DEFAULT_PORTS = {"API_PORT": 3000, "DYNAMODB_PORT": 5000, "SANDBOX_PORT": 3100}
# A document whose blocks need `STACK_IAM=1 make run` says so with this line (the others get a plain `make run`).
IAM_MARK = "<!-- docs test: STACK_IAM=1 make run -->"
# What a terminal in a fresh clone does not have: the test run's own settings (make's PYTHONPATH, its jobserver).
NOT_IN_A_TERMINAL = {"PYTHONPATH", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", *DEFAULT_PORTS, "HTOUHUI_KEYS_DIR"}


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int
    info: str
    text: str

    @property
    def runnable(self) -> bool:
        return NOT_RUNNABLE not in self.info.split()[1:]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def shell_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    relative = str(path.relative_to(ROOT))
    return [
        Block(relative, text.count("\n", 0, found.start()) + 1, found.group(1).strip(), found.group(2))
        for found in FENCE.finditer(text)
        if found.group(1).split()[:1] and found.group(1).split()[0] in SHELLS
    ]


def checked_docs() -> list[Path]:
    return [path for path in DOCS if str(path.relative_to(ROOT)) not in UNMARKED]


def test_every_shell_block_is_marked_runnable_or_not() -> None:
    blocks = [block for path in checked_docs() for block in shell_blocks(path)]
    marks = ([], [NOT_RUNNABLE])
    badly_marked = [f"{block}: ```{block.info}" for block in blocks if block.info.split()[1:] not in marks]
    assert badly_marked == [], "a shell block is ```sh (runnable) or ```sh no-run, nothing else"
    assert sum(block.runnable for block in blocks) >= 8, "the parse lost the runnable blocks"
    assert sum(not block.runnable for block in blocks) >= 8, "the parse lost the no-run blocks"


def needs_iam(path: Path) -> bool:
    return IAM_MARK in path.read_text(encoding="utf-8")


class DocStacks:
    """`make run` as the docs assume it: the default ports and keys (.local/keys), the default time scale; with
    `STACK_IAM=1` for the documents marked so (one stack at a time: they share the ports; restarted on a
    change, and the marked documents run last)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: StackProcess | None = None
        self.iam: bool | None = None

    def get(self, iam: bool) -> StackProcess:
        if self.process is not None and self.iam == iam:
            return self.process
        self.close()
        process = StackProcess(
            self.folder / ("iam" if iam else "plain"),
            **{name: str(port) for name, port in DEFAULT_PORTS.items()},
            HTOUHUI_KEYS_DIR=str(ROOT / ".local" / "keys"),
            SANDBOX_TIME_SCALE="1",
            STACK_IAM="1" if iam else "",
        )
        process.api_port, process.dynamodb_port, process.sandbox_port = DEFAULT_PORTS.values()
        process.url = "http://127.0.0.1:3000"
        process.dynamodb_url, process.sandbox_url = "http://127.0.0.1:5000", "http://127.0.0.1:3100"
        self.process, self.iam = process, iam
        process.wait_ready()
        return process

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture(scope="module")
def doc_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocStacks]:
    busy = [f"{name} {port}" for name, port in DEFAULT_PORTS.items() if not port_is_free(port)]
    if busy:
        reason = f"the docs' default ports are in use here ({', '.join(busy)}): their commands name those ports"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    stacks = DocStacks(tmp_path_factory.mktemp("docs"))
    for name in ("iam", "plain"):
        (stacks.folder / name).mkdir()
    try:
        yield stacks
    finally:
        stacks.close()


def terminal_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in NOT_IN_A_TERMINAL}


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    sorted((path for path in checked_docs() if any(block.runnable for block in shell_blocks(path))), key=needs_iam),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_the_runnable_blocks_work_verbatim(doc_stacks: DocStacks, path: Path) -> None:
    """Each document's blocks in order, from a stack that forgot everything (`make reset`)."""
    fresh_stack = doc_stacks.get(needs_iam(path))
    assert httpx.post(f"{fresh_stack.url}/_local/reset", timeout=30).status_code == 200
    for block in shell_blocks(path):
        if not block.runnable:
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", block.text],
            cwd=ROOT,
            env=terminal_environment(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, (
            f"{block} exited {result.returncode}\n--- block\n{block.text}--- stdout\n{result.stdout[-3000:]}"
            f"\n--- stderr\n{result.stderr[-3000:]}"
        )


def test_the_signed_tour_in_the_readme_is_the_one_the_docs_test_runs() -> None:
    """README's signed variant is ```sh no-run (README's stack is a plain `make run`): docs/integrate.md, which
    the test runs against `STACK_IAM=1 make run`, holds the same block verbatim."""
    signed = [block.text for block in shell_blocks(ROOT / "README.md") if "--aws-sigv4" in block.text]
    assert signed, "README shows a signed variant of the curl tour"
    integrate = ROOT / "docs" / "integrate.md"
    assert needs_iam(integrate)
    runnable = [block.text for block in shell_blocks(integrate) if block.runnable]
    assert all(text in runnable for text in signed)
