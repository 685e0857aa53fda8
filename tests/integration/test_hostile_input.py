"""Hostile input at every route, through the handlers, against moto DynamoDB and the Htouhui sandbox.

A hand-written matrix: each field of each body missing, empty, one character over the seed's limit, of
the wrong type, breaking its pattern; unknown fields; JSON that is not an object; bytes that are not
UTF-8; a body of 1 MB; a Content-Type that lies; pathological JSON (deep nesting, huge numbers).
Each answer must be API.md's 400 naming the field (never a 500, never the value), Htouhui must not be
called, and a full dump of both tables must be unchanged.

The number of cases is reported per route in docs/hostile.md (`CASES_PER_ROUTE` below).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import Stack, dump, http_event, json_body, valid_id_card

MOBILE = "13812345678"
USER = "u-hostile-1"
ID_CARD = valid_id_card("11010519900307123")
BAD_CHECK = ID_CARD[:-1] + ("0" if ID_CARD[-1] != "0" else "1")
ONE_MB = 1024 * 1024

# --- helpers shared with the other hostile modules -----------------------------------------------------


def assert_400(answer: dict[str, Any], *fields: str, secret: str | None = None) -> list[dict[str, str]]:
    """API.md's 400 shape; `fields` must all be named; the submitted value never echoed."""
    assert answer["statusCode"] == 400, answer
    assert answer["headers"]["Content-Type"] == "application/json; charset=utf-8", answer
    body = json_body(answer)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == "invalid_request" and error["message"] and error["request_id"], error
    assert set(error) <= {"code", "message", "fields", "request_id"}, error
    named = [entry["field"] for entry in error.get("fields") or []]
    for entry in error.get("fields") or []:
        assert set(entry) == {"field", "reason"} and entry["reason"], entry
    for field in fields:
        assert field in named, (field, error)
    if secret:
        assert secret not in answer["body"], "a submitted value was echoed"
    return list(error.get("fields") or [])


def _raw(stack: Stack, function: str, method: str, path: str, body: Any, content_type: str | None, **kw: Any) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    if isinstance(body, dict | list):
        body = json.dumps(body)
    event = http_event(method, path, body=body, headers=headers, **kw)
    if content_type is None:
        event["headers"].pop("content-type", None)
    return stack.invoke(function, event)


def post_users(stack: Stack, body: Any, content_type: str | None = "application/json") -> dict[str, Any]:
    return dict(_raw(stack, "register", "POST", "/users", body, content_type))


def post_open_account(
    stack: Stack, body: Any, user: str = USER, content_type: str | None = "application/json"
) -> dict[str, Any]:
    return dict(
        _raw(
            stack,
            "open_account",
            "POST",
            f"/users/{user}/open-account",
            body,
            content_type,
        )
    )


# --- the matrix ---------------------------------------------------------------------------------------

REGISTER_OK: dict[str, Any] = {"third_party_user_id": "u-new-1", "mobile": MOBILE, "password": "Secret-123"}

