"""The reconciliation schedule through Onboarding: moto DynamoDB (the template's tables) and an in-process Htouhui.

From Htouhui's side: users without a form are never queried, each step of the ladder is one query, status 3
and the last step end the checks, news restarts the ladder, failures back off and then skip the step, and a
user is never checked twice at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from htouhui_fake import FakeHtouhui
from rules_support import (
    CARD,
    ID_CARD,
    Clock,
    body,
    opened,
    settings_for,
)

from onboarding import schedule
from onboarding.checks import CheckOutcome
from onboarding.reconcile import Message, Pacer, dispatch, run_limit, work
from onboarding.rules import Onboarding

LADDER = schedule.Ladder.parse()


class ListQueue:
    """The work queue as a list (what the dispatcher sent)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> None:
        assert 1 <= len(messages) <= 10
        self.messages.extend(messages)

    def depth(self) -> int:
        return len(self.messages)

    def take(self) -> list[dict[str, Any]]:
        taken, self.messages = self.messages, []
        return taken


def now_of(clock: Clock) -> int:
    return int(clock().timestamp())


def run_due(onboarding: Onboarding, queue: ListQueue, limit: int = 100) -> list[CheckOutcome]:
    """One dispatcher run, then a worker on every message it sent."""
    onboarding.checks.dispatch_due(queue, limit=limit)
    return [onboarding.checks.check_scheduled(m["third_party_user_id"], m["due"]) for m in queue.take()]


def test_a_form_user_is_checked_once_per_step_and_leaves_after_the_last(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding)  # the form: the ladder starts now
    onboarding.registration.register(body("no-form", "13900139009"))  # registered, never asked for a form
    anchor = now_of(clock)
    queue = ListQueue()
    record = onboarding.store.get("shop-1")
    assert record is not None and record.slot == schedule.Slot(anchor, 0, LADDER.due("shop-1", anchor, 0))
    assert record.check_shard == schedule.shard_of("shop-1", 16)
    fake.set_status("shop-1", 1, id_card=ID_CARD, bank_card_number=CARD)  # stalls at 1, no notification

    for step in range(len(LADDER.steps)):
        due = LADDER.due("shop-1", anchor, step)
        clock.now = clock.now.fromtimestamp(due - 1, clock.now.tzinfo)
        assert run_due(onboarding, queue) == []  # not yet
        clock.advance(1)
        assert run_due(onboarding, queue) == [CheckOutcome.CHECKED]
        assert run_due(onboarding, queue) == []  # a repeated answer moves the user on: not asked again
        assert fake.calls["query"] == step + 1

    after = onboarding.store.get("shop-1")
    assert after is not None and not after.scheduled and after.status == 1
    clock.advance(365 * 86400)
    assert run_due(onboarding, queue) == [] and fake.calls["query"] == len(LADDER.steps)
    assert (
        onboarding.registration.view("no-form").status is None
    )  # never queried: the fake would not even know the user


def test_status_3_leaves_the_schedule_and_news_below_3_restarts_the_ladder(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding, "n1", "13800138001")
    opened(onboarding, "n2", "13800138002")
    clock.advance(4 * 3600)  # n1 and n2 are overdue for their first steps
    onboarding.inbound.accept_notification(fake.notification("n1", 1, "N-n1-1"))  # news below 3: from now
    restarted = onboarding.store.get("n1")
    assert restarted is not None and restarted.slot == schedule.Slot(
        now_of(clock), 0, LADDER.due("n1", now_of(clock), 0)
    )
    onboarding.inbound.accept_notification(fake.notification("n2", 3, "N-n2-3"))  # finished: off the schedule
    finished = onboarding.store.get("n2")
    assert finished is not None and not finished.scheduled

    fake.set_status("n1", 1, id_card=ID_CARD)
    queue = ListQueue()
    assert run_due(onboarding, queue) == []  # n1's ladder starts over; n2 is done
    clock.advance(400)
    assert run_due(onboarding, queue) == [CheckOutcome.CHECKED] and fake.calls["query"] == 1
    # a browser return and GET ?refresh=true are news too
    clock.advance(600)
    onboarding.inbound.accept_return(fake.browser_return("n1", 1))
    record = onboarding.store.get("n1")
    assert record is not None and record.slot is not None and record.slot.anchor == now_of(clock)
    clock.advance(60)
    onboarding.registration.refresh("n1")
    record = onboarding.store.get("n1")
    assert (
        record is not None
        and record.slot is not None
        and (record.slot.anchor, record.slot.step)
        == (
            now_of(clock),
            0,
        )
    )


