"""POST /users: register the merchant's user with Htouhui (201 now, 200 when already registered)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from onboarding import runtime
from onboarding.api import ERROR_RESPONSES, JSON, create_resolver
from onboarding.models import RegisterBody, UserView
from onboarding.observability import REGISTRATIONS, count, logger, metrics

app = create_resolver()


@app.post(
    "/users",
    summary="Register a user with Htouhui",
    description=(
        "Registers the merchant's user with Htouhui (register interface). 201 when Htouhui registered the user "
        "now, 200 when the user was already registered with the same mobile (Htouhui is not called again)."
    ),
    operation_id="registerUser",
    tags=["users"],
    responses={
        201: {"description": "registered now", "content": {"application/json": {"model": UserView}}},
        200: {
            "description": "already registered with this mobile",
            "content": {"application/json": {"model": UserView}},
        },
        **ERROR_RESPONSES,
    },
)
def register(body: RegisterBody) -> Response[UserView]:
    view, created = runtime.onboarding().registration.register(body)
    if created:
        count(REGISTRATIONS)
    logger.info("user registered" if created else "user already registered", extra={"created_now": created})
    return Response(status_code=201 if created else 200, content_type=JSON, body=view)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
