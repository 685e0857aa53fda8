"""`python -m onboarding.ops`: which protocol profile a real Htouhui speaks (docs/protocol.md).

probe --env uat|stage|prod ...  which profile a real Htouhui speaks (queries a made-up user per candidate)
explain --key PUBLIC.pem        a captured notification (form) or answer (JSON) on stdin -> its profile
  (keys: a path, file:, secretsmanager: or ssm:; the SDK's `python -m htouhui` signs and verifies)
"""

from __future__ import annotations

import argparse
import logging
import sys

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, ENVIRONMENTS
from onboarding.ops import probe

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onboarding.ops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("probe", help="find the profile a Htouhui server speaks (run from an allowed address)")
    where = probe.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="Htouhui's base URL, e.g. https://new-uat.test.htouhui.com")
    where.add_argument("--env", choices=["uat", "stage", "prod"], help="Htouhui's environment (PROTOCOL.md section 1)")
    probe.add_argument("--partner-id", required=True, help="the merchant number Htouhui issued")
    probe.add_argument("--key", required=True, help="the merchant's private key: a path, file:, secretsmanager:, ssm:")
    probe.add_argument("--htouhui-key", required=True, action="append", help="Htouhui's public key (same sources)")
    probe.add_argument("--query-path", default=None, help="the query interface's path (default /openapi/user/query)")
    probe.add_argument("--profile", action="append", default=[], help="a candidate profile (default: every built-in)")
    probe.add_argument("--register-test-user", action="store_true", help="also register the made-up user first")
    probe.add_argument("--allow-prod", action="store_true", help="allow probing Htouhui's production address")
    explain = commands.add_parser("explain", help="under which profile does a captured message verify, and why not")
    explain.add_argument("--key", required=True, action="append", help="Htouhui's public key (a path or key source)")
    explain.add_argument("--profile", action="append", default=[], help="a candidate profile (default: every built-in)")
    args = parser.parse_args(argv)
    logging.getLogger("htouhui").setLevel(logging.ERROR)  # they report each failure themselves
    try:
        return _probe(args) if args.command == "probe" else _explain(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _probe(args: argparse.Namespace) -> int:
    base_url = (args.base_url or ENVIRONMENTS[args.env]).rstrip("/")
    probe.check_address(base_url, allow_prod=args.allow_prod)
    target = probe.ProbeTarget(
        base_url=base_url,
        partner_id=args.partner_id,
        merchant_key=protocol.load_private_key(probe.read_key_argument(args.key)),
        htouhui_keys=[protocol.load_public_key(probe.read_key_argument(key)) for key in args.htouhui_key],
        query_path=args.query_path or DEFAULT_QUERY_PATH,
    )
    candidates = probe.candidate_profiles(args.profile, protocol.load_profile)
    print(f"probing {target.base_url} as {target.partner_id} with {len(candidates)} candidate profile(s)")
    trials = probe.probe(target, candidates, register_test_user=args.register_test_user)
    for trial in trials:
        print(trial.line())
    status, last = probe.conclusion(trials)
    print(last)
    return status


def _explain(args: argparse.Namespace) -> int:
    keys = [protocol.load_public_key(probe.read_key_argument(key)) for key in args.key]
    message = probe.read_message(sys.stdin.buffer.read().decode("utf-8"))
    explanations = probe.explain(message, keys, probe.candidate_profiles(args.profile, protocol.load_profile))
    status, lines = probe.explanation_lines(explanations)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
