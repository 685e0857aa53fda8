"""UsersTable stream -> EventBridge `UserStatusChanged` (source `htouhui.onboarding`).

Derived from the table's stream, so no change is published without being stored, nor stored without
being published. Records are handled in stream order; at the first record that cannot be published,
the batch stops and reports that record as the failure (ReportBatchItemFailures): Lambda retries from
it, so nothing is lost, and records already published are not published again needlessly.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from onboarding.config import setting
from onboarding.observability import logger, metrics
from onboarding.status_events import batch_answer, events_client, publish, set_events_client

__all__ = ["lambda_handler", "set_events_client"]  # set_events_client: tests inject a client through the handler


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bus = setting("event_bus_name")  # per invocation, as before
    return batch_answer(publish(event.get("Records") or [], events_client().put_events, bus))
