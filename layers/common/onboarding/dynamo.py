"""The one way the application speaks DynamoDB's wire form, pages through an answer, and makes a boto3 client.

- `encode` / `decode` / `item` / `plain` / `values`: boto3's own `TypeSerializer` and `TypeDeserializer`, with
  integral numbers read back as `int` (DynamoDB numbers are decimals on the wire);
- `pages(call, request)`: every page of a Query or Scan, following `LastEvaluatedKey`;
- `LazyClient("dynamodb")`: a boto3 client created on first use (or injected), thread-safe, so that a cold start
  that never needs AWS never builds one and tests set moto up first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

AttributeValue = dict[str, Any]
Item = Mapping[str, Mapping[str, Any]]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def encode(value: Any) -> AttributeValue:
    """One Python value as a DynamoDB attribute value (`{"S": ...}`, `{"N": ...}`, `{"M": ...}`, ...)."""
    return dict(_serializer.serialize(value))


def decode(value: Mapping[str, Any]) -> Any:
    """One attribute value as plain Python: integral numbers as int, other numbers as float."""
    wire: Any = dict(value)
    return _plain(_deserializer.deserialize(wire))


def item(fields: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """A whole item (or key) from plain Python; None values are left out."""
    return {name: encode(value) for name, value in fields.items() if value is not None}


def values(placeholders: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """ExpressionAttributeValues from plain Python (`{":now": "2026-...", ":zero": 0}`)."""
    return {name: encode(value) for name, value in placeholders.items()}


def plain(stored: Item) -> dict[str, Any]:
    """A whole item as plain Python."""
    return {name: decode(value) for name, value in stored.items()}


def text(stored: Item, name: str) -> str | None:
    """A string attribute, or None when absent or of another type."""
    value = stored.get(name)
    return str(value["S"]) if isinstance(value, Mapping) and "S" in value else None


def number(stored: Item, name: str) -> int | None:
    """An integral number attribute, or None when absent or of another type (ValueError when not integral)."""
    value = stored.get(name)
    return int(value["N"]) if isinstance(value, Mapping) and "N" in value else None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(inner) for inner in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(inner) for inner in value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if hasattr(value, "value") and type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def pages(call: Callable[..., Mapping[str, Any]], request: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every page of a Query or Scan: `call(**request)` again from each `LastEvaluatedKey` until there is none."""
    current = dict(request)
    while True:
        answer = call(**current)
        yield answer
        last = answer.get("LastEvaluatedKey")
        if not last:
            return
        current["ExclusiveStartKey"] = last


class LazyClient:
    """A boto3 client of one service, created on first use unless one was injected.

    boto3 comes from the Lambda runtime and is paid for only when a request first needs AWS.
    """

    def __init__(self, service: str, client: Any = None, *, config: Mapping[str, Any] | None = None) -> None:
        self.service = service
        self._client = client
        self._config = dict(config or {})
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    make: Any = boto3.client  # typed per service name; ours is a variable
                    if self._config:
                        from botocore.config import Config

                        self._client = make(self.service, config=Config(**self._config))
                    else:
                        self._client = make(self.service)
        return self._client

    @property
    def built(self) -> Any | None:
        """The client if it has been made or injected, else None (looking builds nothing)."""
        return self._client

    def inject(self, client: Any | None) -> None:
        """Use `client` from now on (tests); None drops it so that the next call creates one."""
        with self._lock:
            self._client = client
