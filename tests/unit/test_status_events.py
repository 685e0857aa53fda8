"""UserStatusChanged details derived from DynamoDB stream records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from onboarding.status_events import DETAIL_TYPE, SOURCE, event_id, put_events_entry, status_change


def image(status: int | None = None, **extra: str) -> dict[str, Any]:
    item: dict[str, Any] = {"third_party_user_id": {"S": "shop-1"}, "htouhui_user_id": {"S": "10001"}}
    if status is not None:
        item["status"] = {"N": str(status)}
    item.update({name: {"S": value} for name, value in extra.items()})
    return item


def record(event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    change: dict[str, Any] = {"ApproximateCreationDateTime": 1795852800, "SequenceNumber": "1"}
    if old is not None:
        change["OldImage"] = old
    if new is not None:
        change["NewImage"] = new
    return {"eventName": event, "dynamodb": change}


def test_a_rise_is_published() -> None:
    assert status_change(record("MODIFY", image(1), image(3))) == {
        "version": 1,
        "event_id": event_id("shop-1", 3),
        "third_party_user_id": "shop-1",
        "htouhui_user_id": "10001",
        "old_status": 1,
        "new_status": 3,
        "ready_for_debt_matching": True,
    }


def test_the_first_status_has_no_old_one() -> None:
    detail = status_change(record("MODIFY", image(), image(0)))
    assert detail is not None and detail["old_status"] is None and detail["new_status"] == 0
    assert detail["ready_for_debt_matching"] is False


@pytest.mark.parametrize(
    "unchanged",
    [
        record("MODIFY", image(2), image(2, borrower="1")),  # details filled, same level
        record("MODIFY", image(), image(id_card="11010519491231002X")),  # open requested
        record("INSERT", None, image(registration="CLAIMED")),  # a registration claim
        record("REMOVE", image(), None),  # a released claim
    ],
)
def test_changes_without_a_new_status_publish_nothing(unchanged: dict[str, Any]) -> None:
    assert status_change(unchanged) is None
    assert put_events_entry(unchanged, "bus") is None


def test_entry_has_the_contract_names_and_no_personal_data() -> None:
    new = image(3, id_card="11010519491231002X", bank_card_number="6222020200112233445", mobile_digest="ab")
    entry = put_events_entry(record("MODIFY", image(2), new), "onboarding-bus")
    assert entry is not None
    assert entry["Source"] == SOURCE == "htouhui.onboarding"
    assert entry["DetailType"] == DETAIL_TYPE == "UserStatusChanged"
    assert entry["EventBusName"] == "onboarding-bus"
    assert entry["Time"] == datetime.fromtimestamp(1795852800, UTC)
    detail = json.loads(entry["Detail"])
    assert set(detail) == {
        "version",
        "event_id",
        "third_party_user_id",
        "htouhui_user_id",
        "old_status",
        "new_status",
        "ready_for_debt_matching",
    }
    assert "11010519491231002X" not in entry["Detail"] and "6222020200112233445" not in entry["Detail"]


def test_unreadable_records_raise_value_error() -> None:
    with pytest.raises(ValueError, match="status"):
        status_change(record("MODIFY", image(1), {**image(), "status": {"N": "three"}}))
    with pytest.raises(ValueError, match="third_party_user_id"):
        status_change(record("MODIFY", None, {"status": {"N": "1"}}))


def test_event_ids_are_deterministic_per_user_and_status() -> None:
    first = status_change(record("MODIFY", image(1), image(3)))
    again = status_change(record("MODIFY", image(), image(3)))  # a jump from none to 3: the same arrival at 3
    other = status_change(record("MODIFY", image(1), image(2)))
    assert first is not None and again is not None and other is not None
    assert first["event_id"] == again["event_id"] == event_id("shop-1", 3)
    assert other["event_id"] != first["event_id"] != event_id("shop-2", 3)


def test_the_schema_accepts_every_published_detail_and_refuses_a_broken_one() -> None:
    import jsonschema
    from helpers import ROOT

    schema = json.loads((ROOT / "events" / "schemas" / "UserStatusChanged.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for old, new in ((None, 0), (0, 1), (1, 3), (None, 3), (2, 3)):
        detail = status_change(record("MODIFY", image(old) if old is not None else image(), image(new)))
        assert detail is not None
        validator.validate(detail)
        validator.validate({**detail, "a_field_added_later": "x"})  # consumers must tolerate additions
    broken = status_change(record("MODIFY", image(1), image(3)))
    assert broken is not None
    for change in ({"new_status": 4}, {"event_id": "not-a-uuid"}, {"version": "1"}, {"ready_for_debt_matching": 1}):
        assert not validator.is_valid({**broken, **change}), change
    assert not validator.is_valid({key: value for key, value in broken.items() if key != "event_id"})
