"""The bench's peers, each in its own process (its own interpreter lock, as the real ones are other
machines): a moto DynamoDB server and the Htouhui sandbox. Each is stopped by its own process id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from bench.environment import PARTNER_ID, ROOT

HERE = Path(__file__).resolve().parent
AWS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


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
def _peer(command: list[str], env: dict[str, str], url_of: Callable[[str], str | None], what: str) -> Iterator[Peer]:
    """Start `command`, read its standard output until `url_of` finds the URL it serves on; stop it after."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert process.stdout is not None
        url = None
        for _ in range(40):
            line = process.stdout.readline()
            url = url_of(line) if line else ""
            if url is not None:
                break
        if not url or not url.startswith("http"):
            raise RuntimeError(f"the {what} did not start")
        yield Peer(process, url)
    finally:
        if process.stdin:
            process.stdin.close()  # the moto child's signal to stop
        _stop(process)


def moto_server() -> AbstractContextManager[Peer]:
    """A moto DynamoDB server (`moto_child.py`): its first line is its URL."""
    command = [sys.executable, str(HERE / "moto_child.py")]
    return _peer(command, {**os.environ, **AWS_ENV}, lambda line: line.strip(), "moto server")


def sandbox_server(keys_dir: Path) -> AbstractContextManager[Peer]:
    """`python -m sandbox serve` on a free port, quiet, with the bench's keys."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT / 'local'}"}
    command = [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--quiet", "--keys-dir", str(keys_dir)]
    command += ["--partner-id", PARTNER_ID]
    prefix = "Htouhui sandbox on "
    return _peer(command, env, lambda line: line.split()[3] if line.startswith(prefix) else None, "sandbox")
