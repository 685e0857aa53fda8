"""One Lambda execution environment: imports one handler and answers invocations, one at a time.

Started by `stack.lambdas` as `python worker.py CODE_URI HANDLER [LAYER_DIR ...]` with the function's environment.
Standard library only, and run as a script, so the function sees a path like Lambda's: its code folder first, then
its layers, then the runtime's packages (here: the virtualenv's). Invocations come as JSON lines on stdin; answers
go as JSON lines on a private copy of the original stdout, while the function's own stdout and stderr (its logs)
both go to stderr.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.function_name: str = data["function_name"]
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = data["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(data["memory_limit_in_mb"])
        self.aws_request_id: str = data["aws_request_id"]
        self.log_group_name: str = data["log_group_name"]
        self.log_stream_name: str = data["log_stream_name"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms: int = int(data["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def load_module(code_uri: str, handler: str, module_name: str | None = None) -> Any:
    """The module of `handler` (e.g. `app.lambda_handler`) from the folder `code_uri`, executed now.

    Lambda imports it as `app`; in one process holding several functions (tests, the bench) each gets its own
    `module_name`. Imports inside the module are resolved through sys.path, which the caller sets.
    """
    module_file = handler.rpartition(".")[0]
    name = module_name or module_file
    path = os.path.join(code_uri, *module_file.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module {module_file} in {code_uri}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def main(argv: list[str]) -> int:
    code_uri, handler, *layers = argv
    # Ctrl-C reaches the whole process group; the runner ends its workers itself (closing stdin), as Lambda's
    # runtime does, so a worker never dies mid-invocation with a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # the function's prints and logs go to stderr, never into the answers
    sys.stdout = os.fdopen(1, "w", encoding="utf-8", buffering=1, closefd=False)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [code_uri, *layers, *[entry for entry in sys.path if os.path.abspath(entry or ".") != here]]
    os.chdir(code_uri)  # Lambda's working directory is the task root

    started = time.monotonic()
    try:
        function = getattr(load_module(code_uri, handler), handler.rpartition(".")[2])
    except BaseException as exc:
        traceback.print_exc()
        answers.write(json.dumps({"init_error": _error(exc, "Runtime.ImportModuleError")}) + "\n")
        return 1
    answers.write(json.dumps({"ready": True, "init_ms": round((time.monotonic() - started) * 1000)}) + "\n")

    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        context = LambdaContext(message["context"])
        os.environ["_X_AMZN_TRACE_ID"] = message["context"].get("trace_id", "")
        try:
            result = function(message["event"], context)
        except Exception as exc:
            traceback.print_exc()
            text = json.dumps({"error": _error(exc)})
        else:
            try:
                text = json.dumps({"result": result})
            except (TypeError, ValueError) as exc:
                traceback.print_exc()
                text = json.dumps({"error": _error(exc, "Runtime.MarshalError")})
        answers.write(text + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
