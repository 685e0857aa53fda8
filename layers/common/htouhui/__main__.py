"""`python -m htouhui`: the tool to reach for when Htouhui says "your signature is wrong".

canonical                       JSON fields on stdin -> the canonical string
sign --key PRIVATE.pem          JSON fields on stdin -> the signature (base64)
verify --key PUBLIC.pem [...]   JSON fields (with sign) on stdin -> valid / invalid (exit 0 / 1)
keygen --out DIR                a new RSA-2048 pair: merchant_private.pem (PKCS#8), merchant_public.pem (SPKI)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from htouhui import protocol

EXIT_INVALID = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m htouhui", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("canonical", help="print the canonical string of the JSON fields on stdin")
    sign = commands.add_parser("sign", help="print the RSA2 signature of the JSON fields on stdin")
    sign.add_argument("--key", required=True, type=Path, help="the signer's private key (any PEM or base64 DER)")
    verify = commands.add_parser("verify", help="check the `sign` of the JSON fields on stdin")
    verify.add_argument(
        "--key", required=True, action="append", type=Path, help="a public key; give two during a rotation"
    )
    keygen = commands.add_parser("keygen", help="write a new RSA-2048 merchant key pair")
    keygen.add_argument("--out", required=True, type=Path, help="the folder to write the two PEM files into")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)

    try:
        if args.command == "keygen":
            return _keygen(args.out, force=args.force)
        fields = _read_fields()
        if args.command == "canonical":
            print(protocol.canonical(fields))
            return 0
        if args.command == "sign":
            print(protocol.sign(fields, protocol.load_private_key(args.key.read_text())))
            return 0
        keys = [protocol.load_public_key(path.read_text()) for path in args.key]
        valid = protocol.verify(fields, keys)
        print("valid" if valid else "invalid")
        return 0 if valid else EXIT_INVALID
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _read_fields() -> dict[str, str]:
    data: Any = json.loads(sys.stdin.read())
    if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
        raise ValueError("stdin must hold one JSON object whose values are all strings")
    return data


def _keygen(folder: Path, *, force: bool) -> int:
    private_path, public_path = folder / "merchant_private.pem", folder / "merchant_public.pem"
    existing = [path for path in (private_path, public_path) if path.exists()]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists; pass --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    key = protocol.generate_private_key()
    private_path.write_bytes(protocol.private_pem(key))
    private_path.chmod(0o600)
    public_path.write_bytes(protocol.public_pem(key))
    print(f"wrote {private_path} and {public_path} (fingerprint {protocol.fingerprint(key)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
