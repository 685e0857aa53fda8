"""Forged, tampered and replayed notifications and browser returns, through the notify handler.

Every forgery must be answered `400 FAIL` (the return: a 400 error page) with both tables unchanged
(a full dump compared); a valid old notification replayed after a higher status is accepted (200
SUCCESS) and harmless. hypothesis fuzzes the form parser and the whole notify handler; the number of
cases tried is printed (`-s`) and reported in docs/hostile.md.
"""

from __future__ import annotations

import base64
import sys
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from helpers import PARTNER_ID, Stack, dump, http_event, json_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from htouhui import protocol

USER = "u-forge-1"
NOTIFY_FIELDS = (
    "partner_id",
    "notify_no",
    "notify_type",
    "timestamp",
    "htouhui_user_id",
    "third_party_user_id",
    "status",
    "bank_card_number",
    "sign_type",
    "sign",
)
RETURN_FIELDS = (
    "code",
    "message",
    "partner_id",
    "request_no",
    "timestamp",
    "htouhui_user_id",
    "third_party_user_id",
    "status",
    "sign_type",
    "sign",
)
FORGERIES_TRIED: dict[str, int] = {"notify": 0, "return": 0}


@pytest.fixture
def registered(stack: Stack) -> Stack:
    assert stack.register(USER, "13812340077")["statusCode"] == 201
    return stack


@pytest.fixture(scope="module")
def stranger_key() -> protocol.PrivateKey:
    return protocol.generate_private_key()


def _tamper(fields: dict[str, str], name: str) -> dict[str, str]:
    """One field changed after signing, to a value that is still well-formed where possible."""
    value = fields[name]
    replacements = {
        "status": lambda: "3" if value != "3" else "2",
        "partner_id": lambda: PARTNER_ID + "X",
        "notify_no": lambda: value[:-1] + ("A" if value[-1] != "A" else "B"),
        "notify_type": lambda: "OPEN_ACCOUNT_",
        "timestamp": lambda: str(int(value) + 1),
        "htouhui_user_id": lambda: str((int(value) + 1) % 10**11),
        "third_party_user_id": lambda: value + "x",
        "bank_card_number": lambda: value[:-1] + ("9" if value[-1] != "9" else "8"),
        "sign_type": lambda: "RSA",
        "sign": lambda: base64.b64encode(bytes(256)).decode(),
        "code": lambda: "0001",
        "message": lambda: value + ".",
        "request_no": lambda: value + "0",
    }
    return {**fields, name: replacements[name]()}


def _resigned_with_sign_type(fields: dict[str, str], sign_type: str, key: Any) -> dict[str, str]:
    """A genuine signature by `key` over the message carrying another sign_type (protocol.signed forces RSA2)."""
    message = {name: value for name, value in fields.items() if name != "sign"}
    message["sign_type"] = sign_type
    return {**message, "sign": protocol.sign(message, key)}


def _notify(stack: Stack, body: str | bytes, content_type: str | None = "application/x-www-form-urlencoded") -> Any:
    headers = {"content-type": content_type} if content_type else {}
    event = http_event("POST", "/htouhui/notify", body=body, headers=headers, iam=False)
    return stack.invoke("notify", event)


def _fail(answer: dict[str, Any]) -> None:
    assert (answer["statusCode"], answer["body"]) == (400, "FAIL"), answer


def _return_fields(stack: Stack, key: protocol.PrivateKey, status: int, **extra: str) -> dict[str, str]:
    fields = {
        "code": "0000",
        "message": "success",
        "partner_id": PARTNER_ID,
        "request_no": "OA" + uuid.uuid4().hex[:20],
        "timestamp": protocol.china_timestamp(),
        "htouhui_user_id": stack.user_item(USER)["htouhui_user_id"]["S"],
        "third_party_user_id": USER,
        "status": str(status),
        **extra,
    }
    return protocol.signed(fields, key)


def _browser(stack: Stack, query: str) -> dict[str, Any]:
    event = http_event("GET", "/htouhui/return", query=query, headers={"accept": "text/html"}, iam=False)
    result: dict[str, Any] = stack.invoke("notify", event)
    return result


