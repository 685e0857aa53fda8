"""The bench's peers, each in its own process (its own interpreter lock, as the real ones are other
machines): a moto DynamoDB server and the Htouhui sandbox. Each is stopped by its own process id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.environment import ROOT

HERE = Path(__file__).resolve().parent
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
PARTNER_ID = "P2026000001"


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Peer:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)


@contextmanager
def moto_server() -> Iterator[Peer]:
    env = {**os.environ, **AWS_ENV}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "moto_child.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the moto server did not start")
        yield Peer(process, url)
    finally:
        if process.stdin:
            process.stdin.close()
        _stop(process)


@contextmanager
def sandbox_server(keys_dir: Path) -> Iterator[Peer]:
    """`python -m sandbox serve` on a free port, quiet, with the bench's keys."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT / 'local'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--quiet",
            "--keys-dir",
            str(keys_dir),
            "--partner-id",
            PARTNER_ID,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = ""
        for _ in range(40):
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("Htouhui sandbox on "):
                url = line.split()[3]
                break
        if not url.startswith("http"):
            raise RuntimeError("the sandbox did not start")
        yield Peer(process, url)
    finally:
        _stop(process)
