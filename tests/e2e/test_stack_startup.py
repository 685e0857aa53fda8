"""Starting `python -m stack` when it cannot, or being told to stop while it starts: it ends within seconds,
says why (naming the variable that moves a busy port), and leaves no process of its own behind."""

from __future__ import annotations

import http.server
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from stack_process import StackProcess, free_port

pytestmark = pytest.mark.slow

PORT_VARIABLES = ("API_PORT", "DYNAMODB_PORT", "SANDBOX_PORT")
NUL = bytes(1)


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment holds `text` (each test's folder is unique)."""
    found = []
    needle = text.encode()
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            stat = (folder / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            command = (folder / "cmdline").read_bytes()
            if needle in command or needle in (folder / "environ").read_bytes():
                found.append(f"{folder.name}: {command.replace(NUL, b' ')[:200]!r}")
        except OSError:
            continue
    return found


def ended_within(process: StackProcess, seconds: float) -> int | None:
    try:
        return process.process.wait(timeout=seconds)
    except Exception:
        process.process.kill()
        process.process.wait()
        return None


def assert_nothing_left(folder: Path) -> None:
    deadline = time.monotonic() + 5  # children end on their own shortly after their parent's SIGTERM
    while (left := processes_mentioning(str(folder))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, left


@contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    """A listening socket that never answers: what a stuck program (or macOS's AirPlay on 5000) looks like."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield holder


@contextmanager
def someone_elses_sandbox(port: int) -> Iterator[None]:
    """An HTTP server answering 200 to everything, as another sandbox's /_sandbox/health would."""

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def assert_start_refused(process: StackProcess, says: str, within: float = 10) -> None:
    """The stack ended non-zero within `within` seconds, saying `says`, never ready, and left nothing running."""
    started = time.monotonic()
    status = ended_within(process, within)
    assert status is not None, f"still running after {within} s: {process.text()}"
    assert status != 0 and time.monotonic() - started < within, process.text()
    assert says in process.text() and "ready" not in process.text(), process.text()
    assert_nothing_left(process.folder)


@pytest.mark.parametrize("variable", PORT_VARIABLES)
def test_a_busy_port_stops_the_start_within_seconds_naming_its_variable(tmp_path: Path, variable: str) -> None:
    busy = free_port()
    with listening(busy):
        process = StackProcess(tmp_path, **{variable: str(busy)})
        assert_start_refused(process, f"port {busy} ")
    assert f"set {variable}=" in process.text(), process.text()


def test_someone_elses_sandbox_on_the_port_is_not_taken_for_ours(tmp_path: Path) -> None:
    port = free_port()
    with someone_elses_sandbox(port):
        assert_start_refused(StackProcess(tmp_path, SANDBOX_PORT=str(port)), "set SANDBOX_PORT=")


def test_a_sandbox_that_dies_at_start_is_reported_not_ready(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("htouhui_private.pem", "htouhui_public.pem"):  # present, so the stack keeps them; unreadable
        (keys / name).write_text("not a key\n")
    assert_start_refused(StackProcess(tmp_path), "the sandbox exited at start", within=20)


def _sandbox_spawned(folder: Path) -> bool:
    return (folder / "logs" / "sandbox.log").exists()


def _interpreter_up(folder: Path) -> bool:
    return (folder / "keys").exists()  # the first thing the stack writes


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", [_interpreter_up, _sandbox_spawned], ids=["keys-made", "sandbox-spawned"])
def test_a_signal_during_start_up_stops_it_cleanly(tmp_path: Path, signum: int, moment: object) -> None:
    process = StackProcess(tmp_path)
    deadline = time.monotonic() + 30
    while not moment(tmp_path) and time.monotonic() < deadline:  # type: ignore[operator]
        assert process.process.poll() is None, process.text()
        time.sleep(0.01)
    assert "ready" not in process.text(), "too late: the stack was already up"
    process.process.send_signal(signum)
    status = ended_within(process, 10)
    assert status == 128 + signum, process.text()
    assert "during start-up" in process.text() and "stopped" in process.text(), process.text()
    assert_nothing_left(tmp_path)
