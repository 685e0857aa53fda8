"""GET ?refresh=true's own budget (onboarding.refresh): the window counter against moto's DynamoDB, with the time
given (never slept), its setting, its answer, and the API's one-attempt query."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stack.aws import create_template_tables

from onboarding import refresh
from onboarding.api import error_for, error_response
from onboarding.config import ConfigError, Settings, read_settings
from onboarding.errors import RefreshBudgetSpent, StoreUnavailable

TABLE = "refresh-budget"
SECOND = 1_796_000_000  # an epoch second that starts a window of 1, 2, 4 and 5 seconds alike


@pytest.fixture
def dynamodb(in_process_aws: None) -> Iterator[Any]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_template_tables(client, {"RefreshBudgetTable": TABLE})
    yield client


def _budget(per_second: float, dynamodb: Any) -> refresh.RefreshBudget:
    return refresh.RefreshBudget(TABLE, per_second, dynamodb)


def _items(dynamodb: Any) -> dict[int, dict[str, int]]:
    items = dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return {
        int(item["window"]["N"]): {"n": int(item["n"]["N"]), "expires_at": int(item["expires_at"]["N"])}
        for item in items
    }


def test_the_budget_reached_in_a_second_refuses_and_the_next_second_allows(dynamodb: Any) -> None:
    budget = _budget(3, dynamodb)
    assert [budget.take(SECOND + fraction) for fraction in (0.0, 0.2, 0.5, 0.9)] == [True, True, True, False]
    assert budget.take(SECOND + 0.99) is False  # refused again: the count stays at the budget
    assert _items(dynamodb) == {SECOND: {"n": 3, "expires_at": SECOND + 1 + refresh.EXPIRES_AFTER_SECONDS}}
    assert budget.retry_after(SECOND + 0.9) == 1
    assert budget.take(SECOND + 1) is True  # a new second, a new window
    assert budget.take(SECOND + 1.5) is True
    assert _items(dynamodb)[SECOND + 1]["n"] == 2 and _items(dynamodb)[SECOND]["n"] == 3


def test_a_fractional_budget_allows_its_whole_part_each_second(dynamodb: Any) -> None:
    budget = _budget(2.5, dynamodb)
    assert (budget.window, budget.allowed) == (1, 2)  # never more than 2.5 in any second
    assert [budget.take(SECOND + 0.1 * step) for step in range(3)] == [True, True, False]


@pytest.mark.parametrize(("per_second", "window"), [(0.5, 2), (0.25, 4), (0.2, 5), (0.3, 4)])
def test_a_budget_below_one_a_second_counts_windows_of_ceil_one_over_budget(
    dynamodb: Any, per_second: float, window: int
) -> None:
    budget = _budget(per_second, dynamodb)
    assert (budget.window, budget.allowed) == (window, 1)
    assert budget.take(SECOND) is True
    assert budget.take(SECOND + window - 0.5) is False  # still the same window
    assert budget.retry_after(SECOND + 0.5) == window  # ceil(window - 0.5): until the window ends
    assert budget.retry_after(SECOND + window - 0.5) == 1
    assert budget.take(SECOND + window) is True  # the next window
    assert set(_items(dynamodb)) == {SECOND, SECOND + window}
    assert _items(dynamodb)[SECOND]["expires_at"] == SECOND + window + refresh.EXPIRES_AFTER_SECONDS


def test_a_counter_that_cannot_be_written_fails_closed(dynamodb: Any) -> None:
    with pytest.raises(StoreUnavailable, match="update_item"):
        refresh.RefreshBudget("no-such-table", 5, dynamodb).take(SECOND)
    with pytest.raises(ConfigError, match="REFRESH_BUDGET_TABLE"):
        refresh.RefreshBudget(None, 5, dynamodb).take(SECOND)
    with pytest.raises(ValueError, match="above 0"):
        refresh.RefreshBudget(TABLE, 0, dynamodb)


def test_the_client_is_made_on_first_use_only(in_process_aws: None) -> None:
    budget = refresh.RefreshBudget(TABLE, 5)
    assert budget._client.built is None  # a GET without refresh never builds it
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_template_tables(client, {"RefreshBudgetTable": TABLE})
    assert budget.take(SECOND) is True and budget._client.built is not None


def test_refused_is_503_upstream_busy_with_retry_after() -> None:
    error = error_for(RefreshBudgetSpent(4))
    assert (error.status, error.code, error.message) == (
        503,
        "upstream_busy",
        "refresh budget spent this second; try again",
    )
    answer = error_response(error, "r-1")
    assert answer.headers["Retry-After"] == "4"
    body = json.loads(str(answer.body))
    assert body["error"]["code"] == "upstream_busy" and "htouhui_code" not in body["error"]
    assert error_response(error_for(RefreshBudgetSpent()), "r-2").headers["Retry-After"] == "1"


BASE = {"HTOUHUI_PARTNER_ID": "P1", "MERCHANT_PRIVATE_KEY": "x", "HTOUHUI_PUBLIC_KEY": "y"}


def test_the_setting_has_its_default_and_its_rule() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.refresh_rate_budget, settings.refresh_budget_table) == (5.0, None)
    chosen = Settings.from_env({**BASE, "REFRESH_RATE_BUDGET": "0.2", "REFRESH_BUDGET_TABLE": "t"})
    assert (chosen.refresh_rate_budget, chosen.refresh_budget_table) == (0.2, "t")
    for value, rule in (("0", "between 0.01 and 10000"), ("20000", "between"), ("fast", "a number")):
        with pytest.raises(ConfigError) as caught:
            read_settings({**BASE, "REFRESH_RATE_BUDGET": value})
        assert [p for p in caught.value.problems if p.startswith(f"REFRESH_RATE_BUDGET must be {rule}")], value


class _Gateway:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def register(self, request: Any) -> Any:
        self.log.append(f"{self.name}.register")

    def query(self, request: Any) -> Any:
        self.log.append(f"{self.name}.query")


def test_the_api_queries_once_and_registers_with_retries() -> None:
    log: list[str] = []
    built: list[str] = []

    def factory(name: str) -> Any:
        def build() -> _Gateway:
            built.append(name)
            return _Gateway(name, log)

        return build

    gateway = refresh.QueriesOnce(factory("retrying"), factory("once"))
    gateway.query(None)
    gateway.query(None)
    assert built == ["once"]  # query_user never builds the register client
    gateway.register(None)
    assert log == ["once.query", "once.query", "retrying.register"] and built == ["once", "retrying"]
