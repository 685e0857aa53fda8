"""DynamoDB's billed request units, counted the way DynamoDB bills them, around a real (moto) client.

moto answers `ReturnConsumedCapacity` with a flat 1.0 a request whatever the item's size or its indexes, so it
cannot say what a check costs. `CapacityMeter` passes every call on to the client it wraps and, for each
write, reads the item before and after (those reads are not counted) and applies DynamoDB's rules (the developer
guide's read-write-operations.html and GSI.html#GSI.ThroughputConsiderations):

- a write (PutItem, UpdateItem, DeleteItem) costs one write unit per KB of the larger of the item's old and new
  images, at least one; a write whose condition fails still costs the units of the item as stored;
- each global secondary index the write touches costs too: an entry appearing or disappearing one write, an
  entry whose index key changed two (a delete and a put), an entry whose projected attributes changed one;
- a TransactWriteItems item costs twice its table units;
- a GetItem costs one read unit per 4 KB (half when eventually consistent), a Query the summed size of the
  items it returned, per 4 KB, at least one unit, halved when eventually consistent (an index always is).

Item sizes follow DynamoDB's sizing: the UTF-8 length of each attribute name plus its value's size.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

KB = 1024
WRITES = ("put_item", "update_item", "delete_item")


def value_size(value: Mapping[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        digits = str(content).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + value_size(inner) + 1 for name, inner in content.items())
    if kind == "L":
        return 3 + sum(value_size(inner) + 1 for inner in content)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: inner}) for inner in content)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]  # the index's own key attributes
    projected: tuple[str, ...] | None  # None: ALL; otherwise the attributes besides the keys


@dataclass(frozen=True)
class TableShape:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]


class CapacityMeter:
    """A DynamoDB client that bills each request (see the module's docstring) and passes it on."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._shapes: dict[str, TableShape] = {}
        self.write_units: defaultdict[str, float] = defaultdict(float)  # by "<operation> <table|index>"
        self.read_units: defaultdict[str, float] = defaultdict(float)  # eventually consistent reads count halves
        self.requests: Counter[str] = Counter()

    def snapshot(self) -> tuple[float, float]:
        return sum(self.write_units.values()), sum(self.read_units.values())

    # --- the tables' shapes -------------------------------------------------------------------------------
    def shape(self, table: str) -> TableShape:
        if table not in self._shapes:
            described = self._client.describe_table(TableName=table)["Table"]
            keys = tuple(part["AttributeName"] for part in described["KeySchema"])
            indexes = []
            for index in described.get("GlobalSecondaryIndexes", []):
                projection = index.get("Projection", {})
                kind = projection.get("ProjectionType", "ALL")
                extra = None if kind == "ALL" else tuple(projection.get("NonKeyAttributes", ()))
                own = tuple(part["AttributeName"] for part in index["KeySchema"])
                indexes.append(Index(index["IndexName"], own, extra))
            self._shapes[table] = TableShape(keys, tuple(indexes))
        return self._shapes[table]

    def _key_of(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.shape(table).keys}

    def _read(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return found

    # --- billing --------------------------------------------------------------------------------------------
    def _entry(self, table: str, index: Index, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not item or any(name not in item for name in index.keys):
            return None
        names = set(index.keys) | set(self.shape(table).keys)
        if index.projected is None:
            return dict(item)
        names |= set(index.projected)
        return {name: value for name, value in item.items() if name in names}

    def _bill_write(self, operation: str, table: str, old: Any, new: Any, *, failed: bool, factor: int) -> None:
        self.requests[f"{operation} {table}"] += 1
        size = item_size(old) if failed else max(item_size(old), item_size(new))
        self.write_units[f"{operation} {table}"] += factor * max(1, math.ceil(size / KB))
        if failed:
            return
        for index in self.shape(table).indexes:
            before, after = self._entry(table, index, old), self._entry(table, index, new)
            units = 0
            if before is not None and after is not None:
                if any(before.get(name) != after.get(name) for name in index.keys):
                    units = math.ceil(item_size(before) / KB) + math.ceil(item_size(after) / KB)
                elif before != after:
                    units = math.ceil(max(item_size(before), item_size(after)) / KB)
            elif before is not None:
                units = math.ceil(item_size(before) / KB)
            elif after is not None:
                units = math.ceil(item_size(after) / KB)
            if units:
                self.write_units[f"{operation} {table} index {index.name}"] += units

    def _write(self, operation: str, **request: Any) -> Any:
        table = request["TableName"]
        key = request["Key"] if "Key" in request else self._key_of(table, request["Item"])
        old = self._read(table, key)
        try:
            answer = getattr(self._client, operation)(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                self._bill_write(operation, table, old, None, failed=True, factor=1)
            raise
        self._bill_write(operation, table, old, self._read(table, key), failed=False, factor=1)
        return answer

    def put_item(self, **request: Any) -> Any:
        return self._write("put_item", **request)

    def update_item(self, **request: Any) -> Any:
        return self._write("update_item", **request)

    def delete_item(self, **request: Any) -> Any:
        return self._write("delete_item", **request)

    def transact_write_items(self, **request: Any) -> Any:
        parts = []
        for entry in request["TransactItems"]:
            ((kind, body),) = entry.items()
            table = body["TableName"]
            key = body["Key"] if "Key" in body else self._key_of(table, body["Item"])
            parts.append((kind, table, key, self._read(table, key)))
        try:
            answer = self._client.transact_write_items(**request)
        except ClientError:
            for kind, table, _key, old in parts:
                self._bill_write(f"transact {kind}", table, old, None, failed=True, factor=2)
            raise
        for kind, table, key, old in parts:
            new = old if kind == "ConditionCheck" else self._read(table, key)
            self._bill_write(f"transact {kind}", table, old, new, failed=False, factor=2)
        return answer

    def get_item(self, **request: Any) -> Any:
        answer = self._client.get_item(**request)
        units = max(1, math.ceil(item_size(answer.get("Item")) / (4 * KB)))
        self.read_units[f"get_item {request['TableName']}"] += units * (1 if request.get("ConsistentRead") else 0.5)
        self.requests[f"get_item {request['TableName']}"] += 1
        return answer

    def query(self, **request: Any) -> Any:
        answer = self._client.query(**request)
        size = sum(item_size(item) for item in answer.get("Items", []))
        consistent = request.get("ConsistentRead") and "IndexName" not in request
        where = request["TableName"] + (f" index {request['IndexName']}" if "IndexName" in request else "")
        self.read_units[f"query {where}"] += max(1, math.ceil(size / (4 * KB))) * (1 if consistent else 0.5)
        self.requests[f"query {where}"] += 1
        return answer

    def __getattr__(self, name: str) -> Any:  # anything else (describe_table, scan) passes through, unbilled
        return getattr(self._client, name)
