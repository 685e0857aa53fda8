"""Fixtures every level shares: the repository's paths, the shared protocol vectors and test keys."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
if str(LAYER) not in sys.path:
    sys.path.insert(0, str(LAYER))

from htouhui import protocol  # noqa: E402 - needs the layer on the path first

SHARED = Path(os.environ.get("HTOUHUI_SHARED_DIR", ROOT.parent / "shared")).resolve()
PROTOCOL_DIR = SHARED / "protocol"
TEST_KEYS = PROTOCOL_DIR / "test-keys"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return json.loads((PROTOCOL_DIR / "vectors.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def merchant_private_key() -> protocol.PrivateKey:
    return protocol.load_private_key((TEST_KEYS / "merchant_private.pem").read_text())


@pytest.fixture(scope="session")
def merchant_public_key() -> protocol.PublicKey:
    return protocol.load_public_key((TEST_KEYS / "merchant_public.pem").read_text())


@pytest.fixture(scope="session")
def htouhui_private_key() -> protocol.PrivateKey:
    return protocol.load_private_key((TEST_KEYS / "htouhui_private.pem").read_text())


@pytest.fixture(scope="session")
def htouhui_public_key() -> protocol.PublicKey:
    return protocol.load_public_key((TEST_KEYS / "htouhui_public.pem").read_text())


@pytest.fixture
def log_sink() -> Iterator[io.StringIO]:
    """What the layer's logger writes (JSON lines, already masked), instead of the terminal."""
    from htouhui import observability

    sink = io.StringIO()
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(sink)
    try:
        yield sink
    finally:
        if previous is not None:
            handler.setStream(previous)


def log_entries(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines() if line.strip()]
