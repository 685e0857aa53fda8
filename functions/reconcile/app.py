"""Reconciliation: the schedule sweeps unfinished users; a `CheckUserStatus` event checks one user.

Its own function (not an entry of query-user) because it needs Htouhui's key and the query permission
but no HTTP route, a longer time-out than an API call, and its own failure destination.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from htouhui import runtime
from htouhui.errors import UserNotFound
from htouhui.observability import RECONCILE_FAILURES, USERS_RECONCILED, count, logger, metrics

CHECK_USER_STATUS = "CheckUserStatus"


def check_user(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail")
    third_party_user_id = detail.get("third_party_user_id") if isinstance(detail, dict) else None
    if not isinstance(third_party_user_id, str) or not third_party_user_id:
        # Retrying cannot fix a malformed event: log it and finish.
        logger.error("CheckUserStatus without detail.third_party_user_id")
        return {"result": "invalid_event"}
    logger.append_keys(third_party_user_id=third_party_user_id)
    try:
        view = runtime.onboarding().check_user(third_party_user_id)
    except UserNotFound:
        logger.warning("CheckUserStatus for an unknown user")
        return {"result": "not_found", "third_party_user_id": third_party_user_id}
    except Exception:
        count(RECONCILE_FAILURES)
        raise  # the event is retried, then goes to the dead-letter queue
    count(USERS_RECONCILED)
    logger.info("user checked", extra={"status": view.status, "stage": view.stage})
    return {"result": "checked", "third_party_user_id": third_party_user_id, "status": view.status}


# Stop queuing users when less than this much of the invocation's time is left (the run ends cleanly).
SAFETY_MILLISECONDS = 15_000


def reconcile_unfinished(context: LambdaContext) -> dict[str, Any]:
    report = runtime.onboarding().reconcile_unfinished(
        runtime.settings().reconcile_concurrency,
        should_stop=lambda: context.get_remaining_time_in_millis() < SAFETY_MILLISECONDS,
    )
    count(USERS_RECONCILED, report.checked)
    if report.failed:
        count(RECONCILE_FAILURES, report.failed)
    result = {
        "result": "reconciled",
        "checked": report.checked,
        "changed": report.changed,
        "failed": report.failed,
        "skipped": report.skipped,
    }
    logger.info("reconciliation finished", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.remove_keys(["third_party_user_id"])
    if isinstance(event, dict) and event.get("detail-type") == CHECK_USER_STATUS:
        return check_user(event)
    return reconcile_unfinished(context)
