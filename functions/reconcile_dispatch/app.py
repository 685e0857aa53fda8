"""Reconciliation dispatcher (every minute): due users from the sharded due-time index to the work queue.

Bounded per run: the queue is topped up to two minutes of the scheduled workers' share of the rate budget,
oldest due first over all shards; the rest waits in the index (onboarding.reconcile.dispatch).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from onboarding import runtime
from onboarding.config import ConfigError
from onboarding.observability import OLDEST_DUE_CHECK_AGE, RECONCILE_DISPATCHED, count, logger, metrics, seconds
from onboarding.reconcile import SqsWorkQueue, dispatch

# Stop claiming users when less than this much of the invocation's time is left (the run ends cleanly).
SAFETY_MILLISECONDS = 10_000
_queue: SqsWorkQueue | None = None


def work_queue() -> SqsWorkQueue:
    global _queue
    url = runtime.settings().reconcile_queue_url
    if not url:
        raise ConfigError(["RECONCILE_QUEUE_URL is required: the reconciliation work queue"])
    if _queue is None or _queue.url != url:
        _queue = SqsWorkQueue(url)
    return _queue


def set_work_queue(queue: SqsWorkQueue | None) -> None:
    """Tests and the local stack: inject a queue (None: build from the settings again)."""
    global _queue
    _queue = queue


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = dispatch(
        runtime.reconcile_onboarding(),
        work_queue(),
        runtime.settings(),
        should_stop=lambda: context.get_remaining_time_in_millis() < SAFETY_MILLISECONDS,
    )
    count(RECONCILE_DISPATCHED, report.dispatched)
    age = report.oldest_due_age(runtime.reconcile_onboarding().core.now())
    seconds(OLDEST_DUE_CHECK_AGE, age)  # OldestDueCheckAgeAlarm: the backlog is older than the ladder can bear
    result = {
        "result": "dispatched",
        "found": report.found,
        "dispatched": report.dispatched,
        "taken": report.taken,
        "oldest_due_age_seconds": age,
    }
    logger.info("dispatch finished", extra=result)
    return result
