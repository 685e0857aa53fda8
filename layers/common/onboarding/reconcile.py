"""Reconciliation's moving parts between the handlers and Onboarding: the run limit, the queue, the pacing.

- `dispatch(onboarding, queue, settings)`: one dispatcher run (every minute). It tops the work queue up to two
  minutes of the scheduled workers' share of the budget, so a backlog waits in the due-time index, oldest
  due first, and not in the queue.
- `work(onboarding, messages, pacer)`: one worker invocation (an SQS batch). Each message is a dispatched
  user (`{"third_party_user_id", "due"}`) or an EventBridge `CheckUserStatus` event; the ids of the
  messages to deliver again are returned (ReportBatchItemFailures).
- The rate budget: an event source mapping never runs more than its MaximumConcurrency invocations at
  once, and each invocation starts a query at most every `pacing_interval` seconds and returns no sooner
  than that after its last query (`Pacer`). Each of the `workers + priority_workers` slots therefore starts
  at most one query per interval, and all of them together at most `budget` queries per second.
- The budget holds under failures: a query that times out counted when it started; an invocation never runs
  into Lambda's time-out (it takes no further message once its remaining time cannot cover the pacing wait,
  the client's worst query and the closing wait: those messages are delivered again), and a fresh container
  (after a crash or a time-out all the same) waits one interval before its first query.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from onboarding import schedule
from onboarding.checks import CheckOutcome, DispatchReport, WorkQueue
from onboarding.config import Settings
from onboarding.dynamo import LazyClient
from onboarding.rules import Onboarding

CHECK_USER_STATUS = "CheckUserStatus"
QUEUE_HORIZON_SECONDS = 120  # the dispatcher keeps at most this much of the scheduled share queued
RESERVE_SECONDS = 2.0  # a worker's margin for the store's writes and the reply after its last query


def scheduled_rate(settings: Settings) -> float:
    """Queries per second the scheduled workers may make: their slots' share of the budget."""
    slots = settings.reconcile_workers + settings.reconcile_priority_workers
    return settings.reconcile_rate_budget * settings.reconcile_workers / slots


def run_limit(settings: Settings, queued: int) -> int:
    """How many due users one dispatcher run may send, with `queued` messages already waiting: two minutes
    of the scheduled share, and never fewer than two messages per worker slot (no slot waits for a run)."""
    wanted = max(math.ceil(scheduled_rate(settings) * QUEUE_HORIZON_SECONDS), 2 * settings.reconcile_workers)
    return max(0, wanted - queued)


def dispatch(
    onboarding: Onboarding, queue: WorkQueue, settings: Settings, *, should_stop: Callable[[], bool] | None = None
) -> DispatchReport:
    limit = run_limit(settings, queue.depth())
    return onboarding.checks.dispatch_due(queue, limit=limit, should_stop=should_stop)


@dataclass
class Pacer:
    """At most one query start per `interval` seconds for one worker slot (see the module's docstring)."""

    interval: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _last: float | None = field(default=None, repr=False)

    @classmethod
    def for_settings(cls, settings: Settings) -> Pacer:
        slots = settings.reconcile_workers + settings.reconcile_priority_workers
        pacer = cls(schedule.pacing_interval(settings.reconcile_rate_budget, slots))
        pacer.hold()
        return pacer

    def hold(self) -> None:
        """Count now as a query start: a fresh container cannot know when its predecessor (one that crashed or
        timed out, and so never waited) last asked, so it waits one interval first."""
        self._last = self.clock()

    def wait_left(self) -> float:
        """Seconds until the slot may start its next query (0: now)."""
        return 0.0 if self._last is None else max(0.0, self._last + self.interval - self.clock())

    def before_query(self) -> None:
        self.wait_out()
        self._last = self.clock()

    def wait_out(self) -> None:
        """Sleep until the slot may start its next query (at the end of an invocation too)."""
        if self._last is not None:
            left = self._last + self.interval - self.clock()
            if left > 0:
                self.sleep(left)


@dataclass(frozen=True)
class Message:
    message_id: str
    body: str


@dataclass
class WorkReport:
    outcomes: dict[str, int] = field(default_factory=dict)
    failed_ids: list[str] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def read_message(body: str) -> tuple[str, str | None, int | None]:
    """("scheduled" | "check" | "invalid", third_party_user_id, due) of one queue message."""
    try:
        data = json.loads(body)
    except ValueError:
        return "invalid", None, None
    if not isinstance(data, dict):
        return "invalid", None, None
    if data.get("detail-type") == CHECK_USER_STATUS:
        detail = data.get("detail")
        user = detail.get("third_party_user_id") if isinstance(detail, dict) else None
        return ("check", user, None) if isinstance(user, str) and user else ("invalid", None, None)
    user, due = data.get("third_party_user_id"), data.get("due")
    if isinstance(user, str) and user and isinstance(due, int) and not isinstance(due, bool):
        return "scheduled", user, due
    return "invalid", None, None


def work(
    onboarding: Onboarding,
    messages: Iterable[Message],
    pacer: Pacer,
    *,
    time_left: Callable[[], float] | None = None,
    query_seconds: float = 0.0,
) -> WorkReport:
    """Check each message's user in turn, paced; a malformed message is dropped (retrying cannot fix it).

    With `time_left` (seconds left in the invocation), a message is only taken while the rest of the
    invocation covers the pacing wait, `query_seconds` (the client's worst query: connect + read time-outs),
    the closing wait and a reserve; the messages left are reported to be delivered again (DEFERRED).
    """
    report = WorkReport()
    pending = list(messages)
    try:
        for position, message in enumerate(pending):
            if time_left is not None:
                needed = pacer.wait_left() + query_seconds + pacer.interval + RESERVE_SECONDS
                if time_left() < needed:
                    for left in pending[position:]:
                        report.add("DEFERRED")
                        report.failed_ids.append(left.message_id)
                    break
            kind, user, due = read_message(message.body)
            if kind == "invalid" or user is None:
                report.add("INVALID")
                continue
            pace = pacer.before_query  # called only when Htouhui is about to be asked
            if kind == "check":
                outcome = onboarding.checks.check_now(user, pace=pace)
            else:
                outcome = onboarding.checks.check_scheduled(user, due or 0, pace=pace)
            report.add(str(outcome))
            if outcome is CheckOutcome.FAILED and kind == "check":
                report.failed_ids.append(message.message_id)  # SQS delivers it again after the visibility time-out
    finally:
        pacer.wait_out()
    return report


class SqsWorkQueue:
    """The dispatcher's queue on SQS; the boto3 client is created on first use (or injected)."""

    def __init__(self, url: str, sqs: Any = None) -> None:
        self.url = url
        self._sqs = LazyClient("sqs", sqs)

    def client(self) -> Any:
        return self._sqs()

    def send(self, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(index), "MessageBody": json.dumps(message, separators=(",", ":"))}
            for index, message in enumerate(messages)
        ]
        for start in range(0, len(entries), 10):
            answer = self.client().send_message_batch(QueueUrl=self.url, Entries=entries[start : start + 10])
            if answer.get("Failed"):
                # The claimed users come back due after the dispatch lease: delayed, not lost.
                raise RuntimeError(f"SQS refused {len(answer['Failed'])} message(s)")

    def depth(self) -> int:
        attributes = self.client().get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
