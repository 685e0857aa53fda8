"""onboarding.store against a real moto DynamoDB server, tables created with the design's keys and indexes."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from onboarding.errors import (
    HtouhuiUserIdMismatch,
    IdCardMismatch,
    RegistrationRequired,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.schedule import Slot
from onboarding.status_events import event_id
from onboarding.store import ApplyOutcome, ClaimOutcome, StatusUpdate, UserStore

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
ID_CARD = "11010519491231002X"
OTHER_ID_CARD = "110105194912310029"  # check digit wrong, but the store does not validate: models do


@pytest.fixture
def client(dynamodb: Any) -> Any:
    return dynamodb


@pytest.fixture
def store(client: Any, tables: tuple[str, str]) -> UserStore:
    return UserStore(*tables, dynamodb=client, sleep=lambda _: None)


def register(store: UserStore, user: str, htouhui_user_id: str = "10001", digest: str = "d1") -> None:
    claim = store.claim_registration(user, digest, NOW)
    assert claim.outcome is ClaimOutcome.CLAIMED
    store.complete_registration(user, htouhui_user_id, NOW)


def notify(user: str, status: int, notify_no: str | None, *, htouhui: str = "10001", **extra: Any) -> StatusUpdate:
    return StatusUpdate(
        third_party_user_id=user,
        htouhui_user_id=htouhui,
        status=status,
        source="notify" if notify_no else "query",
        received_at=extra.pop("received_at", NOW),
        notify_no=notify_no,
        timestamp="20261128160000" if notify_no else None,
        **extra,
    )


def history(client: Any, table: str) -> list[dict[str, Any]]:
    return list(client.scan(TableName=table, ConsistentRead=True)["Items"])


def raw_item(client: Any, table: str, user: str) -> dict[str, Any]:
    return dict(client.get_item(TableName=table, Key={"third_party_user_id": {"S": user}})["Item"])


# --- registration claim ---------------------------------------------------------------------------


def test_claim_then_complete_then_done(store: UserStore, client: Any, tables: tuple[str, str]) -> None:
    first = store.claim_registration("u1", "digest-a", NOW)
    assert first.outcome is ClaimOutcome.CLAIMED and first.token
    assert store.claim_registration("u1", "digest-a", NOW).outcome is ClaimOutcome.IN_PROGRESS
    assert store.claim_registration("u1", "digest-b", NOW).outcome is ClaimOutcome.OTHER_MOBILE
    record = store.complete_registration("u1", "10001", NOW)
    assert record.registered and not record.scheduled and record.view().stage == "REGISTERED"  # only a form schedules
    again = store.claim_registration("u1", "digest-a", NOW + timedelta(minutes=5))
    assert again.outcome is ClaimOutcome.DONE and again.record and again.record.htouhui_user_id == "10001"
    assert store.claim_registration("u1", "digest-b", NOW).outcome is ClaimOutcome.OTHER_MOBILE
    item = raw_item(client, tables[0], "u1")
    assert "claim_expires_at" not in item and "claim_token" not in item and "next_check_at" not in item
    assert item["created_at"]["S"] == "2026-11-28T08:00:00.000Z"


def test_expired_lease_may_be_reclaimed_and_old_holder_cannot_release_it(store: UserStore) -> None:
    first = store.claim_registration("u2", "digest-a", NOW)
    assert store.claim_registration("u2", "digest-a", NOW + timedelta(seconds=29)).outcome is ClaimOutcome.IN_PROGRESS
    second = store.claim_registration("u2", "digest-a", NOW + timedelta(seconds=31))
    assert second.outcome is ClaimOutcome.CLAIMED and second.token != first.token
    store.release_claim("u2", first.token)  # the crashed-then-woken first holder: no effect
    assert store.claim_registration("u2", "digest-a", NOW + timedelta(seconds=32)).outcome is ClaimOutcome.IN_PROGRESS
    store.release_claim("u2", second.token)
    assert store.get("u2") is None
    assert store.claim_registration("u2", "digest-a", NOW + timedelta(seconds=33)).outcome is ClaimOutcome.CLAIMED


def test_release_never_removes_a_registered_user(store: UserStore) -> None:
    register(store, "u3")
    store.release_claim("u3")
    record = store.get("u3")
    assert record is not None and record.registered


def test_complete_is_idempotent_for_the_same_answer_and_refuses_another(store: UserStore) -> None:
    register(store, "u4", "10004")
    assert store.complete_registration("u4", "10004", NOW).htouhui_user_id == "10004"
    with pytest.raises(HtouhuiUserIdMismatch):
        store.complete_registration("u4", "99999", NOW)
    with pytest.raises(StoreUnavailable):
        store.complete_registration("nobody", "10004", NOW)


def test_concurrent_claims_let_exactly_one_through(store: UserStore) -> None:
    outcomes: list[ClaimOutcome] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        outcomes.append(store.claim_registration("racer", "digest-a", NOW).outcome)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(ClaimOutcome.CLAIMED) == 1
    assert outcomes.count(ClaimOutcome.IN_PROGRESS) == 7


# --- open account ---------------------------------------------------------------------------------


def test_mark_open_requested_rules(store: UserStore) -> None:
    with pytest.raises(UserNotFound):
        store.mark_open_requested("ghost", ID_CARD, NOW)
    store.claim_registration("half", "d", NOW)
    with pytest.raises(RegistrationRequired):
        store.mark_open_requested("half", ID_CARD, NOW)
    register(store, "u5")
    record = store.mark_open_requested("u5", ID_CARD, NOW)
    assert record.open_requested and record.id_card == ID_CARD and record.view().stage == "OPEN_REQUESTED"
    store.mark_open_requested("u5", OTHER_ID_CARD, NOW)  # no account yet: the id_card may still change
    assert store.apply_status(notify("u5", 0, "n-fail")) is ApplyOutcome.APPLIED
    store.mark_open_requested("u5", ID_CARD, NOW)  # status 0: opening failed, may retry with another
    assert store.apply_status(notify("u5", 1, "n-open", bank_card_number="6222020202020202")) is ApplyOutcome.APPLIED
    store.mark_open_requested("u5", ID_CARD, NOW)  # same card again is fine
    with pytest.raises(IdCardMismatch):
        store.mark_open_requested("u5", OTHER_ID_CARD, NOW)


# --- status ---------------------------------------------------------------------------------------


def test_status_only_rises_and_every_accepted_notification_is_kept(
    store: UserStore, client: Any, tables: tuple[str, str]
) -> None:
    register(store, "u6")
    register(store, "u7", "10007")
    assert store.apply_status(notify("u6", 3, "n3", bank_card_number="6222000011112222")) is ApplyOutcome.APPLIED
    assert store.apply_status(notify("u6", 1, "n1")) is ApplyOutcome.STALE
    record = store.get("u6")
    assert record is not None and record.status == 3 and record.view().stage == "COMPLETED"
    assert record.view().ready_for_debt_matching and record.view().bank_card_number == "****2222"

    assert store.apply_status(notify("u7", 1, "m1", htouhui="10007")) is ApplyOutcome.APPLIED
    record = store.get("u7")
    assert record is not None and record.status == 1
    assert store.apply_status(notify("u7", 3, "m3", htouhui="10007")) is ApplyOutcome.APPLIED
    record = store.get("u7")
    assert record is not None and record.status == 3

    kept = sorted(item["notify_no"]["S"] for item in history(client, tables[1]))
    assert kept == ["m1", "m3", "n1", "n3"]
    stale = next(item for item in history(client, tables[1]) if item["notify_no"]["S"] == "n1")
    assert stale["status"] == {"N": "1"} and stale["source"] == {"S": "notify"}
    assert stale["timestamp"] == {"S": "20261128160000"}


def test_duplicates_write_one_history_record(store: UserStore, client: Any, tables: tuple[str, str]) -> None:
    register(store, "u8")
    assert store.apply_status(notify("u8", 2, "dup")) is ApplyOutcome.APPLIED
    assert store.apply_status(notify("u8", 2, "dup")) is ApplyOutcome.DUPLICATE
    assert store.apply_status(notify("u8", 1, "late")) is ApplyOutcome.STALE
    assert store.apply_status(notify("u8", 1, "late")) is ApplyOutcome.DUPLICATE
    assert sorted(item["notify_no"]["S"] for item in history(client, tables[1])) == ["dup", "late"]


def test_unknown_or_mismatched_user_writes_nothing(store: UserStore, client: Any, tables: tuple[str, str]) -> None:
    with pytest.raises(UserNotFound):
        store.apply_status(notify("ghost", 1, "g1"))
    store.claim_registration("claimed-only", "d", NOW)
    with pytest.raises(UserNotFound):
        store.apply_status(notify("claimed-only", 1, "g2"))
    register(store, "u9", "10009")
    with pytest.raises(HtouhuiUserIdMismatch):
        store.apply_status(notify("u9", 1, "g3", htouhui="55555"))
    with pytest.raises(UserNotFound):
        store.apply_status(notify("ghost", 1, None))
    assert history(client, tables[1]) == []
    record = store.get("u9")
    assert record is not None and record.status is None
    assert store.get("ghost") is None


def test_answers_without_notify_no_use_the_same_condition(
    store: UserStore, client: Any, tables: tuple[str, str]
) -> None:
    register(store, "u10")
    assert store.apply_status(notify("u10", 2, None)) is ApplyOutcome.APPLIED
    assert store.apply_status(notify("u10", 1, None)) is ApplyOutcome.STALE
    # a stale query still tells the borrower flag and a missing bank card; the level stays
    stale = notify("u10", 2, None, borrower="1", bank_card_number="6222333344445555")
    assert store.apply_status(stale) is ApplyOutcome.STALE
    record = store.get("u10")
    assert record is not None and record.status == 2 and record.borrower == "1"
    assert record.bank_card_number == "6222333344445555"
    assert history(client, tables[1]) == []


@pytest.mark.parametrize("with_history", [True, False])
def test_racing_updates_end_at_the_highest(
    store: UserStore, client: Any, tables: tuple[str, str], with_history: bool
) -> None:
    register(store, "racer")
    statuses = [random.Random(7).randrange(3) for _ in range(49)] + [3]
    random.Random(11).shuffle(statuses)
    outcomes: list[ApplyOutcome] = []
    barrier = threading.Barrier(10)

    def send(chunk: list[tuple[int, int]]) -> None:
        barrier.wait()
        for number, status in chunk:
            outcomes.append(store.apply_status(notify("racer", status, f"r{number}" if with_history else None)))

    numbered = list(enumerate(statuses))
    threads = [threading.Thread(target=send, args=(numbered[i::10],)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.get("racer")
    assert record is not None and record.status == 3
    assert len(outcomes) == 50 and ApplyOutcome.DUPLICATE not in outcomes
    assert 1 <= outcomes.count(ApplyOutcome.APPLIED) <= 4  # at most once per level
    assert len(history(client, tables[1])) == (50 if with_history else 0)


# --- the reconciliation schedule ------------------------------------------------------------------

EPOCH = int(NOW.timestamp())


def scheduled(store: UserStore, user: str, due: int, shard: str = "00", htouhui_user_id: str = "10001") -> None:
    register(store, user, htouhui_user_id)
    store.mark_open_requested(user, ID_CARD, NOW)
    assert store.restart_schedule(user, Slot(EPOCH, 0, due), shard)


def test_due_reads_one_shard_oldest_first_and_pages(store: UserStore, client: Any) -> None:
    for number in range(7):
        scheduled(store, f"p{number}", EPOCH + 100 - number, htouhui_user_id=f"2000{number}")
    scheduled(store, "elsewhere", EPOCH, shard="01")
    scheduled(store, "later", EPOCH + 500)
    register(store, "no-form")  # registered without a form: never scheduled
    assert not store.restart_schedule("no-form", Slot(EPOCH, 0, EPOCH), "00")  # no id_card: nothing to ask with
    calls: list[dict[str, Any]] = []
    original = client.query

    def counting_query(**request: Any) -> Any:
        calls.append(request)
        return original(**request)

    client.query = counting_query
    found = store.due("00", EPOCH + 100, 5)
    assert [row.third_party_user_id for row in found] == ["p6", "p5", "p4", "p3", "p2"]
    assert [row.due for row in found] == sorted(row.due for row in found)
    assert all(call["IndexName"] == "due-checks" for call in calls)
    assert [row.third_party_user_id for row in store.due("00", EPOCH + 100, 100)][-2:] == ["p1", "p0"]
    assert [row.third_party_user_id for row in store.due("01", EPOCH + 100, 100)] == ["elsewhere"]


def test_a_dispatch_claim_moves_the_due_time_once(store: UserStore) -> None:
    scheduled(store, "c1", EPOCH)
    (row,) = store.due("00", EPOCH, 10)
    assert store.claim_dispatch(row, EPOCH + 900)
    assert not store.claim_dispatch(row, EPOCH + 900)  # a second dispatcher that read the same row
    assert store.due("00", EPOCH + 899, 10) == []
    assert store.due("00", EPOCH + 900, 10)[0].due == EPOCH + 900  # a lost message: due again after the lease


def test_parallel_dispatch_claims_each_answer_for_their_own_user(store: UserStore) -> None:
    for number in range(40):
        scheduled(store, f"m{number:02d}", EPOCH)
    rows = store.due("00", EPOCH, 100)
    taken = rows[5]
    assert store.claim_dispatch(taken, EPOCH + 60)  # another dispatcher got this one first
    claimed = store.claim_dispatches(rows, EPOCH + 900)
    assert claimed == [row is not taken for row in rows]  # in order; one conflict takes nothing from the others
    assert store.claim_dispatches(rows, EPOCH + 900) == [False] * len(rows)
    assert [row.due for row in store.due("00", EPOCH + 900, 100)].count(EPOCH + 900) == len(rows) - 1


def test_a_check_lease_is_held_by_one_check_at_a_time(store: UserStore) -> None:
    scheduled(store, "l1", EPOCH)
    first = store.begin_check("l1", token="a", now=EPOCH, lease_until=EPOCH + 120, due=EPOCH)
    assert first is not None and first.check_token == "a" and first.slot == Slot(EPOCH, 0, EPOCH)
    assert store.begin_check("l1", token="b", now=EPOCH + 1, lease_until=EPOCH + 121) is None
    assert store.begin_check("l1", token="b", now=EPOCH + 121, lease_until=EPOCH + 241, due=EPOCH + 5) is None
    assert store.begin_check("nobody", token="b", now=EPOCH, lease_until=EPOCH + 120) is None
    store.release_check("l1", "not-mine")  # someone else's token changes nothing
    assert store.begin_check("l1", token="b", now=EPOCH + 1, lease_until=EPOCH + 121) is None
    store.release_check("l1", "a")
    assert store.begin_check("l1", token="b", now=EPOCH + 1, lease_until=EPOCH + 121) is not None


def test_settling_moves_only_the_ladder_the_check_was_taken_on(store: UserStore) -> None:
    scheduled(store, "s1", EPOCH)
    record = store.begin_check("s1", token="t", now=EPOCH, lease_until=EPOCH + 120, due=EPOCH)
    assert record is not None and record.slot is not None
    # news restarts the ladder while the check runs: the check's result leaves the new ladder alone
    assert store.restart_schedule("s1", Slot(EPOCH + 60, 0, EPOCH + 360), "00")
    assert not store.settle_check(
        "s1", token="t", taken_on=record.slot, next_slot=Slot(EPOCH, 1, EPOCH + 900), shard="00"
    )
    after = store.get("s1")
    assert after is not None and after.slot == Slot(EPOCH + 60, 0, EPOCH + 360) and after.check_lease is None

    again = store.begin_check("s1", token="u", now=EPOCH + 400, lease_until=EPOCH + 520, due=EPOCH + 360)
    assert again is not None and again.slot is not None
    assert store.settle_check(
        "s1", token="u", taken_on=again.slot, next_slot=Slot(EPOCH + 60, 1, EPOCH + 960), shard="00", attempts=0
    )
    after = store.get("s1")
    assert after is not None and after.slot == Slot(EPOCH + 60, 1, EPOCH + 960) and after.check_token is None
    last = store.begin_check("s1", token="v", now=EPOCH + 960, lease_until=EPOCH + 1080, due=EPOCH + 960)
    assert last is not None and last.slot is not None
    assert store.settle_check("s1", token="v", taken_on=last.slot, next_slot=None, shard="00")
    after = store.get("s1")
    assert after is not None and not after.scheduled and after.check_step is None and after.check_lease is None


def test_a_finished_user_is_never_put_back_on_the_schedule(store: UserStore, client: Any) -> None:
    scheduled(store, "f1", EPOCH)
    record = store.begin_check("f1", token="t", now=EPOCH, lease_until=EPOCH + 120, due=EPOCH)
    assert record is not None and record.slot is not None
    assert store.apply_status(notify("f1", 3, "f1-done")) is ApplyOutcome.APPLIED  # a notification meanwhile
    assert not store.settle_check("f1", token="t", taken_on=None, next_slot=Slot(EPOCH, 1, EPOCH + 900), shard="00")
    item = raw_item(client, store.users_table, "f1")
    assert not {"next_check_at", "check_shard", "check_lease", "check_token", "check_step"} & set(item)
    assert not store.restart_schedule("f1", Slot(EPOCH, 0, EPOCH + 300), "00")  # late news below 3
    assert store.due("00", EPOCH + 10**7, 10) == []


# --- failures -------------------------------------------------------------------------------------


def test_missing_history_table_is_store_unavailable_and_changes_nothing(store: UserStore, client: Any) -> None:
    register(store, "u11")
    client.delete_table(TableName=store.notifications_table)
    with pytest.raises(StoreUnavailable):
        store.apply_status(notify("u11", 3, "lost"))
    record = store.get("u11")
    assert record is not None and record.status is None


def test_missing_users_table_is_store_unavailable(client: Any) -> None:
    store = UserStore("no-such-table", "no-such-either", dynamodb=client)
    with pytest.raises(StoreUnavailable):
        store.get("u")
    with pytest.raises(StoreUnavailable):
        store.claim_registration("u", "d", NOW)
    with pytest.raises(StoreUnavailable):
        store.due("00", EPOCH, 10)


def test_throttling_and_unreachable_endpoint_are_store_unavailable(client: Any) -> None:
    store = UserStore("users", "notifications", dynamodb=client)
    with Stubber(client) as stub:
        stub.add_client_error("transact_write_items", "ProvisionedThroughputExceededException", http_status_code=400)
        with pytest.raises(StoreUnavailable, match="ProvisionedThroughputExceeded"):
            store.apply_status(notify("u", 1, "t1"))
    import boto3
    from botocore.config import Config

    dead = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.5, read_timeout=0.5),
    )
    with pytest.raises(StoreUnavailable, match="EndpointConnectionError"):
        UserStore("users", "notifications", dynamodb=dead).get("u")


def test_transaction_conflicts_are_retried(client: Any) -> None:
    store = UserStore("users", "notifications", dynamodb=client, sleep=lambda _: None)
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error(
                "transact_write_items",
                "TransactionCanceledException",
                http_status_code=400,
                response_meta={},
                modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
            )
        stub.add_response("transact_write_items", {})
        assert store.apply_status(notify("u", 1, "c1")) is ApplyOutcome.APPLIED
        stub.assert_no_pending_responses()


def test_lazy_client_honours_the_endpoint_environment(aws: str, tables: tuple[str, str]) -> None:
    store = UserStore(*tables)
    assert store.get("nobody") is None
    assert store.client().meta.endpoint_url == aws


def test_the_stream_yields_one_event_per_status_change(store: UserStore, aws: str) -> None:
    import boto3

    from onboarding.status_events import status_change

    register(store, "s1")
    store.mark_open_requested("s1", ID_CARD, NOW)
    store.apply_status(notify("s1", 1, "e1", bank_card_number="6222000011112222"))
    store.apply_status(notify("s1", 1, "e1"))  # duplicate
    store.apply_status(notify("s1", 3, "e3"))
    store.apply_status(notify("s1", 2, "e2"))  # stale
    store.apply_status(notify("s1", 3, None, borrower="1"))  # stale, fills the borrower flag

    streams = boto3.client("dynamodbstreams", endpoint_url=aws, region_name="us-east-1")
    arn = store.client().describe_table(TableName=store.users_table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    details = [detail for record in records if (detail := status_change(record)) is not None]
    assert [(detail["old_status"], detail["new_status"]) for detail in details] == [(None, 1), (1, 3)]
    assert details[-1] == {
        "version": 1,
        "event_id": event_id("s1", 3),
        "third_party_user_id": "s1",
        "htouhui_user_id": "10001",
        "old_status": 1,
        "new_status": 3,
        "ready_for_debt_matching": True,
    }
