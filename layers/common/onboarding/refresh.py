"""GET /users/{id}?refresh=true's own query budget: a window counter in DynamoDB, and the API's one-attempt query.

Htouhui's query interface is asked by reconciliation (within RECONCILE_RATE_BUDGET, paced by the worker slots) and
by the merchant's refreshes. Refreshes count against REFRESH_RATE_BUDGET, over every query_user instance at once,
so that the query interface sees at most RECONCILE_RATE_BUDGET + REFRESH_RATE_BUDGET queries a second:

- `RefreshBudget.take(now)`: one conditional UpdateItem on the refresh budget table, `ADD n :one` on the item of
  the current window (its epoch second; a budget below 1/s counts windows of ceil(1/budget) seconds), on condition
  `attribute_not_exists(n) OR n < :allowed`. True: this refresh may ask Htouhui; False: the window's budget is
  spent (nothing else was written). Each item expires (TTL `expires_at`) a few minutes after its window.
- `QueriesOnce`: the API functions' Htouhui gateway. `register` keeps the client's retries; `query` makes one
  attempt, so that one refresh taken from the budget is one query (the merchant's retry takes another).

Any DynamoDB failure but the expected condition failure is the store's (`onboarding.store.tables.call`:
`StoreUnavailable`, 503 unavailable): the budget fails closed, Htouhui is not asked.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from onboarding import dynamo

if TYPE_CHECKING:
    from htouhui.models import QueryRequest, QueryResponse, RegisterRequest, RegisterResponse
    from onboarding.core import HtouhuiGateway

WINDOW_KEY: Final = "window"  # the table's hash key: the window's first epoch second (N)
COUNT_ATTRIBUTE: Final = "n"
EXPIRES_ATTRIBUTE: Final = "expires_at"  # the table's TTL attribute
EXPIRES_AFTER_SECONDS: Final = 300  # a window's item lives this long after the window ends
# One short attempt: a refresh waits on the counter before it waits on Htouhui.
CLIENT_CONFIG: Final = {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 1, "read_timeout": 2}


class RefreshBudget:
    """At most `per_second` refreshes a second over all instances, counted in `table` (None: not configured)."""

    def __init__(self, table: str | None, per_second: float, dynamodb: Any = None) -> None:
        if not per_second > 0:
            raise ValueError("the refresh budget must be above 0")
        self.table = table
        self.per_second = per_second
        # a window of whole seconds that holds at least one refresh; the most it allows keeps every window in budget
        self.window = 1 if per_second >= 1 else math.ceil(1 / per_second)
        self.allowed = max(1, math.floor(per_second * self.window))
        self._client = dynamo.LazyClient("dynamodb", dynamodb, config=CLIENT_CONFIG)

    def use_client(self, dynamodb: Any) -> None:
        """Count through `dynamodb` from now on (tests)."""
        self._client.inject(dynamodb)

    def window_of(self, now: float) -> int:
        """The first epoch second of the window `now` falls in."""
        return math.floor(now) // self.window * self.window

    def retry_after(self, now: float) -> int:
        """Whole seconds until the next window opens (at least 1): the Retry-After of a refused refresh."""
        return max(1, math.ceil(self.window_of(now) + self.window - now))

    def take(self, now: float) -> bool:
        """Count one refresh in the window of `now` (epoch seconds); False when the window's budget is spent."""
        if not self.table:
            from onboarding.config import ConfigError

            raise ConfigError(["REFRESH_BUDGET_TABLE is required for GET ?refresh=true"])
        from onboarding.store.tables import ConditionFailed, call

        start = self.window_of(now)
        try:
            call(
                self._client,
                "update_item",
                TableName=self.table,
                Key=dynamo.item({WINDOW_KEY: start}),
                UpdateExpression="ADD #n :one SET #expires = :expires",
                ConditionExpression="attribute_not_exists(#n) OR #n < :allowed",
                ExpressionAttributeNames={"#n": COUNT_ATTRIBUTE, "#expires": EXPIRES_ATTRIBUTE},
                ExpressionAttributeValues=dynamo.values(
                    {":one": 1, ":allowed": self.allowed, ":expires": start + self.window + EXPIRES_AFTER_SECONDS}
                ),
            )
        except ConditionFailed:
            return False
        return True


class QueriesOnce:
    """A Htouhui gateway: `register` through `retrying()`, `query` through `once()` (one attempt, no retries).

    Each client is built on its first use: the register function never builds the query's, nor query_user the
    register's.
    """

    def __init__(self, retrying: Callable[[], HtouhuiGateway], once: Callable[[], HtouhuiGateway]) -> None:
        self._factories = {"register": retrying, "query": once}
        self._built: dict[str, HtouhuiGateway] = {}
        self._lock = threading.Lock()

    def _client(self, interface: str) -> HtouhuiGateway:
        with self._lock:
            if interface not in self._built:
                self._built[interface] = self._factories[interface]()
            return self._built[interface]

    def register(self, request: RegisterRequest) -> RegisterResponse:
        return self._client("register").register(request)

    def query(self, request: QueryRequest) -> QueryResponse:
        return self._client("query").query(request)
