"""The sandbox's keys on disk: its own pair, and the merchant's public key (never the merchant's private key
in memory: when the merchant pair is missing it is made here, written to disk for the bundle, and forgotten)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from htouhui import protocol

HTOUHUI_PRIVATE = "htouhui_private.pem"
HTOUHUI_PUBLIC = "htouhui_public.pem"
MERCHANT_PRIVATE = "merchant_private.pem"
MERCHANT_PUBLIC = "merchant_public.pem"


@dataclass
class SandboxKeys:
    htouhui_private: protocol.PrivateKey
    merchant_public: protocol.PublicKey
    notes: list[str] = field(default_factory=list)


def _write_pair(folder: Path, private_name: str, public_name: str) -> protocol.PrivateKey:
    key = protocol.generate_private_key()
    private_path = folder / private_name
    private_path.write_bytes(protocol.private_pem(key))
    private_path.chmod(0o600)
    (folder / public_name).write_bytes(protocol.public_pem(key))
    return key


def load_or_make_keys(folder: Path) -> SandboxKeys:
    """Load the sandbox pair and the merchant's public key from `folder`, making what is absent."""
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    htouhui_private_path = folder / HTOUHUI_PRIVATE
    if htouhui_private_path.exists():
        htouhui_private = protocol.load_private_key(htouhui_private_path.read_text())
        if not (folder / HTOUHUI_PUBLIC).exists():
            (folder / HTOUHUI_PUBLIC).write_bytes(protocol.public_pem(htouhui_private))
    else:
        htouhui_private = _write_pair(folder, HTOUHUI_PRIVATE, HTOUHUI_PUBLIC)
        notes.append(f"made the sandbox key pair {folder / HTOUHUI_PRIVATE} and {folder / HTOUHUI_PUBLIC}")

    merchant_public_path = folder / MERCHANT_PUBLIC
    merchant_private_path = folder / MERCHANT_PRIVATE
    if not merchant_public_path.exists():
        if merchant_private_path.exists():
            # Derive the public half once, write it, and drop the private key straight away.
            merchant_public_path.write_bytes(
                protocol.public_pem(protocol.load_private_key(merchant_private_path.read_text()))
            )
            notes.append(f"wrote {merchant_public_path} from {merchant_private_path}")
        else:
            _write_pair(folder, MERCHANT_PRIVATE, MERCHANT_PUBLIC)
            notes.append(
                f"made a merchant key pair {merchant_private_path} and {merchant_public_path} (as `python -m htouhui"
                " keygen` would)"
            )
    merchant_public = protocol.load_public_key(merchant_public_path.read_text())
    return SandboxKeys(htouhui_private=htouhui_private, merchant_public=merchant_public, notes=notes)
