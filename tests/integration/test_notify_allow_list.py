"""NOTIFY_ALLOWED_CIDRS through the notify handler: a notification from outside Htouhui's addresses is refused with
403 before anything is read or stored; from inside it is verified and recorded as usual; the browser return (users'
browsers, anywhere) is never restricted."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from helpers import Stack, http_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

HTOUHUI_NETWORK = "198.51.100.0/28"


def _notify_from(stack: Stack, source_ip: str, fields: dict[str, str]) -> dict[str, Any]:
    event = http_event(
        "POST",
        "/htouhui/notify",
        body=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded", "x-forwarded-for": "198.51.100.2"},
        iam=False,
        domain=stack.bridge.authority,
    )
    event["requestContext"]["http"]["sourceIp"] = source_ip
    return stack.invoke("notify", event)


def test_only_htouhuis_addresses_may_notify(
    stack: Stack, htouhui_private_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_ALLOWED_CIDRS", f"{HTOUHUI_NETWORK}, 2001:db8::/32")
    assert stack.register("u-cidr", "13812340077")["statusCode"] == 201
    notification = stack.signed_notification(htouhui_private_key, "u-cidr", 1)

    refused = _notify_from(stack, "203.0.113.10", notification)  # a valid signature, from elsewhere
    assert (refused["statusCode"], refused["body"]) == (403, "FAIL")
    assert stack.history() == []
    assert "status" not in stack.user_item("u-cidr")

    accepted = _notify_from(stack, "198.51.100.9", notification)
    assert (accepted["statusCode"], accepted["body"]) == (200, "SUCCESS")
    assert [item["notify_no"]["S"] for item in stack.history()] == [notification["notify_no"]]

    # the browser return is not restricted (HTTP 400 here only because these fields are no signed return)
    answer = stack.invoke(
        "notify",
        http_event("GET", "/htouhui/return", query={"status": "1"}, iam=False, domain=stack.bridge.authority),
    )
    assert answer["statusCode"] != 403


def test_a_broken_list_refuses_every_notification(
    stack: Stack, htouhui_private_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_ALLOWED_CIDRS", "198.51.100.0/28,not-a-network")
    assert stack.register("u-cidr-2", "13812340078")["statusCode"] == 201
    notification = stack.signed_notification(htouhui_private_key, "u-cidr-2", 1)
    assert _notify_from(stack, "198.51.100.9", notification)["statusCode"] == 403
    assert stack.history() == []
