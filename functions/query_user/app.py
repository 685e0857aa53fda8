"""GET /users/{third_party_user_id}: the user view from our table; `?refresh=true` asks Htouhui first."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from onboarding import runtime
from onboarding.api import ERROR_RESPONSES, JSON, UserIdInPath, create_resolver
from onboarding.models import UserView
from onboarding.observability import logger, metrics

app = create_resolver()


@app.get(
    "/users/<third_party_user_id>",
    summary="Read a user's onboarding state",
    description=(
        "The user view from our table (personal data masked). With refresh=true, Htouhui's query interface is "
        "asked first and its answer stored through the same monotonic update as a notification."
    ),
    operation_id="getUser",
    tags=["users"],
    responses={200: {"description": "the user view", "content": {"application/json": {"model": UserView}}}}
    | {status: answer for status, answer in ERROR_RESPONSES.items() if status != 409},
)
def get_user(
    third_party_user_id: UserIdInPath,
    refresh: Annotated[bool, Query(description="ask Htouhui (query interface) before answering")] = False,
) -> Response[UserView]:
    registration = runtime.onboarding().registration
    view = registration.refresh(third_party_user_id) if refresh else registration.view(third_party_user_id)
    return Response(status_code=200, content_type=JSON, body=view)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
