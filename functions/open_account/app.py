"""POST /users/{third_party_user_id}/open-account: the signed form the user's browser posts to Htouhui.

JSON `{"method", "action", "fields", "html"}` by default; with `Accept: text/html` the auto-submitting
page itself, with its Content-Security-Policy. notify_url is always our own /htouhui/notify.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from htouhui.page import HTML
from onboarding import runtime
from onboarding.api import (
    ERROR_RESPONSES,
    JSON,
    NOTIFY_PATH,
    RETURN_PATH,
    OpenAccountAnswer,
    UserIdInPath,
    create_resolver,
    own_base_url,
    own_host,
    wants_html,
)
from onboarding.models import OpenAccountBody
from onboarding.observability import logger, metrics

app = create_resolver()


@app.post(
    "/users/<third_party_user_id>/open-account",
    summary="Build the open-account page",
    description=(
        "The signed form (open account, trading password, fee authorisation) the user's browser submits to "
        "Htouhui. With Accept: text/html the answer is the auto-submitting page itself. The user must be "
        "registered first; return_url must be on the allow-list (default: our own /htouhui/return)."
    ),
    operation_id="openAccount",
    tags=["users"],
    responses={
        200: {
            "description": "the signed form, or the page with Accept: text/html",
            "content": {
                "application/json": {"model": OpenAccountAnswer},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        **ERROR_RESPONSES,
    },
)
def open_account(
    third_party_user_id: UserIdInPath,
    body: OpenAccountBody,
) -> Response[Any]:
    base_url = own_base_url(app, runtime.settings().public_base_url)
    page = runtime.onboarding().registration.open_account(
        third_party_user_id,
        body,
        notify_url=base_url + NOTIFY_PATH,
        default_return_url=base_url + RETURN_PATH,
        own_host=own_host(base_url),
    )
    logger.info("open-account page built", extra={"type": body.type})
    if wants_html(app):
        return Response(
            status_code=200,
            content_type=HTML,
            body=page.html,
            headers={
                "Content-Security-Policy": page.content_security_policy,
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )
    answer = OpenAccountAnswer(method=page.method, action=page.action, fields=page.fields, html=page.html)
    return Response(status_code=200, content_type=JSON, body=answer.model_dump(), headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
