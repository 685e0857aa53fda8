"""`python -m stack` (`make run`): serve template.yaml on this machine. Every option also has an environment
variable (shown in brackets); command-line options win. `python -m stack reset` (`make reset`): make the running
stack forget every user, in its tables and in its sandbox."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from stack.runner import StackConfig, run


def reset(config: StackConfig) -> int:
    """POST /_local/reset to the stack running on API_PORT."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    url = f"http://{host}:{config.api_port}/_local/reset"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=60) as answer:
            result = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"no local stack answered {url} ({error}): is `make run` running (on API_PORT)?", file=sys.stderr)
        return 1
    removed = ", ".join(f"{count} from {table}" for table, count in result["removed"].items())
    print(f"reset: the sandbox {result['sandbox']}; items removed: {removed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    config = StackConfig.from_env()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["reset"]:
        return reset(config)
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("--template", type=Path, default=config.template, help="[STACK_TEMPLATE] template.yaml")
    parser.add_argument("--host", default=config.host, help="[STACK_HOST] 127.0.0.1")
    parser.add_argument("--api-port", type=int, default=config.api_port, help="[API_PORT] 3000; 0 = any free port")
    parser.add_argument("--dynamodb-port", type=int, default=config.dynamodb_port, help="[DYNAMODB_PORT] 5000")
    parser.add_argument("--sandbox-port", type=int, default=config.sandbox_port, help="[SANDBOX_PORT] 3100")
    parser.add_argument("--keys-dir", type=Path, default=config.keys_dir, help="[HTOUHUI_KEYS_DIR] .local/keys")
    parser.add_argument("--logs-dir", type=Path, default=config.logs_dir, help="[STACK_LOGS_DIR] .local/logs")
    parser.add_argument("--partner-id", default=config.partner_id, help="[HTOUHUI_PARTNER_ID] P2026000001")
    parser.add_argument("--time-scale", type=float, default=config.time_scale, help="[SANDBOX_TIME_SCALE] 1")
    parser.add_argument(
        "--schedule-seconds", type=float, default=config.schedule_seconds, help="[LOCAL_SCHEDULE_SECONDS] 30"
    )
    parser.add_argument(
        "--iam",
        action="store_true",
        help="[STACK_IAM=1] require SigV4 on the AWS_IAM routes (.local/keys/iam-credentials)",
    )
    parser.add_argument("--no-sandbox", action="store_true", help="[STACK_SANDBOX=0] do not start the sandbox")
    parser.add_argument(
        "--function-logs", choices=("file", "console"), default=config.function_logs, help="[STACK_FUNCTION_LOGS]"
    )
    parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameters")
    parser.add_argument(
        "--env-vars", type=Path, help='JSON as for `sam local --env-vars`: {"Parameters": {...}, "Function": {...}}'
    )
    args = parser.parse_args(argv)
    config.template = args.template
    config.host = args.host
    config.api_port, config.dynamodb_port, config.sandbox_port = args.api_port, args.dynamodb_port, args.sandbox_port
    config.keys_dir, config.logs_dir = args.keys_dir, args.logs_dir
    config.partner_id, config.time_scale = args.partner_id, args.time_scale
    config.schedule_seconds = args.schedule_seconds
    config.sandbox = config.sandbox and not args.no_sandbox
    config.iam = config.iam or args.iam
    config.function_logs = args.function_logs
    for item in args.parameter_overrides:
        name, separator, value = item.partition("=")
        if not separator:
            parser.error(f"--parameter-overrides takes KEY=VALUE, got {item!r}")
        config.parameter_overrides[name] = value
    if args.env_vars:
        config.env_vars = json.loads(args.env_vars.read_text(encoding="utf-8"))
    return run(config)


if __name__ == "__main__":
    status = main()
    # Everything is stopped and flushed: skip the interpreter's teardown, which collects moto's in-memory tables
    # and took over 20 s after a notification storm on a loaded machine (SIGTERM must end the stack promptly).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
