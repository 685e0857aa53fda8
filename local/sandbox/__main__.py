"""`python -m sandbox`: run the local Htouhui sandbox, or drive a running one.

serve        run it (keys in .local/keys, made on first run)
trigger      queue a notification for a user at a status
deliveries   list notifications and every delivery attempt
fault        inject a fault into an interface (register, query, openAccount, notify)
fail-step    make a user's next open-account step fail
seed         create or update users at a status (bulk with --count)
users        list the users
reset        forget everything (users, faults, deliveries)
health       is it up, with which keys
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import sandbox  # noqa: F401 - puts the layer on the path when needed
from sandbox import DEFAULT_HOST, DEFAULT_PARTNER_ID, DEFAULT_PORT

EXIT_ERROR = 1


def _default_url() -> str:
    host = os.environ.get("SANDBOX_HOST", DEFAULT_HOST)
    return os.environ.get("SANDBOX_URL", f"http://{host}:{os.environ.get('SANDBOX_PORT', DEFAULT_PORT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sandbox")
    serve.add_argument("--host", default=os.environ.get("SANDBOX_HOST", DEFAULT_HOST))
    serve.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", DEFAULT_PORT)))
    serve.add_argument("--keys-dir", type=Path, default=Path(os.environ.get("HTOUHUI_KEYS_DIR", ".local/keys")))
    serve.add_argument("--partner-id", default=os.environ.get("HTOUHUI_PARTNER_ID", DEFAULT_PARTNER_ID))
    serve.add_argument(
        "--profile",
        default=os.environ.get("HTOUHUI_PROFILE") or "default",
        help="the protocol profile (PROTOCOL.md §8): a built-in name or file:PATH / PATH of a profile JSON file",
    )
    serve.add_argument("--time-scale", type=float, default=float(os.environ.get("SANDBOX_TIME_SCALE", "1")))
    serve.add_argument("--state-file", type=Path, default=os.environ.get("SANDBOX_STATE_FILE") or None)
    serve.add_argument("--public-url", default=os.environ.get("SANDBOX_PUBLIC_URL") or None)
    serve.add_argument("--query-path", default=os.environ.get("HTOUHUI_QUERY_PATH") or None)
    serve.add_argument("--quiet", action="store_true", help="no access log")

    def remote(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--url", default=_default_url(), help="the running sandbox (default %(default)s)")
        return command

    trigger = remote("trigger", "queue a notification for a user at a status")
    trigger.add_argument("--user", "--third-party-user-id", dest="user", required=True)
    trigger.add_argument("--status", choices=["0", "1", "2", "3"], help="default: the user's current level")
    trigger.add_argument("--notify-url", help="default: the user's notify_url on record")

    deliveries = remote("deliveries", "list notifications and their delivery attempts")
    deliveries.add_argument("--user", help="only this third_party_user_id")
    deliveries.add_argument("--notify-no")

    fault = remote("fault", "inject a fault (replaces the interface's previous fault)")
    fault.add_argument("interface", choices=["register", "query", "openAccount", "notify"])
    fault.add_argument("--latency-ms", type=int)
    fault.add_argument("--error-rate", type=float, help="share of answers that are HTTP 503, 0 to 1")
    fault.add_argument("--timeout", type=float, help="hold each request this many seconds, then drop it")
    fault.add_argument("--busy", action="store_true", help="answer 9999")
    fault.add_argument("--bad-signature", action="store_true")
    fault.add_argument("--unsigned", action="store_true")
    fault.add_argument("--not-json", action="store_true")
    fault.add_argument("--count", type=int, help="only the next N requests (default: all, until cleared)")
    fault.add_argument("--drop", type=int, help="notify: drop the next N notifications")
    fault.add_argument("--duplicate", type=int, help="notify: deliver the next notification N more times")
    fault.add_argument("--reorder", type=int, help="notify: hold N notifications, then deliver the latest first")
    fault.add_argument("--corrupt-signature", type=int, help="notify: break the signature of the next N")
    fault.add_argument("--clear", action="store_true", help="remove the interface's fault")

    fail = remote("fail-step", "make a user's next open-account step fail")
    fail.add_argument("--user", required=True)
    fail.add_argument("--step", required=True, choices=["open", "password", "authorise"])

    seed = remote("seed", "create or update users at a status")
    seed.add_argument("--user", required=True, help="a third_party_user_id, or a prefix with --count")
    seed.add_argument("--status", default="0", choices=["0", "1", "2", "3"])
    seed.add_argument("--id-card", help="required for status >= 1 (one for all with --count)")
    seed.add_argument("--count", type=int, help="seed PREFIX-00001 … PREFIX-N")

    remote("users", "list the users (personal values masked)")
    remote("reset", "forget users, faults and deliveries")
    remote("health", "is it up")
    remote("release", "deliver the notifications held by a reorder fault, latest first")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    try:
        return _remote(args)
    except Exception as exc:  # a CLI prints, it does not trace back
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _serve(args: argparse.Namespace) -> int:
    from sandbox.keys import load_or_make_keys
    from sandbox.server import Sandbox, SandboxConfig

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s sandbox %(message)s")
    keys = load_or_make_keys(args.keys_dir)
    for line in keys.notes:
        print(line, flush=True)
    options: dict[str, Any] = {}
    if args.query_path:
        options["query_path"] = args.query_path
    from htouhui import protocol

    config = SandboxConfig(
        profile=protocol.load_profile(args.profile),
        partner_id=args.partner_id,
        merchant_public_key=keys.merchant_public,
        htouhui_private_key=keys.htouhui_private,
        time_scale=args.time_scale,
        state_file=args.state_file,
        public_url=args.public_url,
        **options,
    )
    box = Sandbox(config)
    running = box.serve(host=args.host, port=args.port)
    for line in [
        f"Htouhui sandbox on {running.url}  (partner_id {config.partner_id}, time scale {config.time_scale:g})",
        f"  POST {running.url}/openapi/user/register",
        f"  POST {running.url}{config.query_path}",
        f"  POST {running.url}/openapi/user/openAccount   (browser form; one page per step)",
        f"  controls: {running.url}/_sandbox/health, /users, /faults, /trigger, /deliveries, /reset",
        f"  sandbox public key:  {args.keys_dir / 'htouhui_public.pem'}",
        f"  merchant public key: {args.keys_dir / 'merchant_public.pem'}",
        "Ctrl-C to stop.",
    ]:
        print(line, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    running.stop()
    return 0


def _remote(args: argparse.Namespace) -> int:
    import httpx

    url = args.url.rstrip("/") + "/_sandbox/"
    with httpx.Client(timeout=30) as client:
        if args.command == "trigger":
            body: dict[str, Any] = {"third_party_user_id": args.user}
            if args.status is not None:
                body["status"] = args.status
            if args.notify_url:
                body["notify_url"] = args.notify_url
            response = client.post(url + "trigger", json=body)
        elif args.command == "deliveries":
            params = {
                name: value
                for name, value in (("third_party_user_id", args.user), ("notify_no", args.notify_no))
                if value
            }
            response = client.get(url + "deliveries", params=params)
        elif args.command == "fault":
            response = client.post(url + "faults", json=_fault_body(args))
        elif args.command == "fail-step":
            response = client.post(url + f"users/{args.user}/fail-next-step", json={"step": args.step})
        elif args.command == "seed":
            names = [f"{args.user}-{n:05d}" for n in range(1, args.count + 1)] if args.count else [args.user]
            extra = {"id_card": args.id_card} if args.id_card else {}
            users = [{"third_party_user_id": name, "status": args.status, **extra} for name in names]
            response = client.post(url + "users", json={"users": users})
        elif args.command == "users":
            response = client.get(url + "users")
        elif args.command == "reset":
            response = client.post(url + "reset")
        elif args.command == "release":
            response = client.post(url + "deliveries/release")
        else:
            response = client.get(url + "health")
    data = response.json()
    if args.command == "seed" and response.is_success and len(data.get("users", [])) > 10:
        data = {"seeded": len(data["users"]), "first": data["users"][0], "last": data["users"][-1]}
    print(json.dumps(data, ensure_ascii=False, indent=2))
    return 0 if response.is_success else EXIT_ERROR


def _fault_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"interface": args.interface}
    if args.clear:
        body["clear"] = True
        return body
    for name in ("latency_ms", "error_rate", "timeout", "count", "drop", "duplicate", "reorder", "corrupt_signature"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    for name in ("busy", "bad_signature", "unsigned", "not_json"):
        if getattr(args, name):
            body[name] = True
    return body


if __name__ == "__main__":
    sys.exit(main())
