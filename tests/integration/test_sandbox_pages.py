"""The sandbox's open-account pages over real HTTP: one page per step, starting where `type` says,
stopping at the first failure; the level, the notification and the signed browser return."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest
from helpers import Receiver, open_account_form, valid_id_card
from sandbox.server import RunningSandbox

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.models import BrowserReturn, OpenAccountNotification, QueryRequest, RegisterRequest

OPEN_ACCOUNT = "/openapi/user/openAccount"
ACTION = re.compile(r'<form method="post" action="([^"]+)"')
STEP = re.compile(r'data-step="([a-z]+)"')


def register(client: HtouhuiClient, user: str = "alice", mobile: str = "13800138000") -> str:
    answer = client.register(RegisterRequest(mobile=mobile, third_party_user_id=user))
    assert answer.htouhui_user_id is not None
    return answer.htouhui_user_id


def walk(url: str, response: httpx.Response, outcomes: list[str]) -> tuple[list[str], str]:
    """Click through the pages; the steps seen and the final redirect."""
    steps: list[str] = []
    for outcome in outcomes:
        assert response.status_code == 200, response.text
        assert '<button name="outcome" value="success">' in response.text
        assert '<button name="outcome" value="fail">' in response.text
        match, step = ACTION.search(response.text), STEP.search(response.text)
        assert match and step
        steps.append(step.group(1))
        action = urljoin(url + "/", match.group(1))
        assert "id_card" not in action and "real_name" not in action
        response = httpx.post(action, data={"step": step.group(1), "outcome": outcome})
    assert response.status_code == 302, response.text
    return steps, response.headers["location"]


def start(sandbox: RunningSandbox, fields: dict[str, str]) -> httpx.Response:
    return httpx.post(sandbox.url + OPEN_ACCOUNT, data=fields)


def returned(location: str, key: protocol.PublicKey) -> BrowserReturn:
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:9", "/htouhui/return")
    query = dict(parse_qsl(parts.query))
    assert protocol.verify(query, key)
    return BrowserReturn.model_validate(query)


def notification(receiver: Receiver, key: protocol.PublicKey, count: int = 1) -> OpenAccountNotification:
    post = receiver.wait_for(count)[count - 1]
    assert protocol.verify(post.fields, key)
    return OpenAccountNotification.model_validate(post.fields)


@pytest.mark.parametrize(
    ("type_", "before", "steps"),
    [("0", 0, ["open", "password", "authorise"]), ("1", 1, ["password", "authorise"]), ("2", 2, ["authorise"])],
)
def test_each_type_starts_at_its_step_and_reaches_level_3(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
    type_: str,
    before: int,
    steps: list[str],
) -> None:
    user_id = register(client)
    if before:
        httpx.post(
            sandbox.url + "/_sandbox/users",
            json={"third_party_user_id": "alice", "status": before, "id_card": valid_id_card()},
        ).raise_for_status()
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url, type=type_
    )
    seen, location = walk(sandbox.url, start(sandbox, form), ["success"] * len(steps))
    assert seen == steps
    back = returned(location, htouhui_public_key)
    assert (back.code, back.status, back.htouhui_user_id, back.request_no) == ("0000", "3", user_id, form["request_no"])
    note = notification(receiver, htouhui_public_key)
    assert (note.status, note.notify_type, note.htouhui_user_id) == ("3", "OPEN_ACCOUNT", user_id)
    assert note.bank_card_number is not None and 16 <= len(note.bank_card_number) <= 19
    assert client.query(QueryRequest(id_card=valid_id_card(), third_party_user_id="alice")).status == "3"


@pytest.mark.parametrize(
    ("fail_at", "level"),
    [(0, "0"), (1, "1"), (2, "2")],
)
def test_a_failed_step_stops_the_flow_at_the_level_reached(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
    fail_at: int,
    level: str,
) -> None:
    user_id = register(client)
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    outcomes = ["success"] * fail_at + ["fail"]
    seen, location = walk(sandbox.url, start(sandbox, form), outcomes)
    assert len(seen) == fail_at + 1
    assert returned(location, htouhui_public_key).status == level
    note = notification(receiver, htouhui_public_key)
    assert note.status == level
    assert (note.bank_card_number is not None) == (level != "0")
    assert client.query(QueryRequest(id_card=valid_id_card(), third_party_user_id="alice")).status == level
    assert len(receiver.posts) == 1


@pytest.mark.parametrize(("step", "level"), [("open", "0"), ("password", "1"), ("authorise", "2")])
def test_fail_next_step_control(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
    step: str,
    level: str,
) -> None:
    user_id = register(client)
    control = httpx.post(sandbox.url + "/_sandbox/users/alice/fail-next-step", json={"step": step})
    assert control.status_code == 200
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    response = start(sandbox, form)
    seen: list[str] = []
    while response.status_code == 200:  # always press "success"; the control makes one step fail
        step_match, action = STEP.search(response.text), ACTION.search(response.text)
        assert step_match and action
        seen.append(step_match.group(1))
        response = httpx.post(urljoin(sandbox.url, action.group(1)), data={"outcome": "success"})
    assert seen[-1] == step
    assert returned(response.headers["location"], htouhui_public_key).status == level
    assert notification(receiver, htouhui_public_key).status == level


def test_a_later_failure_never_lowers_the_level(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    user_id = register(client)
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    walk(sandbox.url, start(sandbox, form), ["success", "success", "fail"])
    again = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url, type="0"
    )
    _, location = walk(sandbox.url, start(sandbox, again), ["fail"])
    assert returned(location, htouhui_public_key).status == "2"
    assert notification(receiver, htouhui_public_key, 2).status == "2"


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("text/html")
    match = re.search(r'<strong id="code">(\d{4})</strong>', response.text)
    assert match, response.text
    assert response.headers["x-htouhui-code"] == match.group(1)
    return match.group(1)


def test_page_errors_2002_2004_3001_1001_1003(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
) -> None:
    user_id = register(client)
    other_id = register(client, "bob", "13900139000")
    common = {"third_party_user_id": "alice", "notify_url": receiver.url}
    assert error_code(start(sandbox, open_account_form(merchant_private_key, htouhui_user_id=other_id, **common))) == (
        "2002"
    )
    assert error_code(start(sandbox, open_account_form(merchant_private_key, htouhui_user_id="99", **common))) == "2002"
    for type_ in ("1", "2"):
        form = open_account_form(merchant_private_key, htouhui_user_id=user_id, type=type_, **common)
        assert error_code(start(sandbox, form)) == "3001"
    walk(
        sandbox.url,
        start(sandbox, open_account_form(merchant_private_key, htouhui_user_id=user_id, **common)),
        ["success", "fail"],
    )
    other_card = valid_id_card("11010519800101001")
    form = open_account_form(merchant_private_key, htouhui_user_id=user_id, id_card=other_card, type="1", **common)
    assert error_code(start(sandbox, form)) == "2004"
    stranger = open_account_form(protocol.generate_private_key(), htouhui_user_id=user_id, **common)
    assert error_code(start(sandbox, stranger)) == "1001"
    first = open_account_form(merchant_private_key, htouhui_user_id=user_id, type="1", request_no="OA1", **common)
    assert start(sandbox, first).status_code == 200
    assert start(sandbox, first).status_code == 200  # the same form again: the same session's page
    other = open_account_form(merchant_private_key, htouhui_user_id=user_id, type="2", request_no="OA1", **common)
    assert error_code(start(sandbox, other)) == "1003"
    bad = open_account_form(merchant_private_key, htouhui_user_id=user_id, **{**common, "notify_url": "ftp://x"})
    page = start(sandbox, bad)
    assert error_code(page) == "1002" and "notify_url" in page.text
    assert len(receiver.posts) <= 1


def test_real_name_required_for_type_0_and_no_personal_value_in_errors(
    sandbox: RunningSandbox, client: HtouhuiClient, receiver: Receiver, merchant_private_key: protocol.PrivateKey
) -> None:
    user_id = register(client)
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    form.pop("real_name")
    form = protocol.signed(form, merchant_private_key)
    page = start(sandbox, form)
    assert error_code(page) == "1002" and "real_name" in page.text
    assert valid_id_card() not in page.text


def test_step_urls_carry_only_an_opaque_token(
    sandbox: RunningSandbox, client: HtouhuiClient, receiver: Receiver, merchant_private_key: protocol.PrivateKey
) -> None:
    user_id = register(client)
    form = open_account_form(
        merchant_private_key, htouhui_user_id=user_id, third_party_user_id="alice", notify_url=receiver.url
    )
    page = start(sandbox, form)
    action = ACTION.search(page.text)
    assert action and re.fullmatch(r"/openapi/user/openAccount/step/[A-Za-z0-9_-]{20,}", action.group(1))
    for value in (form["id_card"], user_id, "alice", "13800138000"):
        assert value not in action.group(1)
    assert httpx.get(urljoin(sandbox.url, action.group(1))).status_code == 200  # reload shows the same page
    stale = httpx.post(urljoin(sandbox.url, action.group(1)), data={"step": "authorise", "outcome": "success"})
    assert stale.status_code == 409 and 'data-step="open"' in stale.text
    unknown = httpx.post(sandbox.url + "/openapi/user/openAccount/step/nope", data={"outcome": "success"})
    assert unknown.status_code == 404


def test_the_layers_open_account_page_is_accepted(
    sandbox: RunningSandbox,
    client: HtouhuiClient,
    receiver: Receiver,
    merchant_private_key: protocol.PrivateKey,
    htouhui_public_key: protocol.PublicKey,
) -> None:
    from htouhui.models import OpenAccountForm
    from htouhui.page import build_open_account_page

    user_id = register(client)
    form = OpenAccountForm(
        htouhui_user_id=user_id,
        id_card=valid_id_card(),
        real_name="张三",
        type="0",
        third_party_user_id="alice",
        notify_url=receiver.url,
        return_url="http://127.0.0.1:9/htouhui/return",
    )
    page = build_open_account_page(
        form, partner_id="P2026000001", action=sandbox.url + OPEN_ACCOUNT, merchant_key=merchant_private_key
    )
    assert page.method == "POST" and page.action == sandbox.url + OPEN_ACCOUNT
    _, location = walk(sandbox.url, httpx.post(page.action, data=page.fields), ["success"] * 3)
    assert returned(location, htouhui_public_key).status == "3"
    assert notification(receiver, htouhui_public_key).status == "3"
