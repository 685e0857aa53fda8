"""The whole onboarding through the handlers: moto DynamoDB, the sandbox over HTTP, the bridge.

register -> open-account form -> the sandbox's pages -> the notification (delivered by the sandbox to
the bridge, i.e. to the notify handler) -> the browser return -> query at status 3. And a capture of
every log line of that run, in which no personal data may appear.
"""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import Stack, header, json_body, load_event, valid_id_card

# Powertools warns when an invocation counted nothing: normal here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

MOBILE = "13912345678"
PASSWORD = "Pw-0123456789"
REAL_NAME = "王小明"
ID_CARD = valid_id_card("44030519851231123")


def _onboard(stack: Stack, user: str) -> dict[str, Any]:
    created = stack.register(user, MOBILE, PASSWORD)
    assert created["statusCode"] == 201, created
    view = json_body(created)
    assert view["stage"] == "REGISTERED" and view["status"] is None and view["htouhui_user_id"]

    page_answer = stack.open_account(user, {"id_card": ID_CARD, "real_name": REAL_NAME})
    assert page_answer["statusCode"] == 200, page_answer
    assert header(page_answer, "Cache-Control") == "no-store"
    page = json_body(page_answer)
    assert page["method"] == "POST" and page["action"] == f"{stack.sandbox.url}/openapi/user/openAccount"
    assert page["fields"]["notify_url"] == f"{stack.bridge.url}/htouhui/notify"
    assert page["fields"]["return_url"] == f"{stack.bridge.url}/htouhui/return"
    assert 'method="post"' in page["html"]
    assert json_body(stack.query(user))["stage"] == "OPEN_REQUESTED"

    finished = stack.walk_pages(page)
    assert finished.status_code == 302, finished.text
    location = finished.headers["location"]
    assert location.startswith(f"{stack.bridge.url}/htouhui/return?")

    deliveries = stack.wait_deliveries(user, lambda items: any(item["state"] == "delivered" for item in items))
    assert [item["status"] for item in deliveries] == ["3"]

    shown = stack.follow_return(location)
    assert shown.status_code == 200 and "status 3" in shown.text
    assert shown.headers["content-type"].startswith("text/html")

    final = stack.query(user)
    assert final["statusCode"] == 200
    return dict(json_body(final))


def test_whole_onboarding_reaches_status_3(stack: Stack) -> None:
    view = _onboard(stack, "u-whole-1")
    assert view["status"] == 3 and view["stage"] == "COMPLETED" and view["ready_for_debt_matching"] is True
    assert view["id_card"] == ID_CARD[:3] + "*" * 11 + ID_CARD[-4:]
    assert re.fullmatch(r"\*+[0-9]{4}", view["bank_card_number"])
    item = stack.user_item("u-whole-1")
    assert "next_check_at" not in item and item["status"] == {"N": "3"}  # finished: off the schedule
    assert [record["notify_no"]["S"] for record in stack.history()]  # the notification is kept once
    assert len(stack.history()) == 1
    assert [call.interface for call in stack.calls] == ["register"]
    functions = {function for function, _, _ in stack.bridge.invocations}
    assert functions == {"notify"}  # the sandbox and the browser reached us through the bridge


def test_refresh_asks_htouhui_and_html_page_on_accept(stack: Stack) -> None:
    user = "u-refresh-1"
    assert stack.register(user, "13712345678")["statusCode"] == 201
    answer = stack.open_account(user, {"id_card": ID_CARD, "real_name": REAL_NAME}, {"accept": "text/html"})
    assert answer["statusCode"] == 200
    assert header(answer, "Content-Type") == "text/html; charset=utf-8"
    assert "form-action" in (header(answer, "Content-Security-Policy") or "")
    assert header(answer, "Cache-Control") == "no-store"
    assert answer["body"].lstrip().startswith("<!doctype html>")
    # Htouhui knows the user at level 2 (the notification was lost): refresh=true finds it.
    stack.control(
        "POST", "users", {"third_party_user_id": user, "status": 2, "id_card": ID_CARD, "mobile": "13712345678"}
    )
    refreshed = json_body(stack.query(user, refresh=True))
    assert refreshed["status"] == 2 and refreshed["stage"] == "PASSWORD_SET"
    assert [call.interface for call in stack.calls] == ["register", "query"]


