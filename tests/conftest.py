"""Fixtures every level shares: the shared protocol vectors and test keys (paths and helpers: helpers.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import PROTOCOL_DIR, TEST_KEYS
from subjects import subject_of

from htouhui import protocol


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return json.loads((PROTOCOL_DIR / "vectors.json").read_text(encoding="utf-8"))


def _test_key(name: str, load: Callable[[str], Any]) -> Any:
    """A session fixture `name`: the shared test key `<name without _key>.pem`, loaded by `load`."""

    def key() -> Any:
        return load((TEST_KEYS / f"{name.removesuffix('_key')}.pem").read_text())

    return pytest.fixture(scope="session", name=name)(key)


merchant_private_key = _test_key("merchant_private_key", protocol.load_private_key)
merchant_public_key = _test_key("merchant_public_key", protocol.load_public_key)
htouhui_private_key = _test_key("htouhui_private_key", protocol.load_private_key)
htouhui_public_key = _test_key("htouhui_public_key", protocol.load_public_key)


@pytest.fixture
def log_sink() -> Iterator[io.StringIO]:
    """What the layer's logger writes (JSON lines, already masked), instead of the terminal."""
    from onboarding import observability

    sink = io.StringIO()
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(sink)
    try:
        yield sink
    finally:
        if previous is not None:
            handler.setStream(previous)


@pytest.fixture
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process mock with fake credentials, and no endpoint override pointing at a moto server."""
    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its module's subject (tests/subjects.py): `pytest -m sdk` and the like."""
    for item in items:
        subject = subject_of(item.path.stem)
        if subject is not None:
            item.add_marker(getattr(pytest.mark, subject))
