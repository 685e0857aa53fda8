"""The sandbox's register and query interfaces over real HTTP: every result code of PROTOCOL.md §5,
replays, and signatures (the sandbox verifies the merchant's key and signs with its own, only)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from helpers import PARTNER_ID, post_json, signed_request, valid_id_card
from sandbox.server import RunningSandbox, SandboxConfig

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.errors import HtouhuiRejected
from htouhui.models import QueryRequest, RegisterRequest

REGISTER = "/openapi/user/register"
QUERY = "/openapi/user/query"


def answer(response: httpx.Response, key: protocol.PublicKey) -> dict[str, str]:
    assert response.status_code == 200
    body = response.json()
    assert protocol.verify(body, key), body
    return body


def test_register_returns_a_stable_11_digit_id(client: HtouhuiClient) -> None:
    first = client.register(RegisterRequest(mobile="13800138000", third_party_user_id="alice"))
    again = client.register(RegisterRequest(mobile="13800138000", third_party_user_id="alice"))
    assert first.code == again.code == "0000"
    assert first.htouhui_user_id == again.htouhui_user_id
    assert first.htouhui_user_id is not None and len(first.htouhui_user_id) == 11
    assert first.htouhui_user_id.isdigit()
    assert first.request_no != again.request_no


def test_2001_same_user_with_another_mobile(client: HtouhuiClient) -> None:
    client.register(RegisterRequest(mobile="13800138000", third_party_user_id="alice"))
    with pytest.raises(HtouhuiRejected) as rejected:
        client.register(RegisterRequest(mobile="13900139000", third_party_user_id="alice"))
    assert rejected.value.code == "2001"


def test_2003_mobile_of_another_user(client: HtouhuiClient) -> None:
    client.register(RegisterRequest(mobile="13800138000", third_party_user_id="alice"))
    with pytest.raises(HtouhuiRejected) as rejected:
        client.register(RegisterRequest(mobile="13800138000", third_party_user_id="bob"))
    assert rejected.value.code == "2003"


def test_query_before_registration_is_status_0(client: HtouhuiClient) -> None:
    answer_ = client.query(QueryRequest(id_card=valid_id_card(), third_party_user_id="nobody"))
    assert (answer_.status, answer_.borrower, answer_.htouhui_user_id) == ("0", "0", None)


def test_2004_query_with_another_id_card(
    client: HtouhuiClient, sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey
) -> None:
    registered = client.register(RegisterRequest(mobile="13800138000", third_party_user_id="alice"))
    seeded = httpx.post(
        sandbox.url + "/_sandbox/users",
        json={"third_party_user_id": "alice", "status": "3", "id_card": valid_id_card()},
    )
    assert seeded.status_code == 201
    ok = client.query(QueryRequest(id_card=valid_id_card(), third_party_user_id="alice"))
    assert ok.status == "3" and ok.htouhui_user_id == registered.htouhui_user_id
    assert ok.bank_card_number is not None and 16 <= len(ok.bank_card_number) <= 19
    with pytest.raises(HtouhuiRejected) as rejected:
        client.query(QueryRequest(id_card=valid_id_card("11010519800101001"), third_party_user_id="alice"))
    assert rejected.value.code == "2004"


@pytest.mark.parametrize(
    ("business", "field"),
    [
        ({"mobile": "12345", "third_party_user_id": "alice"}, "mobile"),
        ({"mobile": "13800138000", "third_party_user_id": "a b"}, "third_party_user_id"),
        ({"mobile": "13800138000"}, "third_party_user_id"),
        ({"mobile": "13800138000", "third_party_user_id": "alice", "password": "x" * 17}, "password"),
    ],
)
def test_1002_names_the_field_and_never_the_value(
    sandbox: RunningSandbox,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
    business: dict[str, str],
    field: str,
) -> None:
    body = answer(post_json(sandbox.url + REGISTER, signed_request(business, merchant_private_key)), htouhui_public_key)
    assert body["code"] == "1002"
    assert body["message"].startswith(field + ":")
    for value in business.values():
        assert value not in body["message"] or value in ("alice",)


def test_1002_on_a_body_that_is_not_json(sandbox: RunningSandbox, htouhui_public_key: protocol.PublicKey) -> None:
    body = answer(httpx.post(sandbox.url + REGISTER, content=b"mobile=1"), htouhui_public_key)
    assert body["code"] == "1002"


def test_1002_on_an_unknown_partner(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    fields = signed_request({"mobile": "13800138000", "third_party_user_id": "a"}, merchant_private_key)
    fields = protocol.signed({**fields, "partner_id": "P9999"}, merchant_private_key)
    body = answer(post_json(sandbox.url + REGISTER, fields), htouhui_public_key)
    assert body["code"] == "1002" and body["message"].startswith("partner_id")


def test_1001_for_every_key_but_the_merchants(
    sandbox: RunningSandbox,
    merchant_private_key: protocol.PrivateKey,
    htouhui_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    business = {"mobile": "13800138000", "third_party_user_id": "alice"}
    for key in (protocol.generate_private_key(), htouhui_private_key):
        body = answer(post_json(sandbox.url + REGISTER, signed_request(business, key)), htouhui_public_key)
        assert body["code"] == "1001"
    tampered = signed_request(business, merchant_private_key)
    tampered["mobile"] = "13800138001"
    assert answer(post_json(sandbox.url + REGISTER, tampered), htouhui_public_key)["code"] == "1001"
    unsigned = {k: v for k, v in signed_request(business, merchant_private_key).items() if k != "sign"}
    assert answer(post_json(sandbox.url + REGISTER, unsigned), htouhui_public_key)["code"] == "1001"
    not_base64 = {**signed_request(business, merchant_private_key), "sign": "%%%"}
    assert answer(post_json(sandbox.url + QUERY, not_base64), htouhui_public_key)["code"] == "1001"
    assert httpx.get(sandbox.url + "/_sandbox/users").json()["users"] == []


# A timestamp has whole seconds (the fraction is cut off) and the request takes time to arrive: a stamp made
# 601 s ahead can be only 600.x s ahead of the sandbox's clock, so the future case keeps a margin.
@pytest.mark.parametrize("skew", [timedelta(seconds=-601), timedelta(seconds=603), timedelta(days=-1)])
def test_1004_stale_or_future_timestamp(
    sandbox: RunningSandbox,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
    skew: timedelta,
) -> None:
    stamp = protocol.china_timestamp(datetime.now(UTC) + skew)
    fields = signed_request(
        {"mobile": "13800138000", "third_party_user_id": "a"}, merchant_private_key, timestamp=stamp
    )
    assert answer(post_json(sandbox.url + REGISTER, fields), htouhui_public_key)["code"] == "1004"


def test_timestamp_within_the_window_is_accepted(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    stamp = protocol.china_timestamp(datetime.now(UTC) - timedelta(seconds=590))
    fields = signed_request(
        {"mobile": "13800138000", "third_party_user_id": "a"}, merchant_private_key, timestamp=stamp
    )
    assert answer(post_json(sandbox.url + REGISTER, fields), htouhui_public_key)["code"] == "0000"


def test_replay_same_content_is_the_first_answer_byte_for_byte_and_other_content_is_1003(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    business = {"mobile": "13800138000", "third_party_user_id": "alice"}
    first = post_json(sandbox.url + REGISTER, signed_request(business, merchant_private_key, request_no="R1"))
    # The same request sent again (re-signed, new timestamp) and once more byte-identical.
    again = post_json(sandbox.url + REGISTER, signed_request(business, merchant_private_key, request_no="R1"))
    assert again.content == first.content
    assert answer(first, htouhui_public_key)["code"] == "0000"
    other = signed_request({**business, "mobile": "13900139000"}, merchant_private_key, request_no="R1")
    conflict = answer(post_json(sandbox.url + REGISTER, other), htouhui_public_key)
    assert conflict["code"] == "1003" and conflict["request_no"] == "R1"
    # A request_no of a register reused for a query is other content too.
    query = signed_request({"id_card": valid_id_card(), "third_party_user_id": "alice"}, merchant_private_key)
    query = protocol.signed({**query, "request_no": "R1"}, merchant_private_key)
    assert answer(post_json(sandbox.url + QUERY, query), htouhui_public_key)["code"] == "1003"


def test_every_answer_verifies_with_the_sandbox_key_only(
    sandbox: RunningSandbox,
    merchant_private_key: protocol.PrivateKey,
    merchant_public_key: protocol.PublicKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    other = protocol.generate_private_key().public_key()
    requests = [
        (REGISTER, {"mobile": "13800138000", "third_party_user_id": "alice"}, merchant_private_key),
        (REGISTER, {"mobile": "13800138000", "third_party_user_id": "bob"}, merchant_private_key),
        (REGISTER, {"mobile": "bad", "third_party_user_id": "carol"}, merchant_private_key),
        (QUERY, {"id_card": valid_id_card(), "third_party_user_id": "alice"}, merchant_private_key),
        (QUERY, {"id_card": valid_id_card(), "third_party_user_id": "alice"}, protocol.generate_private_key()),
    ]
    codes = set()
    for path, business, key in requests:
        body = post_json(sandbox.url + path, signed_request(business, key)).json()
        codes.add(body["code"])
        assert protocol.verify(body, htouhui_public_key)
        assert not protocol.verify(body, merchant_public_key)
        assert not protocol.verify(body, other)
    assert codes == {"0000", "2003", "1002", "1001"}


def test_the_sandbox_is_never_given_the_merchants_private_key(
    merchant_private_key: protocol.PrivateKey, htouhui_private_key: protocol.PrivateKey
) -> None:
    names = {field.name for field in dataclasses.fields(SandboxConfig)}
    assert names >= {"partner_id", "merchant_public_key", "htouhui_private_key", "time_scale"}
    assert not any("merchant" in name and "private" in name for name in names)
    with pytest.raises(TypeError):
        SandboxConfig(merchant_public_key=merchant_private_key, htouhui_private_key=htouhui_private_key)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be the merchant"):
        SandboxConfig(merchant_public_key=merchant_private_key.public_key(), htouhui_private_key=merchant_private_key)


def test_answers_echo_request_no_and_partner(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    fields = signed_request({"mobile": "13800138000", "third_party_user_id": "a"}, merchant_private_key)
    body = answer(post_json(sandbox.url + REGISTER, fields), htouhui_public_key)
    assert body["partner_id"] == PARTNER_ID and body["request_no"] == fields["request_no"]
    assert len(body["timestamp"]) == 14
    assert json.loads(json.dumps(body)) == body


def test_concurrent_queries_are_all_answered(
    sandbox: RunningSandbox, merchant_private_key: protocol.PrivateKey, htouhui_public_key: protocol.PublicKey
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from helpers import make_client

    users = [{"third_party_user_id": f"c-{n}", "status": 2, "id_card": valid_id_card()} for n in range(64)]
    httpx.post(sandbox.url + "/_sandbox/users", json={"users": users}).raise_for_status()

    def ask(number: int) -> str:
        with_client = make_client(sandbox.url, merchant_private_key, htouhui_public_key)
        try:
            return with_client.query(QueryRequest(id_card=valid_id_card(), third_party_user_id=f"c-{number}")).status
        finally:
            with_client.close()

    with ThreadPoolExecutor(max_workers=32) as pool:
        assert list(pool.map(ask, range(64))) == ["2"] * 64
