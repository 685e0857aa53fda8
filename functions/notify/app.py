"""Htouhui's two routes: POST /htouhui/notify (the status notification) and GET /htouhui/return (the browser).

No authorizer: the RSA signature is the authentication. A notification is verified exactly as received,
read tolerantly (PROTOCOL.md §9) and recorded, then acknowledged with `200 SUCCESS`; a bad signature,
another partner_id, a malformed body or a field that decides state breaking its rule is `400 FAIL` with
nothing changed; a storage failure is `500`, so Htouhui delivers again.
"""

from __future__ import annotations

from typing import Any, Final

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from htouhui.protocol import MalformedMessage
from onboarding import callbacks, runtime
from onboarding.api import NOTIFY_PATH, RETURN_PATH, create_resolver
from onboarding.errors import NotificationRejected, RejectionReason, StoreUnavailable
from onboarding.observability import (
    NOTIFICATIONS_ACCEPTED,
    NOTIFICATIONS_DUPLICATE,
    NOTIFICATIONS_REJECTED,
    NOTIFICATIONS_UNHANDLED,
    RETURNS_REJECTED,
    count,
    count_rejection,
    logger,
    metrics,
    note_separators,
)
from onboarding.ops import priming
from onboarding.source_ip import notify_source_allowed
from onboarding.store import ApplyOutcome

TEXT: Final = content_types.TEXT_PLAIN + "; charset=utf-8"
OUTCOME_METRIC: Final = {
    ApplyOutcome.APPLIED: NOTIFICATIONS_ACCEPTED,
    ApplyOutcome.STALE: NOTIFICATIONS_ACCEPTED,
    ApplyOutcome.DUPLICATE: NOTIFICATIONS_DUPLICATE,
    ApplyOutcome.UNHANDLED: NOTIFICATIONS_UNHANDLED,
}

app = create_resolver(enable_validation=False)
priming.install()  # NotifyColdStart: SnapStart hooks, or priming now for provisioned concurrency (ops.priming)


def _text(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type=TEXT, body=body, headers={"Cache-Control": "no-store"})


def _page(page: callbacks.Page) -> Response[str]:
    return Response(status_code=page.status_code, body=page.body, headers=page.headers)


def _refusal(exc: MalformedMessage | NotificationRejected) -> NotificationRejected:
    if isinstance(exc, MalformedMessage):
        return NotificationRejected(RejectionReason.MALFORMED, field=exc.field, rule=exc.rule)
    return exc


def _log_refusal(what: str, refusal: NotificationRejected, metric: str, **extra: Any) -> None:
    count_rejection(metric, refusal.reason)
    logger.warning(
        f"{what} rejected", extra={"reason": str(refusal.reason), "field": refusal.field, "rule": refusal.rule, **extra}
    )


@app.post(NOTIFY_PATH, include_in_schema=False)
def notify() -> Response[str]:
    if not notify_source_allowed(app.current_event.raw_event):  # Htouhui's addresses only, when configured
        refusal = NotificationRejected(RejectionReason.SOURCE_NOT_ALLOWED, field="sourceIp", rule="not_in_allow_list")
        _log_refusal("notification", refusal, NOTIFICATIONS_REJECTED)
        return _text(403, "FAIL")
    fields: dict[str, str] = {}
    try:
        fields = callbacks.notification_fields(app.current_event.raw_event)
        outcome = runtime.onboarding().inbound.accept_notification(fields)
    except (MalformedMessage, NotificationRejected) as exc:
        # Unverified: only fixed-size facts reach the log (issue 19), never a value the sender chose.
        _log_refusal(
            "notification", _refusal(exc), NOTIFICATIONS_REJECTED, notify_no_length=len(fields.get("notify_no") or "")
        )
        return _text(400, "FAIL")
    except StoreUnavailable:
        logger.exception("notification not recorded: storage unavailable", extra={"notify_no": fields.get("notify_no")})
        return _text(500, "ERROR")
    count(OUTCOME_METRIC[outcome])
    note_separators("notification", fields, runtime.settings().profile)
    logger.info(
        "notification accepted",
        extra={
            "outcome": outcome.name,
            "notify_no": fields.get("notify_no"),
            "notify_type": fields.get("notify_type"),
            "status": fields.get("status"),
        },
    )
    return _text(200, runtime.settings().profile.ack)


@app.get(RETURN_PATH, include_in_schema=False)
def browser_return() -> Response[str]:
    try:
        fields = callbacks.return_fields(app.current_event.raw_event)
        outcome = runtime.onboarding().inbound.accept_return(fields)
    except (MalformedMessage, NotificationRejected) as exc:
        _log_refusal("browser return", _refusal(exc), RETURNS_REJECTED)
        return _page(callbacks.refused_return_page(malformed=isinstance(exc, MalformedMessage)))
    note_separators("browser return", fields, runtime.settings().profile)
    logger.info("browser return", extra={"status": outcome.status, "htouhui_code": outcome.code})
    return _page(callbacks.return_page(outcome, runtime.settings().frontend_return_url))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
