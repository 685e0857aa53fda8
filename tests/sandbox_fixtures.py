"""Pytest fixtures for the sandbox tests: load with `pytest_plugins = ["sandbox_fixtures"]`.

`start_sandbox(**SandboxConfig options)` starts one on an ephemeral port (stopped after the test),
`sandbox` is one at time scale 0.001, `client` the project's HtouhuiClient pointed at it, and
`receiver` a notify_url that records posts (see sandbox_helpers.Receiver).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sandbox_helpers import PARTNER_ID, Receiver, RunningSandbox, Sandbox, SandboxConfig, make_client

from htouhui import protocol
from htouhui.client import HtouhuiClient


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()
    yield box
    box.stop()


@pytest.fixture
def start_sandbox(
    merchant_public_key: protocol.PublicKey, htouhui_private_key: protocol.PrivateKey
) -> Iterator[Callable[..., RunningSandbox]]:
    running: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        config = SandboxConfig(
            partner_id=PARTNER_ID,
            merchant_public_key=merchant_public_key,
            htouhui_private_key=htouhui_private_key,
            **options,
        )
        server = Sandbox(config).serve(host="127.0.0.1", port=0)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return start_sandbox(time_scale=0.001)


@pytest.fixture
def client(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> Iterator[HtouhuiClient]:
    made = make_client(sandbox.url, merchant_private_key, htouhui_public_key)
    yield made
    made.close()