# (case id, body, the field that must be named)
REGISTER_CASES: list[tuple[str, Any, str]] = [
    ("password-separator", {**REGISTER_OK, "password": "pa&ss=1"}, "password"),
    ("password-line-separator", {**REGISTER_OK, "password": "pa\u2028ss"}, "password"),
    ("tpuid-missing", {k: v for k, v in REGISTER_OK.items() if k != "third_party_user_id"}, "third_party_user_id"),
    ("tpuid-empty", {**REGISTER_OK, "third_party_user_id": ""}, "third_party_user_id"),
    ("tpuid-51", {**REGISTER_OK, "third_party_user_id": "u" * 51}, "third_party_user_id"),
    ("tpuid-int", {**REGISTER_OK, "third_party_user_id": 12345}, "third_party_user_id"),
    ("tpuid-null", {**REGISTER_OK, "third_party_user_id": None}, "third_party_user_id"),
    ("tpuid-list", {**REGISTER_OK, "third_party_user_id": ["u1"]}, "third_party_user_id"),
    ("tpuid-slash", {**REGISTER_OK, "third_party_user_id": "u/../admin"}, "third_party_user_id"),
    ("tpuid-ampersand", {**REGISTER_OK, "third_party_user_id": "u1&status=3"}, "third_party_user_id"),
    ("tpuid-space", {**REGISTER_OK, "third_party_user_id": "u 1"}, "third_party_user_id"),
    ("tpuid-newline", {**REGISTER_OK, "third_party_user_id": "u1\n"}, "third_party_user_id"),
    ("tpuid-html", {**REGISTER_OK, "third_party_user_id": "<script>"}, "third_party_user_id"),
    ("tpuid-unicode", {**REGISTER_OK, "third_party_user_id": "用户一"}, "third_party_user_id"),
    ("mobile-missing", {k: v for k, v in REGISTER_OK.items() if k != "mobile"}, "mobile"),
    ("mobile-empty", {**REGISTER_OK, "mobile": ""}, "mobile"),
    ("mobile-12", {**REGISTER_OK, "mobile": MOBILE + "0"}, "mobile"),
    ("mobile-10", {**REGISTER_OK, "mobile": MOBILE[:-1]}, "mobile"),
    ("mobile-int", {**REGISTER_OK, "mobile": int(MOBILE)}, "mobile"),
    ("mobile-float", {**REGISTER_OK, "mobile": 13812345678.0}, "mobile"),
    ("mobile-bool", {**REGISTER_OK, "mobile": True}, "mobile"),
    ("mobile-null", {**REGISTER_OK, "mobile": None}, "mobile"),
    ("mobile-object", {**REGISTER_OK, "mobile": {"value": MOBILE}}, "mobile"),
    ("mobile-12x", {**REGISTER_OK, "mobile": "12812345678"}, "mobile"),
    ("mobile-letters", {**REGISTER_OK, "mobile": "1381234567a"}, "mobile"),
    ("mobile-plus86", {**REGISTER_OK, "mobile": "+8613812345"}, "mobile"),
    ("mobile-fullwidth", {**REGISTER_OK, "mobile": "１３８１２３４５６７８"}, "mobile"),
    ("mobile-arabic-indic", {**REGISTER_OK, "mobile": "1٣812345678"}, "mobile"),
    ("mobile-trailing-newline", {**REGISTER_OK, "mobile": MOBILE[:-1] + "\n"}, "mobile"),
    ("password-empty", {**REGISTER_OK, "password": ""}, "password"),
    ("password-17", {**REGISTER_OK, "password": "p" * 17}, "password"),
    ("password-int", {**REGISTER_OK, "password": 123456}, "password"),
    ("password-list", {**REGISTER_OK, "password": ["a"]}, "password"),
    ("password-control", {**REGISTER_OK, "password": "abc\x00def"}, "password"),
    ("unknown-field", {**REGISTER_OK, "status": "3"}, "status"),
    ("unknown-htouhui-id", {**REGISTER_OK, "htouhui_user_id": "1"}, "htouhui_user_id"),
    ("unknown-proto", {**REGISTER_OK, "__proto__": {}}, "__proto__"),
]

OPEN_OK: dict[str, Any] = {"id_card": ID_CARD, "real_name": "张三", "type": "0"}

