"""POST /htouhui/notify and GET /htouhui/return through the notify handler, with real DynamoDB (moto).

Notifications come either from the sandbox over HTTP (its delivery schedule, its faults) or are
signed here with the test Htouhui key and handed to the handler as payload-2.0 events.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from helpers import PARTNER_ID, Stack, header, http_event, json_body, load_event

from htouhui import protocol
from onboarding import runtime

# Powertools warns when an invocation counted nothing: normal here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

USER = "u-notify-1"


@pytest.fixture
def registered(stack: Stack) -> Stack:
    assert stack.register(USER, "13812340001")["statusCode"] == 201
    return stack


def _status(stack: Stack, user: str = USER) -> int | None:
    return json_body(stack.query(user))["status"]


def _text(answer: dict[str, Any]) -> tuple[int, str]:
    return answer["statusCode"], answer["body"]


def test_notification_is_recorded_then_acknowledged(registered: Stack, htouhui_private_key: Any) -> None:
    fields = registered.signed_notification(htouhui_private_key, USER, 2)
    answer = registered.notify(fields)
    assert _text(answer) == (200, "SUCCESS")
    assert header(answer, "Content-Type") == "text/plain; charset=utf-8"
    assert _status(registered) == 2
    [record] = registered.history()
    assert record["notify_no"]["S"] == fields["notify_no"] and record["source"]["S"] == "notify"


def test_notify_needs_only_htouhuis_public_key(
    registered: Stack, htouhui_private_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The notify function's role may not read the merchant's private key: it must not need it.
    monkeypatch.setenv("MERCHANT_PRIVATE_KEY", "secretsmanager:not-readable-by-the-notify-role")
    runtime.reset()
    fields = registered.signed_notification(htouhui_private_key, USER, 3)
    assert _text(registered.notify(fields)) == (200, "SUCCESS")
    assert _status(registered) == 3


def test_base64_body_is_decoded(registered: Stack, htouhui_private_key: Any) -> None:
    fields = registered.signed_notification(htouhui_private_key, USER, 1)
    assert _text(registered.notify(fields, base64_body=True)) == (200, "SUCCESS")
    assert _status(registered) == 1


def test_duplicate_is_acknowledged_and_recorded_once(registered: Stack, htouhui_private_key: Any) -> None:
    fields = registered.signed_notification(htouhui_private_key, USER, 1)
    assert _text(registered.notify(fields)) == (200, "SUCCESS")
    assert _text(registered.notify(fields)) == (200, "SUCCESS")
    assert len(registered.history()) == 1 and _status(registered) == 1


def test_reordered_3_before_1_keeps_3(registered: Stack, htouhui_private_key: Any) -> None:
    three = registered.signed_notification(htouhui_private_key, USER, 3)
    one = registered.signed_notification(htouhui_private_key, USER, 1, timestamp="20261128080000")  # late, older
    assert _text(registered.notify(three)) == (200, "SUCCESS")
    assert _text(registered.notify(one)) == (200, "SUCCESS")  # accepted (harmless), never lowers the level
    view = json_body(registered.query(USER))
    assert view["status"] == 3 and view["stage"] == "COMPLETED"
    assert sorted(record["status"]["N"] for record in registered.history()) == ["1", "3"]


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda fields, key: {**fields, "status": "3"}, id="altered-after-signing"),
        pytest.param(lambda fields, key: {**fields, "sign": "AAAA"}, id="garbage-signature"),
        pytest.param(lambda fields, key: {k: v for k, v in fields.items() if k != "sign"}, id="unsigned"),
        pytest.param(
            lambda fields, key: protocol.signed({**fields, "partner_id": "P9999999999"}, key), id="other-partner"
        ),
        pytest.param(
            lambda fields, key: protocol.signed({**fields, "third_party_user_id": "u-nobody"}, key), id="unknown-user"
        ),
        pytest.param(
            lambda fields, key: protocol.signed({**fields, "htouhui_user_id": "99999999999"}, key), id="user-mismatch"
        ),
        pytest.param(lambda fields, key: protocol.signed({**fields, "status": "7"}, key), id="bad-status"),
    ],
)
def test_rejected_notifications_change_nothing(registered: Stack, htouhui_private_key: Any, spoil: Any) -> None:
    fields = registered.signed_notification(htouhui_private_key, USER, 1)
    before = registered.user_item(USER)
    assert _text(registered.notify(spoil(fields, htouhui_private_key))) == (400, "FAIL")
    assert registered.user_item(USER) == before
    assert registered.history() == []


def test_signed_by_the_merchant_key_is_rejected(registered: Stack, merchant_private_key: Any) -> None:
    fields = registered.signed_notification(merchant_private_key, USER, 3)
    assert _text(registered.notify(fields)) == (400, "FAIL")
    assert _status(registered) is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="empty"),
        pytest.param("not a form", id="not-a-form"),
        pytest.param("a=1&&b", id="broken-pair"),
        pytest.param("%FF%FE=1", id="not-utf8-escape"),
    ],
)
def test_malformed_bodies_fail(registered: Stack, body: str) -> None:
    assert _text(registered.notify(body)) == (400, "FAIL")


def test_a_field_given_twice_fails(registered: Stack, htouhui_private_key: Any) -> None:
    fields = registered.signed_notification(htouhui_private_key, USER, 1)
    body = urlencode(fields) + "&status=3"
    assert _text(registered.notify(body)) == (400, "FAIL")
    assert _status(registered) is None


def test_non_utf8_and_bad_base64_bodies_fail(registered: Stack) -> None:
    event = http_event("POST", "/htouhui/notify", body=b"status=\xff\xfe", iam=False)
    assert _text(registered.invoke("notify", event)) == (400, "FAIL")
    event = http_event("POST", "/htouhui/notify", body="!!!not base64", iam=False)
    event["isBase64Encoded"] = True
    assert _text(registered.invoke("notify", event)) == (400, "FAIL")


def test_sample_notify_events_are_valid_deliveries(stack: Stack) -> None:
    """events/notify.json is a correctly signed notification for u-1001 (test keys, sandbox partner)."""
    stack.invoke("register", load_event("register.json"))
    assert _text(stack.invoke("notify", load_event("notify.json"))) == (200, "SUCCESS")
    assert _text(stack.invoke("notify", load_event("notify_base64.json"))) == (200, "SUCCESS")  # same notify_no
    assert json_body(stack.query("u-1001"))["status"] == 3 and len(stack.history()) == 1


# --- through the sandbox's deliveries ----------------------------------------------------------------


def _trigger(stack: Stack, status: int) -> dict[str, Any]:
    return dict(
        stack.control(
            "POST",
            "trigger",
            {"third_party_user_id": USER, "status": status, "notify_url": f"{stack.bridge.url}/htouhui/notify"},
        )
    )


def _seed_opened(stack: Stack) -> None:
    from helpers import valid_id_card

    id_card = valid_id_card("11010519900307123")
    assert stack.open_account(USER, {"id_card": id_card, "real_name": "测试"})["statusCode"] == 200
    stack.control("POST", "users", {"third_party_user_id": USER, "status": 0, "id_card": id_card})


def test_sandbox_duplicates_and_corrupt_signature(registered: Stack) -> None:
    _seed_opened(registered)
    registered.control("POST", "faults", {"interface": "notify", "duplicate": 2})
    delivery = _trigger(registered, 1)
    attempts = registered.wait_deliveries(
        USER, lambda items: any(item["state"] == "delivered" and len(item["attempts"]) >= 3 for item in items)
    )
    assert all(attempt["body"] == "SUCCESS" for attempt in attempts[0]["attempts"])
    assert len(registered.history()) == 1 and _status(registered) == 1

    registered.control("POST", "faults", {"interface": "notify", "corrupt_signature": 1})
    bad = _trigger(registered, 3)
    assert bad["notify_no"] != delivery["notify_no"]
    registered.wait_deliveries(
        USER,
        lambda items: any(item["notify_no"] == bad["notify_no"] and item["attempts"] for item in items),
    )
    [answer] = [item for item in registered.deliveries(USER) if item["notify_no"] == bad["notify_no"]]
    assert answer["attempts"][0]["http_status"] == 400 and answer["attempts"][0]["body"] == "FAIL"
    assert _status(registered) == 1 and len(registered.history()) == 1


def test_sandbox_reordered_deliveries_end_at_the_highest(registered: Stack) -> None:
    _seed_opened(registered)
    registered.control("POST", "faults", {"interface": "notify", "reorder": 2})
    _trigger(registered, 1)
    _trigger(registered, 3)
    registered.control("POST", "deliveries/release")
    registered.wait_deliveries(USER, lambda items: len(items) == 2 and all(i["state"] == "delivered" for i in items))
    assert _status(registered) == 3


def test_storage_failure_answers_500_then_redelivery_succeeds(registered: Stack) -> None:
    _seed_opened(registered)
    store = runtime.onboarding().store
    working = store.client()
    broken = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",  # nothing listens: every call fails to connect
        region_name="us-east-1",
        config=__import__("botocore.config", fromlist=["Config"]).Config(
            retries={"max_attempts": 1}, connect_timeout=0.2, read_timeout=0.2
        ),
    )
    calls: list[str] = []

    def before(function: str, event: dict[str, Any]) -> None:
        calls.append(function)
        store.use_client(broken if len(calls) == 1 else working)

    registered.bridge.before = before
    _trigger(registered, 2)
    [delivery] = registered.wait_deliveries(USER, lambda items: bool(items) and items[0]["state"] == "delivered")
    statuses = [attempt["http_status"] for attempt in delivery["attempts"]]
    assert statuses == [500, 200], delivery
    assert _status(registered) == 2 and len(registered.history()) == 1


# --- the browser return ------------------------------------------------------------------------------


def _return_fields(stack: Stack, key: Any, status: int, **extra: str) -> dict[str, str]:
    fields = {
        "code": "0000",
        "message": "success",
        "partner_id": PARTNER_ID,
        "request_no": "OA2026112800000001",
        "timestamp": protocol.china_timestamp(),
        "htouhui_user_id": stack.user_item(USER)["htouhui_user_id"]["S"],
        "third_party_user_id": USER,
        "status": str(status),
    }
    fields.update(extra)
    return protocol.signed(fields, key)


def _browser(stack: Stack, query: str) -> dict[str, Any]:
    event = http_event("GET", "/htouhui/return", query=query, headers={"accept": "text/html"}, iam=False)
    return stack.invoke("notify", event)


def test_return_applies_and_shows_the_status(registered: Stack, htouhui_private_key: Any) -> None:
    answer = _browser(registered, urlencode(_return_fields(registered, htouhui_private_key, 2)))
    assert answer["statusCode"] == 200 and "status 2" in answer["body"]
    assert header(answer, "Content-Type") == "text/html; charset=utf-8"
    assert _status(registered) == 2
    lower = _browser(registered, urlencode(_return_fields(registered, htouhui_private_key, 1)))
    assert lower["statusCode"] == 200 and _status(registered) == 2  # never lowers
    assert registered.history() == []  # a return is not a notification: no history record


def test_return_with_a_bad_signature_shows_an_error_page(registered: Stack, htouhui_private_key: Any) -> None:
    fields = _return_fields(registered, htouhui_private_key, 3)
    fields["status"] = "2"
    answer = _browser(registered, urlencode(fields))
    assert answer["statusCode"] == 400 and "<html" in answer["body"]
    assert _status(registered) is None
    twice = _browser(registered, urlencode(_return_fields(registered, htouhui_private_key, 3)) + "&status=3")
    assert twice["statusCode"] == 400 and _status(registered) is None


def test_sample_browser_return_event_applies(stack: Stack) -> None:
    event = load_event("browser_return.json")
    assert stack.invoke("notify", event)["statusCode"] == 400  # u-1001 is not registered yet: refused
    stack.invoke("register", load_event("register.json"))
    answer = stack.invoke("notify", event)
    assert answer["statusCode"] == 200 and json_body(stack.query("u-1001"))["status"] == 3