def test_browser_return_redirects_to_the_frontend(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTEND_RETURN_URL", "https://shop.example.com/onboarding/done?from=htouhui")
    user = "u-front-1"
    assert stack.register(user, "13612345678")["statusCode"] == 201
    page = json_body(stack.open_account(user, {"id_card": ID_CARD, "real_name": REAL_NAME}))
    finished = stack.walk_pages(page, ["success", "fail"])  # stops at the trading password: level 1
    answer = stack.follow_return(finished.headers["location"])
    assert answer.status_code == 302
    target = urlsplit(answer.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "shop.example.com", "/onboarding/done")
    assert parse_qs(target.query) == {"from": ["htouhui"], "third_party_user_id": [user], "status": ["1"]}
    assert json_body(stack.query(user))["status"] == 1


def test_register_double_submit_makes_one_htouhui_call(stack: Stack) -> None:
    user = "u-double-1"
    stack.control("POST", "faults", {"interface": "register", "latency_ms": 400, "count": 1})
    answers: list[dict[str, Any]] = []

    def submit() -> None:
        answers.append(stack.register(user, "13512345678"))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(answer["statusCode"] for answer in answers)
    assert statuses == [201, 409], answers
    conflict = next(json_body(answer) for answer in answers if answer["statusCode"] == 409)
    assert conflict["error"]["code"] == "conflict" and "in progress" in conflict["error"]["message"]
    again = stack.register(user, "13512345678")
    assert again["statusCode"] == 200
    assert (
        json_body(again)["htouhui_user_id"]
        == json_body(next(a for a in answers if a["statusCode"] == 201))["htouhui_user_id"]
    )
    assert [call.interface for call in stack.calls] == ["register"]  # one call to Htouhui, for three submits
    other = stack.register(user, "13512345679")
    assert other["statusCode"] == 409 and len(stack.calls) == 1


def test_sample_events_run_against_the_stack(stack: Stack) -> None:
    """events/register.json and events/query_user.json are real requests (sam local invoke -e)."""
    registered = stack.invoke("register", load_event("register.json"))
    assert registered["statusCode"] == 201
    assert json_body(stack.invoke("query_user", load_event("query_user.json")))["third_party_user_id"] == "u-1001"
    page = stack.invoke("open_account", load_event("open_account.json"))
    assert page["statusCode"] == 200 and json_body(page)["fields"]["third_party_user_id"] == "u-1001"
    html = stack.invoke("open_account", load_event("open_account_html.json"))
    assert header(html, "Content-Type") == "text/html; charset=utf-8"
    refreshed = stack.invoke("query_user", load_event("query_user_refresh.json"))
    assert refreshed["statusCode"] == 200


# --- no personal data in any log line ---------------------------------------------------------------


def test_no_personal_data_in_any_log_line(stack: Stack, captured_logs: io.StringIO) -> None:
    view = _onboard(stack, "u-logs-1")
    assert view["status"] == 3
    # failures log too: a bad field, a conflict, a bad notification
    stack.register("u-logs-2", "1391234567")
    stack.register("u-logs-3", MOBILE)  # Htouhui: 2003, the mobile belongs to u-logs-1
    stack.notify({"third_party_user_id": "u-logs-1", "bank_card_number": "6222020200112233445", "sign": "x"})
    text = captured_logs.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 10, text
    bank_card = str(stack.user_item("u-logs-1")["bank_card_number"]["S"])
    for secret in (MOBILE, PASSWORD, REAL_NAME, ID_CARD, ID_CARD.lower(), bank_card, "1391234567"):
        offending = [line for line in lines if secret in line]
        assert not offending, f"personal data in the logs: {offending[:3]}"
    structured = [json.loads(line) for line in lines if line.startswith("{")]
    correlated = [entry for entry in structured if entry.get("correlation_id")]
    assert correlated, "API requests carry the API Gateway request id as correlation_id"
