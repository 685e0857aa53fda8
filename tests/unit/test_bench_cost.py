"""The cost model's arithmetic (bench.cost, bench.capacity): DynamoDB's billing rules on the template's tables, the
prices file, and a month's sum. The figures themselves are `make bench`'s (docs/performance.md)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import ROOT, create_tables, dynamodb_client, moto_dynamodb

sys.path.insert(0, str(ROOT))

from bench import cost
from bench.capacity import CapacityMeter, item_size


@pytest.fixture(scope="module")
def meter() -> Iterator[tuple[CapacityMeter, str]]:
    with moto_dynamodb() as url:
        client = dynamodb_client(url)
        users = f"users-{uuid.uuid4().hex[:8]}"
        create_tables(client, users, f"notifications-{uuid.uuid4().hex[:8]}")
        yield CapacityMeter(client), users


def key(user: str) -> dict[str, Any]:
    return {"third_party_user_id": {"S": user}}


def billed(meter: CapacityMeter, call: Any) -> tuple[float, float]:
    writes, reads = meter.snapshot()
    try:
        call()
    except Exception as exc:  # a failed condition is billed too
        if "ConditionalCheckFailed" not in str(exc):
            raise
    after_writes, after_reads = meter.snapshot()
    return after_writes - writes, after_reads - reads


def test_writes_are_billed_by_size_and_by_the_due_index_they_move(meter: tuple[CapacityMeter, str]) -> None:
    dynamo, table = meter
    scheduled = {**key("b1"), "check_shard": {"S": "00"}, "next_check_at": {"N": "100"}}
    assert billed(dynamo, lambda: dynamo.put_item(TableName=table, Item=scheduled)) == (2, 0)  # item + index put

    def update(expression: str, values: dict[str, Any], **extra: Any) -> Any:
        return lambda: dynamo.update_item(
            TableName=table, Key=key("b1"), UpdateExpression=expression, ExpressionAttributeValues=values, **extra
        )

    assert billed(dynamo, update("SET next_check_at = :d", {":d": {"N": "900"}})) == (3, 0)  # index: delete + put
    assert billed(dynamo, update("SET check_lease = :l", {":l": {"N": "5"}})) == (1, 0)  # not in the index
    refused = update(
        "SET check_lease = :l", {":l": {"N": "6"}, ":x": {"N": "1"}}, ConditionExpression="check_lease = :x"
    )
    assert billed(dynamo, refused) == (1, 0)  # a failed condition costs its write, and no index write
    left = update("REMOVE check_shard SET a = :a", {":a": {"S": "x"}})
    assert billed(dynamo, left) == (2, 0)  # out of the sparse index: one index delete
    big = {**key("b2"), "blob": {"S": "x" * 1500}}
    assert item_size(big) == len("third_party_user_id") + 2 + len("blob") + 1500
    assert billed(dynamo, lambda: dynamo.put_item(TableName=table, Item=big)) == (2, 0)  # 1.5 KB: two units
    assert billed(dynamo, lambda: dynamo.get_item(TableName=table, Key=key("b2"), ConsistentRead=True)) == (0, 1)
    assert billed(dynamo, lambda: dynamo.get_item(TableName=table, Key=key("b2"))) == (0, 0.5)


def test_the_prices_file_gives_each_price_a_unit_and_a_source() -> None:
    prices = cost.load_prices()
    assert prices["region"] and prices["read_on"].startswith("2026-12") and prices["currency"] == "USD"
    assert all(entry["usd"] >= 0 and entry["unit"] and entry["source"] for entry in prices["prices"].values())


def test_a_month_is_the_sum_of_its_components_and_writes_scale_with_the_units_per_check() -> None:
    flows = {name: {"WRU": 2.0, "RRU": 1.0} for name in ("register", "open_account", "notify", "browser return")}
    flows["query_user"] = {"WRU": 0.0, "RRU": 1.0}
    units = {"WRU_per_check": 7.0, "RRU_per_check": 0.0, "index_query_RRU_per_run": 8.0, "merchant_flows": flows}
    memory = dict.fromkeys(cost.ASSUMED["duration_s"], 512) | {"reconcile_dispatch": 1769, "reconcile_worker": 256}

    def month(per_check: float, *, nat: bool = False) -> dict[str, Any]:
        return cost.monthly({**units, "WRU_per_check": per_check}, {}, queries_per_day=1.44e6,
                            prices=cost.load_prices(), memory_mb=memory, pacing_interval_s=0.5,
                            claim_seconds_per_claim=0.002, nat=nat)  # fmt: skip

    seven, fourteen = month(7.0), month(14.0)
    assert seven["monthly_usd"] == pytest.approx(sum(seven["components"].values()), abs=0.05)
    assert seven["reconciliation_monthly_usd"] == pytest.approx(sum(seven["reconciliation"].values()), abs=0.05)
    writes = seven["reconciliation"]["dynamodb_writes"]
    assert fourteen["reconciliation"]["dynamodb_writes"] == pytest.approx(2 * writes, rel=1e-3)
    assert writes == pytest.approx(1.44e6 * 7 * 30 * 0.625e-6, rel=1e-3)
    # the worker is billed for its paced sleep: one interval of a slot per query, at its memory
    worker = seven["reconciliation"]["lambda_gb_s_worker (paced sleep included)"]
    assert worker == pytest.approx(1.44e6 * 0.5 * 0.25 * 30 * 0.0000133334, rel=1e-3)
    assert seven["components"]["nat"] == 0 and month(7.0, nat=True)["components"]["nat"] > 60
