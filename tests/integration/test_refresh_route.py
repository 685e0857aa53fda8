"""GET ?refresh=true within REFRESH_RATE_BUDGET, through the query_user handler over the integration stack (moto's
DynamoDB with the template's refresh budget table, the sandbox as Htouhui): over budget, 503 upstream_busy with
Retry-After, Htouhui not asked and nothing stored changed; a GET without refresh still answers; the next second
allows again (the stack's clock moved, never slept); a refresh's query is one attempt."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Stack, dump, json_body, valid_id_card

ID_CARD = valid_id_card("44030119900101002")
USER = "u-budget"


@pytest.fixture
def budgeted(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("REFRESH_RATE_BUDGET", "2")  # read when the first request builds the settings
    assert stack.register(USER, "13812347777")["statusCode"] == 201
    assert stack.open_account(USER, {"id_card": ID_CARD, "real_name": "王五"})["statusCode"] == 200
    stack.control("POST", "users", {"third_party_user_id": USER, "status": 2, "id_card": ID_CARD})
    return stack


def _queries(stack: Stack) -> int:
    return sum(call.interface == "query" for call in stack.calls)


def test_over_the_refresh_budget_is_503_with_retry_after_and_changes_nothing(
    budgeted: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = budgeted
    for _ in range(2):
        answer = stack.query(USER, refresh=True)
        assert answer["statusCode"] == 200 and json_body(answer)["status"] == 2, answer
    assert _queries(stack) == 2
    before = dump(stack)
    capsys.readouterr()

    refused = stack.query(USER, refresh=True)  # the third in the same second (the stack's clock stands still)
    assert refused["statusCode"] == 503, refused
    assert refused["headers"]["Retry-After"] == "1"
    error: dict[str, Any] = json_body(refused)["error"]
    assert error["code"] == "upstream_busy" and error["message"] == "refresh budget spent this second; try again"
    assert "htouhui_code" not in error and error["request_id"]
    assert _queries(stack) == 2, "Htouhui was asked over the budget"
    assert dump(stack) == before, "a refused refresh changed the stored state"
    assert '"RefreshesRefused"' in capsys.readouterr().out  # counted (EMF)

    stored = stack.query(USER)  # without refresh: the stored view, whatever the budget
    assert stored["statusCode"] == 200 and json_body(stored)["status"] == 2

    stack.clock.advance(1)  # the next second: a new window
    again = stack.query(USER, refresh=True)
    assert again["statusCode"] == 200, again
    assert _queries(stack) == 3


def test_a_refresh_asks_htouhui_once(budgeted: Stack) -> None:
    stack = budgeted
    stack.control("POST", "faults", {"interface": "query", "busy": True})
    before = dump(stack)
    busy = stack.query(USER, refresh=True)
    assert busy["statusCode"] == 503 and json_body(busy)["error"]["htouhui_code"] == "9999", busy
    # HTOUHUI_MAX_ATTEMPTS=2 for register; a refresh is one query of its budget, the merchant's retry another
    assert [call.outcome for call in stack.calls if call.interface == "query"] == ["9999"]
    assert dump(stack) == before
