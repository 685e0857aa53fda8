"""ExportUser / EraseUser events from the merchant's systems -> the export or the erasure -> a DataRightsOutcome.

EventBridge invokes this function asynchronously: a failure (the table or the bucket unreachable, the outcome
not published) raises, Lambda retries, and what still fails lands in AsyncFailureQueue. Answering a request
twice is harmless (onboarding.rights).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from onboarding import runtime
from onboarding.config import setting
from onboarding.observability import logger, metrics
from onboarding.rights import publish_outcome
from onboarding.status_events import events_client


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = runtime.data_rights().handle(event if isinstance(event, dict) else {})
    publish_outcome(events_client().put_events, setting("event_bus_name"), detail)
    logger.info(
        "data rights request answered",
        extra={name: detail.get(name) for name in ("request", "request_id", "third_party_user_id", "outcome")},
    )
    return detail
