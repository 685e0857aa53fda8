"""UserStatusChanged details derived from DynamoDB stream records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from onboarding.status_events import DETAIL_TYPE, SOURCE, put_events_entry, status_change


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
