"""Fixtures every level shares: the shared protocol vectors and test keys (paths and helpers: helpers.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import PROTOCOL_DIR, TEST_KEYS

from htouhui import protocol


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
