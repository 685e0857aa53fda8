"""`python -m htouhui`: the tool to reach for when Htouhui says "your signature is wrong".

canonical                       JSON fields on stdin -> the canonical string
sign --key PRIVATE.pem          JSON fields on stdin -> the signature (base64)
verify --key PUBLIC.pem [...]   JSON fields (with sign) on stdin -> valid / invalid (exit 0 / 1)
  (each takes --profile NAME_OR_PATH: a built-in profile of PROTOCOL.md §8, or a profile JSON file; default: default)
keygen --out DIR                a new RSA-2048 pair: merchant_private.pem (PKCS#8), merchant_public.pem (SPKI)
fingerprint --key KEY.pem       SHA-256 of the (public) key: what `verify` failures log, to compare with Htouhui
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from htouhui import protocol

EXIT_INVALID = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m htouhui", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    canonical = commands.add_parser("canonical", help="print the canonical string of the JSON fields on stdin")
    sign = commands.add_parser("sign", help="print the signature of the JSON fields on stdin")
    sign.add_argument("--key", required=True, type=Path, help="the signer's private key (any PEM or base64 DER)")
    verify = commands.add_parser("verify", help="check the `sign` of the JSON fields on stdin")
    verify.add_argument(
        "--key", required=True, action="append", type=Path, help="a public key; give two during a rotation"
    )
    for command in (canonical, sign, verify):
        command.add_argument(
            "--profile",
            default=protocol.DEFAULT.name,
            help=f"a built-in profile ({', '.join(protocol.BUILT_IN)}) or the path of a profile JSON file",
        )
    keygen = commands.add_parser("keygen", help="write a new RSA-2048 merchant key pair")
    keygen.add_argument("--out", required=True, type=Path, help="the folder to write the two PEM files into")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    fingerprint = commands.add_parser("fingerprint", help="print the SHA-256 fingerprint of a public or private key")
    fingerprint.add_argument("--key", required=True, type=Path, help="a public or private key (any form)")
    args = parser.parse_args(argv)
    _show_verification_details()

    try:
        if args.command == "keygen":
            return _keygen(args.out, force=args.force)
        if args.command == "fingerprint":
            print(protocol.fingerprint(_load_any_key(args.key.read_text())))
            return 0
        profile = protocol.load_profile(args.profile)
        fields = _read_fields()
        if args.command == "canonical":
            print(protocol.canonical(fields, profile))
            return 0
        if args.command == "sign":
            print(protocol.sign(fields, protocol.load_private_key(args.key.read_text()), profile))
            return 0
        keys = [protocol.load_public_key(path.read_text()) for path in args.key]
        valid = protocol.verify(fields, keys, profile)
        print("valid" if valid else "invalid")
        return 0 if valid else EXIT_INVALID
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _read_fields() -> dict[str, str]:
    data: Any = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
        raise ValueError("stdin must hold one JSON object whose values are all strings")
    return data


def _load_any_key(text: str) -> protocol.PublicKey | protocol.PrivateKey:
    try:
        return protocol.load_public_key(text)
    except protocol.KeyFormatError:
        return protocol.load_private_key(text)


class _DetailsFormatter(logging.Formatter):
    """A failed `verify` says why, with the canonical string's SHA-256 and the keys' fingerprints."""

    def format(self, record: logging.LogRecord) -> str:
        details = [
            f"{name}={getattr(record, name)}"
            for name in ("reason", "canonical_sha256", "key_fingerprints")
            if hasattr(record, name)
        ]
        return " ".join([record.getMessage(), *details])


def _show_verification_details() -> None:
    protocol_logger = logging.getLogger("htouhui.protocol")
    if any(isinstance(handler.formatter, _DetailsFormatter) for handler in protocol_logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_DetailsFormatter())
    protocol_logger.addHandler(handler)
    protocol_logger.propagate = False


def _keygen(folder: Path, *, force: bool) -> int:
    private_path, public_path = folder / "merchant_private.pem", folder / "merchant_public.pem"
    existing = [path for path in (private_path, public_path) if path.exists()]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    key = protocol.generate_private_key()
    # Created 0600 from the start (not chmod-ed after writing), so the key is never readable by others.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    with os.fdopen(os.open(private_path, flags, 0o600), "wb") as private_file:
        private_file.write(protocol.private_pem(key))
    private_path.chmod(0o600)  # --force over an existing file keeps that file's mode otherwise
    public_path.write_bytes(protocol.public_pem(key))
    print(f"wrote {private_path} and {public_path} (fingerprint {protocol.fingerprint(key)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
