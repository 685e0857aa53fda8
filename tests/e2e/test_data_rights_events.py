"""The users' data rights from the merchant's systems, against `make run`: an `ExportUser` / `EraseUser` event put on
the local bus reaches the data_rights function through the template's rule, and the `DataRightsOutcome` comes back
through a rule with an SQS target, as a merchant's customer-service system would receive it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import valid_id_card
from stack_process import BusConsumer, StackProcess, running_stack, stack_aws

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("rights")) as process:
        yield process


@pytest.fixture(scope="module")
def health(stack: StackProcess) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.url}/_local/health", timeout=10).json())


def aws(stack: StackProcess, service: str) -> Any:
    return stack_aws(stack, service)


class Desk(BusConsumer):
    """The merchant's customer-service system: puts requests on the bus, reads outcomes from its own queue."""

    def __init__(self, stack: StackProcess, bus: str) -> None:
        pattern = {"source": ["htouhui.onboarding"], "detail-type": ["DataRightsOutcome"]}
        super().__init__(stack, bus, "customer-service-outcomes", pattern)

    def ask(self, request: str, user: str, request_id: str) -> dict[str, Any]:
        detail = {"third_party_user_id": user, "request_id": request_id}
        entry = {"Source": "merchant.customer-service", "DetailType": request, "Detail": json.dumps(detail)}
        answer = self.events.put_events(Entries=[{**entry, "EventBusName": self.bus}])
        assert not answer.get("FailedEntryCount"), answer

        def answered(events: list[dict[str, Any]]) -> bool:
            return any(event["detail"].get("request_id") == request_id for event in events)

        events = self.receive(answered)
        found = [event["detail"] for event in events if event["detail"].get("request_id") == request_id]
        assert found, f"no DataRightsOutcome for {request_id}"
        return dict(found[0])


@pytest.fixture(scope="module")
def desk(stack: StackProcess, health: dict[str, Any]) -> Desk:
    return Desk(stack, health["event_bus"])


def onboard(stack: StackProcess, user: str, mobile: str, seed: str) -> str:
    id_card = valid_id_card(seed)
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{stack.url}/users", json={"third_party_user_id": user, "mobile": mobile})
        assert answer.status_code == 201, answer.text
        answer = client.post(f"{stack.url}/users/{user}/open-account", json={"id_card": id_card, "real_name": "张三"})
        assert answer.status_code == 200, answer.text
    return id_card


def user_item(stack: StackProcess, health: dict[str, Any], user: str) -> dict[str, Any]:
    table = health["tables"]["UsersTable"]
    return dict(aws(stack, "dynamodb").get_item(TableName=table, Key={"third_party_user_id": {"S": user}})["Item"])


def test_export_by_event_lands_in_the_bucket_and_the_outcome_names_it(
    stack: StackProcess, health: dict[str, Any], desk: Desk
) -> None:
    id_card = onboard(stack, "u-export", "13800000011", "11010519491231011")
    outcome = desk.ask("ExportUser", "u-export", "ticket-export-1")
    assert outcome["outcome"] == "exported" and id_card not in json.dumps(outcome)
    assert outcome["export"]["bucket"] == health["buckets"]["ExportBucket"]
    stored = aws(stack, "s3").get_object(Bucket=outcome["export"]["bucket"], Key=outcome["export"]["key"])
    copy = json.loads(stored["Body"].read())
    assert copy["user"]["id_card"] == id_card and copy["third_party_user_id"] == "u-export"
    again = desk.ask("ExportUser", "u-export", "ticket-export-1")
    assert again["export"] == outcome["export"]


def test_erase_by_event_erases_and_is_idempotent(stack: StackProcess, health: dict[str, Any], desk: Desk) -> None:
    onboard(stack, "u-erase", "13800000012", "11010519491231012")
    first = desk.ask("EraseUser", "u-erase", "ticket-erase-1")
    assert first["outcome"] == "erased"
    item = user_item(stack, health, "u-erase")
    assert "id_card" not in item and "mobile_digest" not in item and item["erased_at"]["S"] == first["erased_at"]
    second = desk.ask("EraseUser", "u-erase", "ticket-erase-2")
    assert second["outcome"] == "erased" and second["erased_at"] == first["erased_at"]
    assert user_item(stack, health, "u-erase") == item


def test_an_unknown_user_gets_a_clear_outcome_and_nothing_is_written(
    stack: StackProcess, health: dict[str, Any], desk: Desk
) -> None:
    for request in ("ExportUser", "EraseUser"):
        outcome = desk.ask(request, "u-nobody", f"ticket-{request}-nobody")
        assert outcome["outcome"] == "unknown_user", outcome
    table = health["tables"]["UsersTable"]
    answer = aws(stack, "dynamodb").get_item(TableName=table, Key={"third_party_user_id": {"S": "u-nobody"}})
    assert "Item" not in answer  # erasure never creates a tombstone for a stranger
    keys = aws(stack, "s3").list_objects_v2(Bucket=health["buckets"]["ExportBucket"]).get("Contents", [])
    assert not [key for key in keys if "nobody" in key["Key"]]
