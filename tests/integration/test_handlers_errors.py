"""Every error of API.md's table, each produced by a real cause through the handlers.

400 invalid_request, 404 not_found, 409 conflict (ours and Htouhui's), 502 upstream_error,
503 upstream_busy, 504 upstream_timeout: always the one shape, with the API Gateway request id,
never a submitted value.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Stack, http_event, json_body, valid_id_card

from htouhui import protocol

# Powertools warns when an invocation counted nothing: normal here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

MOBILE = "13812349999"
ID_CARD = valid_id_card("11010119800101001")
OTHER_ID_CARD = valid_id_card("11010119800101002")


def _error(answer: dict[str, Any], status: int, code: str) -> dict[str, Any]:
    assert answer["statusCode"] == status, answer
    assert answer["headers"]["Content-Type"] == "application/json; charset=utf-8"
    body = json_body(answer)
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert error["request_id"]
    assert set(error) <= {"code", "message", "fields", "htouhui_code", "request_id"}
    return error


def _post_users(stack: Stack, body: str | bytes, **options: Any) -> dict[str, Any]:
    event = http_event(
        "POST", "/users", body=body, headers={"content-type": "application/json"}, request_id="req-400", **options
    )
    return stack.invoke("register", event)


# --- 400 --------------------------------------------------------------------------------------------------


def test_400_bad_json_non_object_and_non_utf8(stack: Stack) -> None:
    for body in ("{not json", "[1, 2]", '"text"', "", b"\xff\xfe{}"):
        error = _error(_post_users(stack, body), 400, "invalid_request")
        assert error["fields"][0]["field"] == "body"
        assert error["request_id"] == "req-400"
    assert stack.calls == []


def test_400_lists_every_bad_field_with_its_rule_never_the_value(stack: Stack) -> None:
    answer = stack.invoke(
        "register",
        http_event(
            "POST",
            "/users",
            body={"third_party_user_id": "has space", "mobile": "12345678901", "password": "x" * 17, "extra": "1"},
        ),
    )
    error = _error(answer, 400, "invalid_request")
    fields = {entry["field"]: entry["reason"] for entry in error["fields"]}
    assert set(fields) == {"third_party_user_id", "mobile", "password", "extra"}
    assert "mobile" in fields["mobile"] and "12345678901" not in answer["body"] and "has space" not in answer["body"]
    assert stack.calls == []


def test_400_numbers_are_not_strings_and_open_account_rules(stack: Stack) -> None:
    error = _error(
        stack.invoke(
            "register", http_event("POST", "/users", body={"third_party_user_id": "u1", "mobile": 13812345678})
        ),
        400,
        "invalid_request",
    )
    assert [entry["field"] for entry in error["fields"]] == ["mobile"]
    assert stack.register("u-400", MOBILE)["statusCode"] == 201
    bad_card = stack.open_account("u-400", {"id_card": ID_CARD[:-1] + ("0" if ID_CARD[-1] != "0" else "1")})
    fields = {entry["field"] for entry in _error(bad_card, 400, "invalid_request")["fields"]}
    assert fields == {"id_card", "real_name"}  # check digit; real_name required for type 0
    foreign = stack.open_account(
        "u-400", {"id_card": ID_CARD, "real_name": "张三", "return_url": "https://evil.example.net/back"}
    )
    assert _error(foreign, 400, "invalid_request")["fields"] == [
        {"field": "return_url", "reason": "return_url_not_allowed"}
    ]


def test_400_bad_path_and_query_parameters(stack: Stack) -> None:
    event = http_event("GET", "/users/a%20b")
    assert _error(stack.invoke("query_user", event), 400, "invalid_request")["fields"][0]["field"] == (
        "third_party_user_id"
    )
    event = http_event(
        "GET",
        "/users/u1",
        query={"refresh": "perhaps"},
    )
    assert _error(stack.invoke("query_user", event), 400, "invalid_request")["fields"][0]["field"] == "refresh"


# --- 404 --------------------------------------------------------------------------------------------------


def test_404_unknown_user(stack: Stack) -> None:
    _error(stack.query("u-nobody"), 404, "not_found")
    _error(stack.query("u-nobody", refresh=True), 404, "not_found")
    _error(stack.open_account("u-nobody", {"id_card": ID_CARD, "real_name": "张三"}), 404, "not_found")
    assert stack.calls == []


# --- 409 --------------------------------------------------------------------------------------------------


def test_409_htouhui_2003_mobile_of_another_user(stack: Stack) -> None:
    assert stack.register("u-first", MOBILE)["statusCode"] == 201
    error = _error(stack.register("u-second", MOBILE), 409, "conflict")
    assert error["htouhui_code"] == "2003" and MOBILE not in error["message"]


def test_409_htouhui_2001_user_registered_there_with_another_mobile(stack: Stack) -> None:
    stack.control("POST", "users", {"third_party_user_id": "u-there", "mobile": "13700000001"})
    error = _error(stack.register("u-there", "13700000002"), 409, "conflict")
    assert error["htouhui_code"] == "2001"


def test_409_htouhui_2004_id_card_not_the_users(stack: Stack) -> None:
    assert stack.register("u-2004", MOBILE)["statusCode"] == 201
    assert stack.open_account("u-2004", {"id_card": OTHER_ID_CARD, "real_name": "张三"})["statusCode"] == 200
    stack.control("POST", "users", {"third_party_user_id": "u-2004", "status": 1, "id_card": ID_CARD})
    error = _error(stack.query("u-2004", refresh=True), 409, "conflict")
    assert error["htouhui_code"] == "2004"


def test_409_ours_other_mobile_and_other_id_card(stack: Stack, htouhui_private_key: Any) -> None:
    assert stack.register("u-ours", MOBILE)["statusCode"] == 201
    error = _error(stack.register("u-ours", "13812340000"), 409, "conflict")
    assert "htouhui_code" not in error
    assert stack.open_account("u-ours", {"id_card": ID_CARD, "real_name": "张三"})["statusCode"] == 200
    assert stack.notify(stack.signed_notification(htouhui_private_key, "u-ours", 1))["statusCode"] == 200
    # the account is opened with ID_CARD: a page for another id_card is refused before Htouhui sees it
    _error(stack.open_account("u-ours", {"id_card": OTHER_ID_CARD, "real_name": "张三"}), 409, "conflict")
    assert [call.interface for call in stack.calls] == ["register"]


# --- 502 / 503 / 504 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["bad_signature", "unsigned", "not_json"])
def test_502_an_answer_we_cannot_believe(stack: Stack, fault: str) -> None:
    stack.control("POST", "faults", {"interface": "register", fault: True})
    error = _error(stack.register("u-502", MOBILE), 502, "upstream_error")
    assert "htouhui_code" not in error
    assert stack.user_item("u-502").get("registration", {}).get("S") != "DONE"


def test_502_htouhui_rejects_our_signature(stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(protocol.private_pem(protocol.generate_private_key()))
    monkeypatch.setenv("MERCHANT_PRIVATE_KEY", f"file:{stranger}")
    error = _error(stack.register("u-1001x", MOBILE), 502, "upstream_error")
    assert error["htouhui_code"] == "1001"


def test_503_htouhui_busy_after_retries(stack: Stack) -> None:
    stack.control("POST", "faults", {"interface": "register", "busy": True})
    error = _error(stack.register("u-503", MOBILE), 503, "upstream_busy")
    assert error["htouhui_code"] == "9999"
    assert [call.outcome for call in stack.calls] == ["9999", "9999"]  # HTOUHUI_MAX_ATTEMPTS=2
    stack.control("POST", "faults", {"interface": "register", "clear": True})
    assert stack.register("u-503", MOBILE)["statusCode"] == 201  # the lease was given back: a retry converges


def test_504_no_answer_in_time(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTOUHUI_READ_TIMEOUT", "0.2")
    stack.control("POST", "faults", {"interface": "register", "timeout": 1})
    _error(stack.register("u-504", MOBILE), 504, "upstream_timeout")
    assert [call.outcome for call in stack.calls] == ["timeout", "timeout"]


def test_storage_unavailable_is_503_without_detail(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_TABLE", "no-such-table")
    error = _error(stack.query("u-any"), 503, "unavailable")
    assert "no-such-table" not in error["message"]


def test_unknown_route_is_404_in_our_shape(stack: Stack) -> None:
    _error(stack.invoke("register", http_event("DELETE", "/users")), 404, "not_found")
