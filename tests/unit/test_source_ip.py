"""onboarding.source_ip: the optional allow-list of Htouhui's callback addresses (pure functions, no AWS)."""

from __future__ import annotations

import re

import pytest

from onboarding.source_ip import AllowListError, is_allowed, notify_source_allowed, parse_networks


def _event(source_ip: object) -> dict[str, object]:
    return {"requestContext": {"http": {"method": "POST", "sourceIp": source_ip}}, "headers": {}}


def test_empty_list_allows_every_source() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()
    assert is_allowed("198.51.100.1", ())
    assert notify_source_allowed(_event("198.51.100.1"), {})
    assert notify_source_allowed(_event("198.51.100.1"), {"NOTIFY_ALLOWED_CIDRS": ""})


def test_networks_and_bare_addresses() -> None:
    networks = parse_networks("203.0.113.0/24, 198.51.100.7,2001:db8::/32")
    assert [str(n) for n in networks] == ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32"]
    assert is_allowed("203.0.113.200", networks)
    assert is_allowed("198.51.100.7", networks)
    assert not is_allowed("198.51.100.8", networks)
    assert not is_allowed("203.0.114.1", networks)
    assert is_allowed("2001:db8:1::5", networks)
    assert not is_allowed("2001:db9::1", networks)
    assert is_allowed("::ffff:203.0.113.9", networks)  # an IPv4 peer seen through IPv6


@pytest.mark.parametrize("source", [None, "", "not-an-ip", "203.0.113.1, 10.0.0.1", 12345])
def test_a_missing_or_malformed_source_is_refused_when_a_list_is_set(source: object) -> None:
    assert not notify_source_allowed(_event(source), {"NOTIFY_ALLOWED_CIDRS": "203.0.113.0/24"})


def test_only_the_reported_peer_counts_never_a_header() -> None:
    event = _event("198.51.100.9")
    event["headers"] = {"x-forwarded-for": "203.0.113.5"}
    assert not notify_source_allowed(event, {"NOTIFY_ALLOWED_CIDRS": "203.0.113.0/24"})
    assert not notify_source_allowed({}, {"NOTIFY_ALLOWED_CIDRS": "203.0.113.0/24"})


def test_a_list_that_does_not_parse_allows_nobody() -> None:
    with pytest.raises(AllowListError, match=re.escape("999.0.0.0/8")):
        parse_networks("203.0.113.0/24,999.0.0.0/8")
    assert not notify_source_allowed(_event("203.0.113.1"), {"NOTIFY_ALLOWED_CIDRS": "203.0.113.0/24,999.0.0.0/8"})