OPEN_CASES: list[tuple[str, Any, str]] = [
    ("id_card-missing", {"real_name": "张三"}, "id_card"),
    ("id_card-empty", {**OPEN_OK, "id_card": ""}, "id_card"),
    ("id_card-19", {**OPEN_OK, "id_card": ID_CARD + "1"}, "id_card"),
    ("id_card-17", {**OPEN_OK, "id_card": ID_CARD[:17]}, "id_card"),
    ("id_card-int", {**OPEN_OK, "id_card": int(ID_CARD[:17])}, "id_card"),
    ("id_card-null", {**OPEN_OK, "id_card": None}, "id_card"),
    ("id_card-check-digit", {**OPEN_OK, "id_card": BAD_CHECK}, "id_card"),
    ("id_card-letters", {**OPEN_OK, "id_card": "A" + ID_CARD[1:]}, "id_card"),
    ("id_card-x-in-middle", {**OPEN_OK, "id_card": ID_CARD[:5] + "X" + ID_CARD[6:]}, "id_card"),
    ("id_card-fullwidth", {**OPEN_OK, "id_card": "１" + ID_CARD[1:]}, "id_card"),
    ("real_name-missing-type0", {"id_card": ID_CARD, "type": "0"}, "real_name"),
    ("real_name-missing-type1", {"id_card": ID_CARD, "type": "1"}, "real_name"),
    ("real_name-empty", {**OPEN_OK, "real_name": ""}, "real_name"),
    ("real_name-61", {**OPEN_OK, "real_name": "张" * 61}, "real_name"),
    ("real_name-int", {**OPEN_OK, "real_name": 7}, "real_name"),
    ("real_name-control", {**OPEN_OK, "real_name": "张\x1b[31m三"}, "real_name"),
    ("type-empty", {**OPEN_OK, "type": ""}, "type"),
    ("type-3", {**OPEN_OK, "type": "3"}, "type"),
    ("type-int", {**OPEN_OK, "type": 0}, "type"),
    ("type-01", {**OPEN_OK, "type": "01"}, "type"),
    ("type-null", {**OPEN_OK, "type": None}, "type"),
    ("return_url-empty", {**OPEN_OK, "return_url": ""}, "return_url"),
    ("return_url-257", {**OPEN_OK, "return_url": "https://shop.example.com/" + "a" * 232}, "return_url"),
    ("return_url-int", {**OPEN_OK, "return_url": 1}, "return_url"),
    ("return_url-http", {**OPEN_OK, "return_url": "http://shop.example.com/back"}, "return_url"),
    ("return_url-javascript", {**OPEN_OK, "return_url": "javascript:alert(1)"}, "return_url"),
    ("return_url-data", {**OPEN_OK, "return_url": "data:text/html,<script>alert(1)</script>"}, "return_url"),
    ("return_url-relative", {**OPEN_OK, "return_url": "/htouhui/return"}, "return_url"),
    ("return_url-scheme-relative", {**OPEN_OK, "return_url": "//evil.example.net/x"}, "return_url"),
    ("return_url-off-list", {**OPEN_OK, "return_url": "https://evil.example.net/back"}, "return_url"),
    ("return_url-credentials", {**OPEN_OK, "return_url": "https://user:pw@evil.example.net/"}, "return_url"),
    ("return_url-userinfo-trick", {**OPEN_OK, "return_url": "https://127.0.0.1@evil.example.net/"}, "return_url"),
    ("return_url-newline", {**OPEN_OK, "return_url": "https://evil.example.net/\r\nSet-Cookie: a=b"}, "return_url"),
    ("return_url-suffix-host", {**OPEN_OK, "return_url": "https://127.0.0.1.evil.example.net/"}, "return_url"),
    # issue 19: what we sign holds no separator of the canonical string, and no Unicode separator
    (
        "real_name-regroups",
        {**OPEN_OK, "real_name": "A&request_no=Q0&return_url=https://x.io&sign_type=RSA2&sz"},
        "real_name",
    ),
    ("real_name-equals", {**OPEN_OK, "real_name": "A=B"}, "real_name"),
    ("real_name-next-line", {**OPEN_OK, "real_name": "A\u0085B"}, "real_name"),
    ("real_name-line-separator", {**OPEN_OK, "real_name": "A\u2028B"}, "real_name"),
    ("real_name-no-break-space", {**OPEN_OK, "real_name": "A\u00a0B"}, "real_name"),
    ("return_url-line-separator", {**OPEN_OK, "return_url": "https://127.0.0.1/a\u2028b"}, "return_url"),
    ("unknown-notify_url", {**OPEN_OK, "notify_url": "https://evil.example.net/notify"}, "notify_url"),
    ("unknown-htouhui_user_id", {**OPEN_OK, "htouhui_user_id": "1"}, "htouhui_user_id"),
    ("unknown-third_party_user_id", {**OPEN_OK, "third_party_user_id": "u-other"}, "third_party_user_id"),
]

