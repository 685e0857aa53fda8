"""The bench's own key pairs (merchant and Htouhui), written as the sandbox and `file:` key sources expect."""

from __future__ import annotations

from pathlib import Path


def make_keys(folder: Path) -> Path:
    from htouhui import protocol

    folder.mkdir(parents=True, exist_ok=True)
    for owner in ("merchant", "htouhui"):
        key = protocol.generate_private_key()
        private = folder / f"{owner}_private.pem"
        private.write_bytes(protocol.private_pem(key))
        private.chmod(0o600)
        (folder / f"{owner}_public.pem").write_bytes(protocol.public_pem(key))
    return folder
