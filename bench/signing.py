"""Signing: `protocol.sign` / `protocol.verify` per operation against cryptography's raw calls.

The raw calls get the same message (the canonical string's bytes, computed once) and the same key:
`private_key.sign(message, PKCS1v15(), SHA256())` and `public_key.verify(signature, message, ...)`.
Ours start from the fields: canonical string, UTF-8, RSA, base64 (and for verify: the checks of
sign_type/sign, base64 decoding, any of the keys). The two alternate in blocks.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stats import Figure, interleave_blocks, median

TARGET = 1.1

# A register request's fields (PROTOCOL.md §4), the size of a real message.
FIELDS = {
    "partner_id": "P2026000001",
    "request_no": "20261128120000a1b2c3d4e5",
    "timestamp": "20261128120000",
    "version": "1.0",
    "sign_type": "RSA2",
    "mobile": "13800138000",
    "password": "",
    "third_party_user_id": "user-000123",
}


def _timed(samples: list[float], operation: Callable[[], Any], repeat: int) -> Callable[[int], None]:
    def run(index: int) -> None:
        started = time.perf_counter()
        for _ in range(repeat):
            operation()
        samples.append((time.perf_counter() - started) / repeat * 1e6)

    return run


def measure(
    keys_dir: Path,
    *,
    sign_rounds: int = 60,
    verify_rounds: int = 60,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from htouhui import protocol

    private = protocol.load_private_key((keys_dir / "merchant_private.pem").read_text())
    public = private.public_key()
    message = protocol.canonical(FIELDS).encode("utf-8")
    signature_b64 = protocol.sign(FIELDS, private)
    signature = base64.b64decode(signature_b64)
    signed_fields = {**FIELDS, "sign": signature_b64}
    keys = (public,)  # what the handlers pass: the current key, and the next one during a rotation
    assert protocol.verify(signed_fields, keys)
    public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())

    samples: dict[str, list[float]] = {"sign": [], "raw_sign": [], "verify": [], "raw_verify": []}
    # Each sample is the mean of `repeat` operations (a verify takes tens of µs: the clock needs a batch).
    interleave_blocks(
        sign_rounds,
        5,
        [
            _timed(samples["sign"], lambda: protocol.sign(FIELDS, private), 10),
            _timed(samples["raw_sign"], lambda: private.sign(message, padding.PKCS1v15(), hashes.SHA256()), 10),
        ],
    )
    progress("signing: sign done")
    interleave_blocks(
        verify_rounds,
        5,
        [
            _timed(samples["verify"], lambda: protocol.verify(signed_fields, keys), 200),
            _timed(
                samples["raw_verify"],
                lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()),
                200,
            ),
        ],
    )

    # The unavoidable part of verify that the raw call is spared: the canonical string and the base64.
    def reference(fields: dict[str, str]) -> None:
        text = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k != "sign")
        public.verify(base64.b64decode(fields["sign"]), text.encode(), padding.PKCS1v15(), hashes.SHA256())

    samples["verify_again"] = []
    samples["raw_verify_with_message_work"] = []
    interleave_blocks(
        verify_rounds,
        5,
        [
            _timed(samples["verify_again"], lambda: protocol.verify(signed_fields, keys), 200),
            _timed(samples["raw_verify_with_message_work"], lambda: reference(signed_fields), 200),
        ],
    )

    def figure(name: str, ours: str, floor: str, note: str = "") -> Figure:
        return Figure("signing", name, median(samples[ours]), median(samples[floor]), "us", target=TARGET, note=note)

    figures = [
        figure("sign (RSA2, 2048-bit)", "sign", "raw_sign"),
        figure("verify", "verify", "raw_verify"),
        figure(
            "verify (floor: raw + canonical string + base64)",
            "verify_again",
            "raw_verify_with_message_work",
            note="the raw call given the same fields, doing the least any verifier must",
        ),
    ]
    raw = {name: {"median_us": round(median(values), 2), "samples": len(values)} for name, values in samples.items()}
    return figures, raw