# Bodies that break the transport rather than a field: always field "body".
BODY_CASES: list[tuple[str, str | bytes, str | None]] = [
    ("empty", "", "application/json"),
    ("not-json", "{not json", "application/json"),
    ("array", "[1, 2]", "application/json"),
    ("string", '"text"', "application/json"),
    ("number", "42", "application/json"),
    ("null", "null", "application/json"),
    ("true", "true", "application/json"),
    ("truncated", '{"third_party_user_id": "u1", "mobile": "1381', "application/json"),
    ("non-utf8", b'{"third_party_user_id": "u\xff\xfe", "mobile": "13812345678"}', "application/json"),
    ("latin1", '{"third_party_user_id": "u1", "real_name": "Jos\u00e9"}'.encode("latin-1"), "application/json"),
    ("utf16", json.dumps(REGISTER_OK).encode("utf-16"), "application/json"),
    ("bom", b"\xef\xbb\xbf" + json.dumps(REGISTER_OK).encode(), "application/json"),
    ("form-as-json", "third_party_user_id=u1&mobile=13812345678", "application/json"),
    ("deep-nesting", "[" * 100_000 + "]" * 100_000, "application/json"),
    ("deep-object", '{"a":' * 50_000 + "1" + "}" * 50_000, "application/json"),
    ("huge-int", '{"third_party_user_id": "u1", "mobile": ' + "1" * 5000 + "}", "application/json"),
    ("nan", '{"third_party_user_id": "u1", "mobile": NaN}', "application/json"),
    ("lone-surrogate", '{"third_party_user_id": "u\\ud800", "mobile": "13812345678"}', "application/json"),
    ("one-mb-padding", json.dumps({**REGISTER_OK, "pad": "x" * ONE_MB}), "application/json"),
    ("one-mb-field", json.dumps({**REGISTER_OK, "third_party_user_id": "u" * ONE_MB}), "application/json"),
    ("one-mb-garbage", "\x01" * ONE_MB, "application/json"),
    ("content-type-text", json.dumps(REGISTER_OK), "text/plain"),
    ("content-type-form", json.dumps(REGISTER_OK), "application/x-www-form-urlencoded"),
    ("content-type-xml", "<user><mobile>13812345678</mobile></user>", "application/xml"),
    ("content-type-multipart", "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", "multipart/form-data; b=b"),
    ("content-type-form-body", "third_party_user_id=u-form&mobile=13812345678", "application/x-www-form-urlencoded"),
    (
        "content-type-form-charset",
        "third_party_user_id=u-form&mobile=13812345678",
        "application/x-www-form-urlencoded; a",
    ),
    ("content-type-json-suffix", json.dumps(REGISTER_OK), "application/jsonp"),
    ("base64-one-mb", b"{" + b" " * ONE_MB + b"}", "application/json"),
]

CASES_PER_ROUTE = {
    "POST /users": len(REGISTER_CASES) + len(BODY_CASES),
    "POST /users/{id}/open-account": len(OPEN_CASES) + len(BODY_CASES) + 3,
    "GET /users/{id}": 7,
}


@pytest.fixture
def registered(stack: Stack) -> Stack:
    assert post_users(stack, {"third_party_user_id": USER, "mobile": "13900000001"})["statusCode"] == 201
    stack.calls.clear()
    return stack


@pytest.mark.parametrize(("body", "field"), [case[1:] for case in REGISTER_CASES], ids=[c[0] for c in REGISTER_CASES])
def test_register_bad_field(stack: Stack, body: Any, field: str) -> None:
    before = dump(stack)
    secret = body.get(field) if isinstance(body, dict) and isinstance(body.get(field), str) else None
    assert_400(post_users(stack, body), field, secret=secret if secret and len(secret) > 3 else None)
    assert stack.calls == [], "Htouhui was called"
    assert dump(stack) == before


@pytest.mark.parametrize(("body", "field"), [case[1:] for case in OPEN_CASES], ids=[c[0] for c in OPEN_CASES])
def test_open_account_bad_field(registered: Stack, body: Any, field: str) -> None:
    before = dump(registered)
    secret = body.get(field) if isinstance(body, dict) and isinstance(body.get(field), str) else None
    assert_400(post_open_account(registered, body), field, secret=secret if secret and len(secret) > 3 else None)
    assert registered.calls == []
    assert dump(registered) == before


