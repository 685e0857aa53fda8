"""Starting the real local stack (`python -m stack`) as a subprocess on free ports, for the e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from helpers import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nothing listens on `port` (connections in TIME_WAIT do not count: servers bind with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class StackProcess:
    def __init__(self, folder: Path, *, template: Path | None = None, sandbox: bool = True, **env: str) -> None:
        self.folder = folder
        self.api_port, self.dynamodb_port, self.sandbox_port = free_port(), free_port(), free_port()
        self.output = folder / "stack-output.txt"
        environment = dict(os.environ)
        environment.update(
            PYTHONPATH=os.pathsep.join([str(ROOT / "local"), str(ROOT / "layers" / "common")]),
            API_PORT=str(self.api_port),
            DYNAMODB_PORT=str(self.dynamodb_port),
            SANDBOX_PORT=str(self.sandbox_port),
            HTOUHUI_KEYS_DIR=str(folder / "keys"),
            STACK_LOGS_DIR=str(folder / "logs"),
            SANDBOX_TIME_SCALE="0.01",
            LOCAL_SCHEDULE_SECONDS="3600",
            STACK_SANDBOX="1" if sandbox else "0",
        )
        if template is not None:
            environment["STACK_TEMPLATE"] = str(template)
        environment.update(env)
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stack"], cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT
            )
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.dynamodb_url = f"http://127.0.0.1:{self.dynamodb_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"

    def wait_ready(self, timeout: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the stack exited: {self.text()}")
            try:
                answer = httpx.get(f"{self.url}/_local/health", timeout=1)
                if answer.status_code == 200:
                    return dict(answer.json())
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the stack did not become ready: {self.text()}")

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the stack did not stop on SIGTERM") from None
        return int(self.process.returncode)


@contextmanager
def running_stack(folder: Path, **options: Any) -> Iterator[StackProcess]:
    """A stack started in `folder` (StackProcess's options), ready, and stopped whatever happens."""
    process = StackProcess(folder, **options)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


# --- `make demo` (python -m stack.demo) as a person runs it ----------------------------------------------

MOBILE = "13912345678"
ID_CARD = "110105199003071239"  # check digit valid (GB 11643)
REAL_NAME = "测试用户"


def run_demo(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.pop("SANDBOX_TIME_SCALE", None)
    environment.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "local"), str(ROOT / "layers" / "common")]),
        PYTHONIOENCODING="utf-8",
        STACK_HOST="127.0.0.1",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "stack.demo", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def person(user: str, mobile: str = MOBILE) -> list[str]:
    return ["--user", user, "--mobile", mobile, "--id-card", ID_CARD, "--real-name", REAL_NAME]


# --- a merchant's consumer of the stack's bus: a rule with an SQS target, on the stack's moto ------------------


def stack_aws(stack: StackProcess, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=stack.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class BusConsumer:
    """What a merchant deploys to receive our events: a rule on the bus matching `pattern`, its target a queue."""

    def __init__(self, stack: StackProcess, bus: str, name: str, pattern: dict[str, Any]) -> None:
        import json

        self.events, self.sqs, self.bus = stack_aws(stack, "events"), stack_aws(stack, "sqs"), bus
        self.queue = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        self.events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def receive(self, until: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """Every event received (and deleted) until `until(events so far)` holds or the time is up."""
        import json

        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not until(received) and time.monotonic() < deadline:
            for message in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
                received.append(json.loads(message["Body"]))
        return received
