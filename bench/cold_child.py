"""One cold import, in a fresh interpreter: `python cold_child.py FOLDER [LAYER [setup]]` prints one JSON line.

FOLDER holds app.py (a function, or the floor); LAYER (optional) goes on sys.path after it, as Lambda
puts /var/task before /opt/python. The clock starts when this script starts (the interpreter's own
start-up is the same for every target) and stops when `import app` returns: Lambda's init phase for
our code. Peak memory is the process's VmHWM (peak resident set) at that moment: not ru_maxrss, which on
Linux keeps the forking parent's peak across exec. With `setup`, the first request's set-up (settings, store,
DynamoDB client) is timed after the import too. With `request EVENT` (a JSON file), the handler is then called
with that event as Lambda calls it, and the clock stops when the first request has been answered (its
status code is reported; its log lines and metrics go to standard output before the JSON line). With `restored`,
the environment is primed as the SnapStart hook primes it before the snapshot (onboarding.ops.priming), then
forked: the child stands in for an environment restored from the snapshot, and its clock starts at the fork
(the after-restore hook, then the same set-up).
"""

import time

started = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

folder = sys.argv[1]
layer = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
sys.path[0] = folder  # not the bench folder: nothing of the bench may shadow a module
if layer:
    sys.path.insert(1, layer)


def peak_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


before = len(sys.modules)
if folder != "-":
    import app  # type: ignore[import-not-found]  # the function's folder, put on sys.path above
seconds = time.perf_counter() - started
peak_at_init = peak_kib()
# What the first request adds (the functions defer it): settings, the store and its DynamoDB client.
then = None
mode = sys.argv[3] if len(sys.argv) > 3 else ""
extra: dict[str, object] = {}
if mode == "setup":
    from onboarding import runtime

    runtime.onboarding().store.client()  # type: ignore[attr-defined]  # the DynamoDB store: its client made
    then = time.perf_counter() - started
elif mode == "request":
    import json as _json

    class Context:  # what the Lambda runtime hands a handler
        function_name = "bench"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:bench"
        memory_limit_in_mb = 512
        aws_request_id = "00000000-0000-4000-8000-000000000000"
        log_group_name = "/aws/lambda/bench"
        log_stream_name = "bench"

        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    with open(sys.argv[4], encoding="utf-8") as source:
        event = _json.load(source)
    answer = app.lambda_handler(event, Context())
    then = time.perf_counter() - started
    extra["with_first_request"] = then
    extra["status"] = answer.get("statusCode") if isinstance(answer, dict) else None
    extra["answer"] = answer if isinstance(answer, dict) and "statusCode" not in answer else None
elif mode == "restored":
    import os

    from onboarding import runtime
    from onboarding.ops import priming

    primed_at = time.perf_counter()
    priming.before_snapshot()
    extra["priming_seconds"] = time.perf_counter() - primed_at
    extra["primed"] = "onboarding" in runtime.peek()
    sys.stdout.flush()
    child = os.fork()
    if child:  # the snapshot's original: only the restored child reports
        _, status = os.waitpid(child, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    started = time.perf_counter()  # restored: what Lambda runs now is ours from here
    priming.after_restore()
    seconds = time.perf_counter() - started
    runtime.onboarding().store.client()  # type: ignore[attr-defined]  # the DynamoDB store: its client made
    then = time.perf_counter() - started


print(
    json.dumps(
        {
            "seconds": seconds,
            "with_first_request_setup": then,
            "maxrss_kib": peak_at_init,
            "maxrss_with_first_request_setup_kib": peak_kib(),
            "modules": len(sys.modules) - before,
            **extra,
        }
    ),
    flush=True,
)
if mode == "restored":
    os._exit(0)  # the child: no interpreter teardown of what it shares with its parent