class WriteLog:
    """The store's DynamoDB client, each UpdateItem noted as (user, expression): which writes a check makes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.updates: list[tuple[str, str]] = []

    def update_item(self, **request: Any) -> Any:
        self.updates.append((request["Key"]["third_party_user_id"]["S"], request["UpdateExpression"]))
        return self.client.update_item(**request)

    def of(self, user: str, part: str) -> int:
        return sum(1 for who, expression in self.updates if who == user and part in expression)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_an_answer_that_changes_nothing_is_not_written_and_status_3_only_gives_the_lease_back(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    store: Any = onboarding.store
    log = WriteLog(store.client())
    store.use_client(log)
    opened(onboarding, "w1", "13800138011")
    fake.set_status("w1", 1, id_card=ID_CARD)
    queue = ListQueue()
    clock.advance(400)
    assert run_due(onboarding, queue) == [CheckOutcome.CHECKED]
    first = onboarding.store.get("w1")
    assert first is not None and first.status == 1 and first.slot is not None and first.slot.step == 1
    assert log.of("w1", "#status = :new") == 1  # the first answer is news: stored
    clock.advance(LADDER.steps[1])
    assert run_due(onboarding, queue) == [CheckOutcome.CHECKED]  # the same answer again
    assert log.of("w1", "#status = :new") == 1  # nothing to store: no write (its condition would fail)
    again = onboarding.store.get("w1")
    assert again is not None and again.updated_at == first.updated_at
    assert again.slot is not None and again.slot.step == 2  # the ladder moved all the same

    fake.set_status("w1", 3, id_card=ID_CARD, bank_card_number=CARD)  # finished, its notification lost
    clock.advance(LADDER.steps[2])
    settles = log.of("w1", "check_step = :next_step")
    assert run_due(onboarding, queue) == [CheckOutcome.CHECKED]
    finished = onboarding.store.get("w1")
    assert finished is not None and finished.status == 3 and not finished.scheduled
    assert finished.check_lease is None and finished.check_token is None  # the lease given back
    assert log.of("w1", "check_step = :next_step") == settles  # and no settle bound to fail was tried
    assert log.of("w1", "#status = :new") == 2


def test_a_failed_check_backs_off_and_the_fifth_failure_skips_the_step(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding)
    fake.set_status("shop-1", 2, id_card=ID_CARD)
    fake.fail("query", *["9999"] * 20)  # HTOUHUI_MAX_ATTEMPTS=2: two answers per failed check
    queue = ListQueue()
    clock.advance(400)
    for attempt in range(1, schedule.MAX_ATTEMPTS):
        assert run_due(onboarding, queue) == [CheckOutcome.FAILED]
        record = onboarding.store.get("shop-1")
        assert record is not None and record.slot is not None
        assert (record.slot.step, record.check_attempts) == (0, attempt)
        assert record.slot.due == now_of(clock) + schedule.retry_delay(attempt)
        clock.advance(schedule.retry_delay(attempt) - 1)
        assert run_due(onboarding, queue) == []  # backing off
        clock.advance(1)
    assert run_due(onboarding, queue) == [CheckOutcome.GAVE_UP]
    record = onboarding.store.get("shop-1")
    assert record is not None and record.slot is not None and (record.slot.step, record.check_attempts) == (1, 0)
    assert onboarding.registration.view("shop-1").status is None


def test_a_rejection_is_a_completed_check(onboarding: Onboarding, fake: FakeHtouhui, clock: Clock) -> None:
    opened(onboarding)
    fake.user_failures["shop-1"] = "2004"  # Htouhui answers, with an error: asking again will not change it
    clock.advance(400)
    assert run_due(onboarding, ListQueue()) == [CheckOutcome.REJECTED]
    record = onboarding.store.get("shop-1")
    assert record is not None and record.slot is not None and record.slot.step == 1


def test_a_user_is_not_checked_twice_at_once(onboarding: Onboarding, fake: FakeHtouhui, clock: Clock) -> None:
    opened(onboarding)
    fake.set_status("shop-1", 1, id_card=ID_CARD)
    clock.advance(400)
    queue = ListQueue()
    onboarding.checks.dispatch_due(queue, limit=10)
    (message,) = queue.take()
    token = "held-by-another-worker"
    held = onboarding.store.begin_check(
        "shop-1", token=token, now=now_of(clock), lease_until=now_of(clock) + 120, due=message["due"]
    )
    assert held is not None
    assert onboarding.checks.check_scheduled("shop-1", message["due"]) is CheckOutcome.SKIPPED
    assert onboarding.checks.check_now("shop-1") is CheckOutcome.FAILED  # CheckUserStatus waits for its turn
    assert fake.calls["query"] == 0
    onboarding.store.release_check("shop-1", token)
    assert onboarding.checks.check_scheduled("shop-1", message["due"]) is CheckOutcome.CHECKED
    assert onboarding.checks.check_scheduled("shop-1", message["due"]) is CheckOutcome.SKIPPED  # a duplicate message
    assert fake.calls["query"] == 1


def test_check_user_status_asks_now_and_puts_the_user_back_on_the_ladder(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding)
    fake.set_status("shop-1", 2, id_card=ID_CARD)
    clock.advance(30 * 86400)  # every step overdue: walk the ladder off its end
    queue = ListQueue()
    for _ in LADDER.steps:
        run_due(onboarding, queue)
    left = onboarding.store.get("shop-1")
    assert left is not None and not left.scheduled
    assert onboarding.checks.check_now("shop-1") is CheckOutcome.CHECKED
    back = onboarding.store.get("shop-1")
    assert back is not None and back.slot == schedule.Slot(now_of(clock), 0, LADDER.due("shop-1", now_of(clock), 0))
    assert back.status == 2 and back.check_lease is None
    assert onboarding.checks.check_now("nobody") is CheckOutcome.NOT_FOUND
    onboarding.registration.register(body("no-form", "13900139009"))
    assert onboarding.checks.check_now("no-form") is CheckOutcome.SKIPPED  # nothing to ask with
    fake.set_status("shop-1", 3, id_card=ID_CARD)
    assert onboarding.checks.check_now("shop-1") is CheckOutcome.CHECKED
    done = onboarding.store.get("shop-1")
    assert done is not None and done.status == 3 and not done.scheduled


def test_the_dispatcher_is_bounded_and_under_a_backlog_sends_the_youngest_first(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    for number in range(25):
        opened(onboarding, f"d{number:02d}", f"138001381{number:02d}")
        clock.advance(60)
    clock.advance(300)  # every first step is due, none of the second ones (15 min after the form)
    queue = ListQueue()
    report = onboarding.checks.dispatch_due(queue, limit=10)
    assert (report.found, report.dispatched) == (10, 10)
    assert report.oldest_due == LADDER.due("d00", now_of(clock) - 300 - 25 * 60, 0)
    # a tenth of the run for the oldest, the rest to the youngest forms
    sent = [m["third_party_user_id"] for m in queue.messages]
    assert sent == ["d00"] + [f"d{n:02d}" for n in range(24, 15, -1)]
    assert {m["due"] for m in queue.messages} == {now_of(clock) + schedule.DISPATCH_LEASE_SECONDS}
    second = ListQueue()
    onboarding.checks.dispatch_due(second, limit=10)  # those are claimed: the next oldest and youngest
    assert [m["third_party_user_id"] for m in second.messages] == ["d01"] + [f"d{n:02d}" for n in range(15, 6, -1)]
    # the run limit counts what is already queued
    assert run_limit(settings_for(), 0) == 46 * 120
    assert run_limit(settings_for(), 10**6) == 0
    assert dispatch(onboarding, queue, settings_for()).dispatched == 5  # all that is left fits: all of it
    assert sorted(m["third_party_user_id"] for m in queue.messages[10:]) == [f"d{n:02d}" for n in range(2, 7)]


def test_a_backlog_younger_than_the_bend_threshold_is_sent_oldest_first(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    start = now_of(clock)
    for number in range(25):  # a peak passing: forms 20 s apart, the oldest check due for under 10 minutes
        opened(onboarding, f"p{number:02d}", f"138001382{number:02d}")
        clock.advance(20)
    clock.advance(400)
    dues = {f"p{n:02d}": LADDER.due(f"p{n:02d}", start + 20 * n, 0) for n in range(25)}
    assert now_of(clock) - min(dues.values()) < schedule.BEND_AFTER_SECONDS
    due_now = sorted((due, user) for user, due in dues.items() if due <= now_of(clock))
    assert len(due_now) > 10
    queue = ListQueue()
    onboarding.checks.dispatch_due(queue, limit=10)
    assert [m["third_party_user_id"] for m in queue.messages] == [user for _, user in due_now[:10]]


def test_the_worker_paces_each_message_and_retries_only_check_user_status(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding)
    fake.set_status("shop-1", 2, id_card=ID_CARD)
    moments: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer(0.4, clock=lambda: now[0], sleep=sleep)
    original = fake.handle

    def timed(request: Any) -> Any:
        moments.append(now[0])
        return original(request)

    fake.transport.handler = timed  # type: ignore[attr-defined]
    check = '{"detail-type": "CheckUserStatus", "detail": {"third_party_user_id": "shop-1"}}'
    messages = [
        Message("m1", check),
        Message("m2", "not json"),
        Message("m3", '{"detail-type": "CheckUserStatus", "detail": {}}'),
        Message("m4", check),
    ]
    report = work(onboarding, messages, pacer)
    assert report.outcomes == {"CHECKED": 2, "INVALID": 2} and report.failed_ids == []
    assert moments == [0.0, 0.4] and now[0] == pytest.approx(0.8)  # paced, and the slot waits out its interval

    fake.fail("query", *["9999"] * 4)
    report = work(onboarding, [Message("m5", check)], pacer)
    assert report.failed_ids == ["m5"]  # SQS delivers it again


def test_a_late_check_past_its_next_steps_is_one_check_for_the_latest_step_passed(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding)
    anchor = now_of(clock)
    fake.set_status("shop-1", 2, id_card=ID_CARD)
    queue = ListQueue()
    onboarding.checks.dispatch_due(queue, limit=10)
    assert queue.messages == []
    clock.advance(LADDER.due("shop-1", anchor, 3) - anchor + 60)  # a backlog: steps 0 to 3 (5 min to 4 h) passed
    assert run_due(onboarding, queue) == [CheckOutcome.CHECKED]
    record = onboarding.store.get("shop-1")
    assert record is not None and record.slot == schedule.Slot(anchor, 4, LADDER.due("shop-1", anchor, 4))
    assert run_due(onboarding, queue) == []  # one query for four overdue steps; the 24 h step is not due yet
    # the rule itself: on time it changes nothing, and it never passes the last step
    on_time = schedule.Slot(anchor, 0, LADDER.due("u", anchor, 0))
    assert schedule.coalesce(LADDER, "u", on_time, on_time.due) == on_time
    assert schedule.coalesce(LADDER, "u", on_time, anchor + 30 * 86400).step == len(LADDER.steps) - 1


def test_a_worker_takes_no_message_its_remaining_time_cannot_cover(
    onboarding: Onboarding, fake: FakeHtouhui, clock: Clock
) -> None:
    opened(onboarding)
    fake.set_status("shop-1", 2, id_card=ID_CARD)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def hanging(request: Any) -> Any:  # a hanging Htouhui: each query runs into the client's 7 s
        now[0] += 7.0
        raise TimeoutError("read timed out")

    pacer = Pacer(0.5, clock=lambda: now[0], sleep=sleep)
    fake.transport.handler = hanging  # type: ignore[attr-defined]
    deadline = 30.0  # the invocation's time-out, on the same clock
    check = '{"detail-type": "CheckUserStatus", "detail": {"third_party_user_id": "shop-1"}}'
    messages = [Message(f"m{n}", check) for n in range(10)]
    report = work(onboarding, messages, pacer, time_left=lambda: deadline - now[0], query_seconds=7.0)
    # 0.5 + 7 + 0.5 + 2 s per message: three fit in 30 s, the seven others go back to the queue untouched
    assert report.outcomes == {"FAILED": 3, "DEFERRED": 7}
    assert report.failed_ids == [f"m{n}" for n in range(10)]
    assert now[0] <= deadline  # ended in time, its closing pacing wait included


def test_a_fresh_worker_waits_one_interval_before_its_first_query() -> None:
    now = [100.0]
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    pacer = Pacer(0.5, clock=lambda: now[0], sleep=sleep)
    pacer.hold()  # what Pacer.for_settings does: the previous container may have timed out without waiting
    pacer.before_query()
    assert waited == [0.5] and pacer.wait_left() == 0.5
