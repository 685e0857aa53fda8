"""`make reset` (`python -m stack reset`): the running stack forgets every user in its tables and in its
sandbox, so that README's flow for the same user works again from the start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import ROOT
from stack_process import StackProcess, free_port, running_stack

pytestmark = pytest.mark.slow

USER = "u-1001"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("reset")) as process:
        yield process


def stack_reset(api_port: int) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "local"), str(ROOT / "layers" / "common")]))
    environment["API_PORT"] = str(api_port)
    return subprocess.run(
        [sys.executable, "-m", "stack", "reset"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def readme_flow(stack: StackProcess) -> dict[str, object]:
    """README's curl tour: register, open the account, the sandbox notifies status 3; the stored view."""
    with httpx.Client(timeout=30) as client:
        registered = client.post(f"{stack.url}/users", json={"third_party_user_id": USER, "mobile": "13800138000"})
        assert registered.status_code == 201, registered.text
        opened = client.post(
            f"{stack.url}/users/{USER}/open-account", json={"id_card": "11010519491231002X", "real_name": "张三"}
        )
        assert opened.status_code == 200, opened.text
        triggered = client.post(
            f"{stack.sandbox_url}/_sandbox/trigger",
            json={"third_party_user_id": USER, "status": 3, "notify_url": f"{stack.url}/htouhui/notify"},
        )
        assert triggered.is_success, triggered.text
        deadline = time.monotonic() + 20
        while True:
            view = dict(client.get(f"{stack.url}/users/{USER}").json())
            if view.get("status") == 3 or time.monotonic() > deadline:
                return view
            time.sleep(0.1)


def test_after_make_reset_the_readme_flow_works_again(stack: StackProcess) -> None:
    assert readme_flow(stack)["status"] == 3

    result = stack_reset(stack.api_port)

    assert result.returncode == 0, result.stderr
    assert "reset: the sandbox reset" in result.stdout, result.stdout
    assert httpx.get(f"{stack.url}/users/{USER}").status_code == 404
    assert httpx.get(f"{stack.sandbox_url}/_sandbox/users").json()["users"] == []
    assert readme_flow(stack)["status"] == 3


def test_reset_without_a_running_stack_says_so(tmp_path: Path) -> None:
    result = stack_reset(free_port())
    assert result.returncode == 1
    assert "is `make run` running" in result.stderr, result.stderr
