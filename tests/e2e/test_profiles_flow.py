"""PROTOCOL.md §8 end to end: with HTOUHUI_PROFILE set, the local stack's functions and its sandbox both speak that
profile, and the whole flow (register, the open-account pages, the notification, the browser return, the query)
still takes a fresh user to status 3. What crosses the wire is checked against the profile too."""

from __future__ import annotations

import httpx
import pytest
from stack_process import person, run_demo, running_stack

from htouhui import protocol

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(protocol.BUILT_IN))
def test_the_full_flow_passes_under_each_built_in_profile(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    profile = protocol.BUILT_IN[name]
    user = f"profile-{name}"
    with running_stack(tmp_path_factory.mktemp(f"stack-{name}"), SANDBOX_TIME_SCALE="1", HTOUHUI_PROFILE=name) as stack:
        assert httpx.get(f"{stack.sandbox_url}/_sandbox/health", timeout=10).json()["profile"] == name
        result = run_demo({"API_PORT": str(stack.api_port)}, *person(user, "13712340001"))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        view = httpx.get(f"{stack.url}/users/{user}", timeout=10).json()
        assert (view["status"], view["stage"], view["ready_for_debt_matching"]) == (3, "COMPLETED", True)
        refreshed = httpx.get(f"{stack.url}/users/{user}?refresh=true", timeout=30).json()  # the query interface
        assert refreshed["status"] == 3
        page = httpx.post(
            f"{stack.url}/users/{user}/open-account",
            json={"id_card": "110105199003071239", "real_name": "测试用户", "type": "2"},
            timeout=10,
        ).json()["fields"]
        assert page[profile.partner_field] and page[profile.request_field] and page["sign_type"] == profile.sign_type
        profile.parse_timestamp(page["timestamp"])
        deliveries = httpx.get(f"{stack.sandbox_url}/_sandbox/deliveries?third_party_user_id={user}", timeout=10)
        delivered = [d for d in deliveries.json()["deliveries"] if d["state"] == "delivered"]
        assert delivered and all(profile.partner_field in d["fields"] for d in delivered)  # acknowledged with `ack`