@pytest.mark.parametrize(("body", "content_type"), [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_register_bad_body(stack: Stack, body: str | bytes, content_type: str | None) -> None:
    before = dump(stack)
    fields = assert_400(post_users(stack, body, content_type))
    assert fields, "the 400 must name what was wrong"
    assert stack.calls == []
    assert dump(stack) == before


@pytest.mark.parametrize(("body", "content_type"), [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_open_account_bad_body(registered: Stack, body: str | bytes, content_type: str | None) -> None:
    before = dump(registered)
    if isinstance(body, str) and body.startswith("{") and "third_party_user_id" in body and "pad" not in body:
        body = body.replace('"third_party_user_id"', '"id_card"', 1)
    assert_400(post_open_account(registered, body, content_type=content_type))
    assert registered.calls == []
    assert dump(registered) == before


@pytest.mark.parametrize(
    ("user", "field"),
    [("u" * 51, "third_party_user_id"), ("u%20x", "third_party_user_id"), ("<b>", "third_party_user_id")],
    ids=["path-51", "path-escaped-space", "path-html"],
)
def test_open_account_bad_path(registered: Stack, user: str, field: str) -> None:
    before = dump(registered)
    assert_400(post_open_account(registered, OPEN_OK, user=user), field)
    assert dump(registered) == before


@pytest.mark.parametrize(
    ("user", "query", "field"),
    [
        ("u" * 51, None, "third_party_user_id"),
        ("a b", None, "third_party_user_id"),
        ("<script>", None, "third_party_user_id"),
        (USER, "refresh=perhaps", "refresh"),
        (USER, "refresh=", "refresh"),
        (USER, "refresh=true&refresh=false", "refresh"),
        (USER, "refresh=" + "1" * 5000, "refresh"),
    ],
    ids=["path-51", "path-space", "path-html", "refresh-word", "refresh-empty", "refresh-twice", "refresh-long"],
)
def test_query_bad_parameters(registered: Stack, user: str, query: str | None, field: str) -> None:
    before = dump(registered)
    event = http_event(
        "GET",
        f"/users/{user}",
        query=query,
    )
    assert_400(registered.invoke("query_user", event), field)
    assert registered.calls == []
    assert dump(registered) == before


def test_the_good_bodies_of_the_matrix_do_pass(stack: Stack) -> None:
    """The matrix's baselines are valid: the 400s above come from the one broken thing."""
    assert post_users(stack, REGISTER_OK)["statusCode"] == 201
    answer = post_open_account(stack, OPEN_OK, user="u-new-1")
    assert answer["statusCode"] == 200, answer


def test_duplicate_json_keys_are_refused(stack: Stack) -> None:
    """`{"mobile": a, "mobile": b}`: which one did the caller mean? Refused rather than guessed."""
    before = dump(stack)
    body = '{"third_party_user_id": "u-dup", "mobile": "13812345678", "mobile": "13912345678"}'
    assert_400(post_users(stack, body), "body", secret="13912345678")
    assert stack.calls == [] and dump(stack) == before


@pytest.mark.parametrize("content_type", [None, "application/json", "Application/JSON; charset=UTF-8"])
def test_json_without_or_with_any_spelling_of_the_json_content_type_is_read(
    stack: Stack, content_type: str | None
) -> None:
    """No Content-Type at all is read as JSON (API.md: JSON in); only another media type is a lie."""
    answer = post_users(stack, {"third_party_user_id": "u-ct", "mobile": MOBILE}, content_type)
    assert answer["statusCode"] == 201, answer


def test_open_account_refuses_a_separator_in_its_own_hosts_return_url(registered: Stack) -> None:
    before = dump(registered)
    own = f"http://{registered.bridge.authority}"
    for url in (f"{own}/a&sign_type=RSA2&z", f"{own}/done?from=shop"):
        body = assert_400(registered.open_account(USER, {**OPEN_OK, "return_url": url}), "return_url")
        assert {"field": "return_url", "reason": "contains_canonical_separator"} in body, body
    assert dump(registered) == before


def test_an_allowed_host_on_another_port_is_not_allowed(registered: Stack) -> None:
    before = dump(registered)
    host, _, port = registered.bridge.authority.rpartition(":")
    other = f"http://{host}:{int(port) + 1}/evil"
    fields = assert_400(registered.open_account(USER, {**OPEN_OK, "return_url": other}), "return_url")
    assert {"field": "return_url", "reason": "return_url_not_allowed"} in fields, fields
    assert dump(registered) == before
    same = registered.open_account(USER, {**OPEN_OK, "return_url": f"http://{registered.bridge.authority}/back"})
    assert same["statusCode"] == 200, same["body"]
