"""EventBridge-style event patterns, as Lambda uses them for event source FilterCriteria.

Supported: exact values, `prefix`, `suffix`, `anything-but` (values or a prefix), `exists`, `numeric` ranges,
`equals-ignore-case`, and `$or`. Enough for stream filters; the event bus itself is moto's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_MISSING = object()


def matches(pattern: Mapping[str, Any] | str, event: Mapping[str, Any]) -> bool:
    if isinstance(pattern, str):
        pattern = json.loads(pattern)
    assert isinstance(pattern, Mapping)
    return _object(pattern, event)


def _object(pattern: Mapping[str, Any], event: Any) -> bool:
    for key, rule in pattern.items():
        if key == "$or":
            if not any(_object(option, event) for option in rule):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if value is _MISSING or not _object(rule, value):
                return False
        elif isinstance(rule, list):
            if not _leaf(rule, value):
                return False
        else:
            return False
    return True


def _leaf(rules: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, Mapping) and "exists" in rule:
            if (value is not _MISSING) == bool(rule["exists"]):
                return True
            continue
        if value is _MISSING:
            continue
        if any(_one(rule, item) for item in values):
            return True
    return False


def _one(rule: Any, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return bool(rule == value) and type(rule) is type(value)
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(str(rule["prefix"]))
    if "suffix" in rule:
        return isinstance(value, str) and value.endswith(str(rule["suffix"]))
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        if isinstance(excluded, Mapping) and "prefix" in excluded:
            return isinstance(value, str) and not value.startswith(str(excluded["prefix"]))
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded
    if "numeric" in rule:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        terms = rule["numeric"]
        for index in range(0, len(terms), 2):
            operator, bound = terms[index], float(terms[index + 1])
            checks = {
                "=": number == bound,
                "<": number < bound,
                "<=": number <= bound,
                ">": number > bound,
                ">=": number >= bound,
            }
            if not checks.get(operator, False):
                return False
        return True
    return False
