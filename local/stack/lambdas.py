"""Lambda execution environments: one worker subprocess per concurrent invocation of a function.

Why subprocesses: each function gets its own environment variables (os.environ is process-wide), its own module
named `app` (every function's handler is `app.lambda_handler`), its own imports and globals, and a real cold start
on the first invocation, as in Lambda. A function that is invoked while all its workers are busy gets another
worker, up to `max_concurrency`, as Lambda scales out. A worker that overruns the function's Timeout is killed,
as Lambda ends the environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stack.template import ACCOUNT_ID, REGION, Function

WORKER = Path(__file__).with_name("worker.py")
INIT_SECONDS = 10.0  # Lambda's limit for the init phase


@dataclass
class InvocationFailure(Exception):
    """The invocation did not return a result: `kind` is init, error, timeout or crash."""

    kind: str
    error_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.error_type}: {self.message}"


def function_arn(function: Function) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function.logical_id}"


def invocation_context(function: Function, request_id: str | None = None, trace_id: str = "") -> dict[str, Any]:
    """What the runtime knows of one invocation (`worker.LambdaContext` is made of it); the deadline starts now."""
    deadline = time.time() + function.timeout
    return {
        "function_name": function.logical_id,
        "invoked_function_arn": function_arn(function),
        "memory_limit_in_mb": function.memory,
        "aws_request_id": request_id or str(uuid.uuid4()),
        "log_group_name": f"/aws/lambda/{function.logical_id}",
        "log_stream_name": "local",
        "deadline_ms": int(deadline * 1000),
        "trace_id": trace_id,
    }


class Worker:
    def __init__(self, function: Function, environment: dict[str, str], log: IO[bytes] | None) -> None:
        self.function = function
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(function.code_uri), function.handler, *map(str, function.layers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=environment,
            cwd=str(function.code_uri),
        )
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.ready = False
        self.init_ms: int | None = None
        threading.Thread(target=self._read, name=f"worker-{function.logical_id}", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.answers.put(json.loads(line))
            except ValueError:
                continue
        self.answers.put(None)

    def _next(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.answers.get(timeout=max(timeout, 0.001))
        except queue.Empty as exc:
            raise TimeoutError from exc

    def invoke(self, event: Any, context: dict[str, Any], timeout: float) -> Any:
        if not self.ready:
            try:
                first = self._next(INIT_SECONDS)
            except TimeoutError:
                self.kill()
                raise InvocationFailure("init", "Runtime.InitTimeout", "init phase took too long") from None
            if first is None or "init_error" in first:
                error = (first or {}).get("init_error") or {}
                self.kill()
                raise InvocationFailure(
                    "init", error.get("errorType", "Runtime.ExitError"), error.get("errorMessage", "worker exited")
                )
            self.ready = True
            self.init_ms = first.get("init_ms")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps({"event": event, "context": context}) + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except OSError:
            self.kill()
            raise InvocationFailure("crash", "Runtime.ExitError", "the worker is gone") from None
        try:
            answer = self._next(timeout)
        except TimeoutError:
            self.kill()
            raise InvocationFailure(
                "timeout", "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"
            ) from None
        if answer is None:
            self.kill()
            raise InvocationFailure("crash", "Runtime.ExitError", "the worker exited during the invocation")
        if "error" in answer:
            error = answer["error"]
            raise InvocationFailure("error", str(error.get("errorType")), str(error.get("errorMessage")))
        return answer.get("result")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self) -> None:
        """Close stdin (the worker ends its loop), then make sure it is gone."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        self.kill()


class FunctionPool:
    """The execution environments of one function."""

    def __init__(
        self,
        function: Function,
        environment: dict[str, str],
        *,
        log_path: Path | None,
        max_concurrency: int = 4,
    ) -> None:
        self.function = function
        self.environment = environment
        self.log_path = log_path
        self.max_concurrency = max_concurrency
        self._idle: list[Worker] = []
        self._all: list[Worker] = []
        self._condition = threading.Condition()
        self._log: IO[bytes] | None = None
        self._closed = False
        self.cold_starts = 0
        self.invocations = 0
        self.errors = 0

    @property
    def arn(self) -> str:
        return function_arn(self.function)

    def _acquire(self) -> Worker:
        with self._condition:
            while True:
                if self._closed:
                    raise InvocationFailure("crash", "Local.Stopped", "the local stack is stopping")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._all.remove(worker)
                if len(self._all) < self.max_concurrency:
                    if self._log is None and self.log_path is not None:
                        self.log_path.parent.mkdir(parents=True, exist_ok=True)
                        self._log = self.log_path.open("ab", buffering=0)
                    worker = Worker(self.function, self.environment, self._log)
                    self._all.append(worker)
                    self.cold_starts += 1
                    return worker
                self._condition.wait()

    def _release(self, worker: Worker) -> None:
        with self._condition:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                if worker in self._all:
                    self._all.remove(worker)
                worker.kill()
            self._condition.notify()

    def invoke(self, event: Any, request_id: str | None = None, trace_id: str = "") -> Any:
        """Run the handler on `event`; returns its result or raises InvocationFailure."""
        worker = self._acquire()
        context = invocation_context(self.function, request_id, trace_id)
        with self._condition:
            self.invocations += 1
        try:
            return worker.invoke(event, context, self.function.timeout)
        except InvocationFailure:
            with self._condition:
                self.errors += 1
            raise
        finally:
            self._release(worker)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._condition.notify_all()
        for worker in workers:
            worker.stop()
        if self._log is not None:
            self._log.close()


def lambda_environment(
    function: Function, overrides: dict[str, str], base: dict[str, str] | None = None
) -> dict[str, str]:
    """What a Lambda environment holds: the runtime's variables, the template's, then the local overrides."""
    source = os.environ if base is None else base
    environment = {
        "PATH": source.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "LAMBDA_TASK_ROOT": str(function.code_uri),
        "_HANDLER": function.handler,
        "AWS_SAM_LOCAL": "true",  # what `sam local` sets; Powertools' Tracer stays off without an X-Ray daemon
    }
    environment.update(function.environment)
    environment.update(overrides)
    return {name: value for name, value in environment.items() if value is not None}
