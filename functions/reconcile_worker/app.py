"""Reconciliation worker: SQS batches from the scheduled queue and the CheckUserStatus queue.

Each message is one user: a dispatched due check, or an EventBridge CheckUserStatus event. Queries are
paced per invocation slot so that all slots together stay within the rate budget (onboarding.reconcile);
a CheckUserStatus that could not be answered is reported as a batch item failure and delivered again, and so
is every message the invocation no longer has the time to ask for (a hanging Htouhui: onboarding.reconcile).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from onboarding import runtime
from onboarding.observability import RECONCILE_FAILURES, RECONCILE_RETRIES, USERS_RECONCILED, count, logger, metrics
from onboarding.reconcile import Message, Pacer, work

_pacer: Pacer | None = None  # one per container: one container runs one invocation at a time


def pacer() -> Pacer:
    global _pacer
    if _pacer is None:
        _pacer = Pacer.for_settings(runtime.settings())
    return _pacer


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") if isinstance(event, dict) else None
    messages = [
        Message(str(record.get("messageId", "")), str(record.get("body", "")))
        for record in (records if isinstance(records, list) else [])
        if isinstance(record, dict)
    ]
    timeouts = runtime.settings().client.timeouts
    report = work(
        runtime.reconcile_onboarding(),
        messages,
        pacer(),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        query_seconds=timeouts.connect + timeouts.read,
    )
    checked = sum(report.outcomes.get(name, 0) for name in ("CHECKED", "REJECTED", "GAVE_UP"))
    failures = sum(report.outcomes.get(name, 0) for name in ("REJECTED", "GAVE_UP"))
    if checked:
        count(USERS_RECONCILED, checked)
    if failures:
        count(RECONCILE_FAILURES, failures)
    if report.outcomes.get("FAILED"):
        count(RECONCILE_RETRIES, report.outcomes["FAILED"])
    if report.outcomes.get("DEFERRED"):
        logger.warning(
            "messages left for redelivery: the invocation's time is short", extra={"count": report.outcomes["DEFERRED"]}
        )
    if report.outcomes.get("INVALID"):
        logger.error("queue messages without a user dropped", extra={"count": report.outcomes["INVALID"]})
    logger.info("batch finished", extra={"outcomes": report.outcomes})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in report.failed_ids]}