def _forged_notifications(stack: Stack, key: Any, stranger: Any, merchant: Any) -> list[tuple[str, str]]:
    good = stack.signed_notification(key, USER, 2)
    cases: list[tuple[str, str]] = []
    for name in NOTIFY_FIELDS:
        cases.append((f"tampered-{name}", urlencode(_tamper(good, name))))
    unsigned = {k: v for k, v in good.items() if k != "sign"}
    cases += [
        ("other-key", urlencode(stack.signed_notification(stranger, USER, 2))),
        ("merchant-key", urlencode(stack.signed_notification(merchant, USER, 2))),
        ("sign-missing", urlencode(unsigned)),
        ("sign-empty", urlencode({**good, "sign": ""})),
        ("sign-not-base64", urlencode({**good, "sign": "!!not-base64!!"})),
        ("sign-unpadded", urlencode({**good, "sign": good["sign"].rstrip("=")})),
        ("sign-truncated", urlencode({**good, "sign": good["sign"][:-8]})),
        ("sign-urlsafe-alphabet", urlencode({**good, "sign": good["sign"].replace("+", "-").replace("/", "_")}))
        if ("+" in good["sign"] or "/" in good["sign"])
        else ("sign-doubled", urlencode({**good, "sign": good["sign"] * 2})),
        ("sign_type-RSA-resigned", urlencode(_resigned_with_sign_type(good, "RSA", key))),
        ("sign_type-lower-resigned", urlencode(_resigned_with_sign_type(good, "rsa2", key))),
        ("sign_type-MD5-resigned", urlencode(_resigned_with_sign_type(good, "MD5", key))),
        ("sign_type-empty-resigned", urlencode(_resigned_with_sign_type(good, "", key))),
        (
            "sign_type-missing-resigned",
            urlencode({k: v for k, v in _resigned_with_sign_type(good, "", key).items() if k != "sign_type"}),
        ),
        ("sign_type-MD5", urlencode({**good, "sign_type": "MD5"})),
        ("status-twice-1-3", urlencode(good) + "&status=3"),
        ("status-twice-same", urlencode(good) + f"&status={good['status']}"),
        ("sign-twice", urlencode(good) + "&sign=" + quote(good["sign"], safe="")),
        ("partner-twice", urlencode(good) + "&partner_id=" + PARTNER_ID),
        ("status-array-style", urlencode(good) + "&status[]=3"),
        ("other-partner-resigned", urlencode(protocol.signed({**unsigned, "partner_id": "P2026000002"}, key))),
        ("field-added", urlencode({**good, "extra": "1"})),
        ("field-dropped", urlencode({k: v for k, v in good.items() if k != "bank_card_number"})),
        ("name-case", urlencode({("Status" if k == "status" else k): v for k, v in good.items()})),
        ("value-padded", urlencode({**good, "status": " " + good["status"]})),
        ("json-body", __import__("json").dumps(good)),
    ]
    return cases


def test_forged_notifications_fail_and_change_nothing(
    registered: Stack,
    htouhui_private_key: Any,
    merchant_private_key: Any,
    stranger_key: Any,
) -> None:
    assert registered.notify(registered.signed_notification(htouhui_private_key, USER, 1))["statusCode"] == 200
    before = dump(registered)
    cases = _forged_notifications(registered, htouhui_private_key, stranger_key, merchant_private_key)
    accepted = []
    for name, body in cases:
        answer = _notify(registered, body)
        FORGERIES_TRIED["notify"] += 1
        if (answer["statusCode"], answer["body"]) != (400, "FAIL"):
            accepted.append((name, answer["statusCode"]))
    assert accepted == []
    assert dump(registered) == before
    assert len(cases) >= 30


def test_a_signed_return_that_did_not_succeed_shows_its_code_and_changes_nothing(
    registered: Stack, htouhui_private_key: Any
) -> None:
    before = dump(registered)
    unsigned = {k: v for k, v in _return_fields(registered, htouhui_private_key, 3).items() if k != "sign"}
    answer = _browser(registered, urlencode(protocol.signed({**unsigned, "code": "3001"}, htouhui_private_key)))
    assert answer["statusCode"] == 200 and "Location" not in (answer.get("headers") or {})
    assert "3001" in answer["body"] and "step out of order" in answer["body"]
    assert dump(registered) == before


def test_forged_returns_fail_and_change_nothing(
    registered: Stack, htouhui_private_key: Any, merchant_private_key: Any, stranger_key: Any
) -> None:
    before = dump(registered)
    good = _return_fields(registered, htouhui_private_key, 3)
    unsigned = {k: v for k, v in good.items() if k != "sign"}
    cases = [(f"tampered-{name}", urlencode(_tamper(good, name))) for name in RETURN_FIELDS]
    cases += [
        ("other-key", urlencode(_return_fields(registered, stranger_key, 3))),
        ("merchant-key", urlencode(_return_fields(registered, merchant_private_key, 3))),
        ("sign-missing", urlencode(unsigned)),
        ("sign-not-base64", urlencode({**good, "sign": "%%%"})),
        ("sign_type-resigned", urlencode(_resigned_with_sign_type(good, "RSA", htouhui_private_key))),
        ("status-twice", urlencode(good) + "&status=3"),
        ("other-partner", urlencode(protocol.signed({**unsigned, "partner_id": "P2026000002"}, htouhui_private_key))),
        ("field-added", urlencode({**good, "return_to": "https://evil.example.net/"})),
    ]
    accepted = []
    for name, query in cases:
        answer = _browser(registered, query)
        FORGERIES_TRIED["return"] += 1
        if answer["statusCode"] != 400 or "<html" not in answer["body"]:
            accepted.append((name, answer["statusCode"]))
        assert "Location" not in (answer.get("headers") or {}), name  # never a redirect on a forgery
    assert accepted == []
    assert dump(registered) == before


def test_old_notification_replayed_after_a_higher_status_is_accepted_and_harmless(
    registered: Stack, htouhui_private_key: Any
) -> None:
    one = registered.signed_notification(htouhui_private_key, USER, 1, timestamp="20261128090000")
    three = registered.signed_notification(htouhui_private_key, USER, 3, timestamp="20261128091000")
    assert (registered.notify(one)["statusCode"], registered.notify(three)["statusCode"]) == (200, 200)
    user_before = registered.user_item(USER)
    history_before = dump(registered)[registered.notifications_table]
    for _ in range(3):  # Htouhui's retries, or an attacker replaying a captured delivery
        answer = registered.notify(one)
        assert (answer["statusCode"], answer["body"]) == (200, "SUCCESS")
    assert registered.user_item(USER) == user_before
    assert dump(registered)[registered.notifications_table] == history_before
    assert json_body(registered.query(USER))["status"] == 3


def test_a_captured_notification_cannot_be_moved_to_another_user(registered: Stack, htouhui_private_key: Any) -> None:
    assert registered.register("u-forge-2", "13812340078")["statusCode"] == 201
    before = dump(registered)
    captured = registered.signed_notification(htouhui_private_key, USER, 3)
    other_id = registered.user_item("u-forge-2")["htouhui_user_id"]["S"]
    for moved in (
        {**captured, "third_party_user_id": "u-forge-2"},
        {**captured, "third_party_user_id": "u-forge-2", "htouhui_user_id": other_id},
    ):
        _fail(registered.notify(moved))
    assert dump(registered) == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"status=\xff\xfe", "application/x-www-form-urlencoded", id="non-utf8"),
        pytest.param("a=" + "x" * (1024 * 1024), "application/x-www-form-urlencoded", id="one-mb"),
        pytest.param('{"status": "3"}', "application/json", id="json-lies-as-json"),
        pytest.param("status=3&notify_no=N1", "application/json", id="form-labelled-json"),
        pytest.param("status=3", "text/plain", id="text-plain"),
        pytest.param("%", "application/x-www-form-urlencoded", id="bad-escape"),
        pytest.param("=" * 1000, "application/x-www-form-urlencoded", id="equals-only"),
        pytest.param("&" * 1000, "application/x-www-form-urlencoded", id="ampersands"),
        pytest.param("a=1;b=2", "application/x-www-form-urlencoded", id="semicolons"),
        pytest.param("status=3\x00", "application/x-www-form-urlencoded", id="nul"),
    ],
)
def test_notify_bad_bodies_fail(registered: Stack, body: str | bytes, content_type: str) -> None:
    before = dump(registered)
    _fail(_notify(registered, body, content_type))
    assert dump(registered) == before


# --- hypothesis -----------------------------------------------------------------------------------------

FUZZ_COUNTS: dict[str, int] = {"parse_form": 0, "roundtrip": 0, "handler": 0, "tamper": 0}


@settings(max_examples=400, deadline=None, database=None)
@given(st.text(max_size=300))
def test_parse_form_never_raises_anything_but_malformed(text: str) -> None:
    FUZZ_COUNTS["parse_form"] += 1
    try:
        fields = protocol.parse_form(text)
    except protocol.MalformedMessage:
        return
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in fields.items())


_field_name = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=("Cs",)), min_size=1)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(_field_name, st.text(st.characters(exclude_categories=("Cs",))), max_size=12))
def test_parse_form_reads_back_what_urlencode_wrote(fields: dict[str, str]) -> None:
    FUZZ_COUNTS["roundtrip"] += 1
    assert protocol.parse_form(urlencode(fields)) == fields


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_notify_handler_never_accepts_or_crashes_on_noise(registered: Stack, body: bytes) -> None:
    FUZZ_COUNTS["handler"] += 1
    answer = _notify(registered, body)
    assert answer["statusCode"] == 400 and answer["body"] == "FAIL", answer


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_a_signed_notification_fails(registered: Stack, htouhui_private_key: Any, data: Any) -> None:
    good = registered.signed_notification(htouhui_private_key, USER, 1, notify_no="NFUZZ0001")
    name = data.draw(st.sampled_from(sorted(good)), label="field")
    value = data.draw(
        st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40).filter(lambda v: v != good[name]),
        label="value",
    )
    FUZZ_COUNTS["tamper"] += 1
    _fail(registered.notify({**good, name: value}))
    assert registered.user_item(USER).get("status") is None


def test_zz_report_cases_tried() -> None:
    """Printed with -s; docs/hostile.md quotes a run."""
    print(f"\nforgeries tried: {FORGERIES_TRIED}; hypothesis cases: {FUZZ_COUNTS}", file=sys.stderr)
    if not any(FORGERIES_TRIED.values()):
        pytest.skip("a report of the module's other tests: run the module")
    assert all(FORGERIES_TRIED.values()), FORGERIES_TRIED  # both callbacks were attacked
    assert all(FUZZ_COUNTS.values()), FUZZ_COUNTS  # every property ran cases
