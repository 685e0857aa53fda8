"""The minimal handler: the design's mandated parts and nothing of ours, as a second cold-start floor.

A Powertools HTTP API resolver, Logger and Metrics as the functions decorate their handlers, one pydantic
model validating the body, a boto3 DynamoDB client making one call (GetItem), httpx imported (the Htouhui
client's library), and cryptography loading an RSA public key and verifying a signature. It answers
events/register.json's route. The bench gives it the key, the signature and the signed bytes as files
(MINIMAL_PUBLIC_KEY, MINIMAL_SIGNATURE, MINIMAL_SIGNED) and the table as USERS_TABLE.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import boto3
import httpx  # noqa: F401  # mandated: the Htouhui client's HTTP library, imported as a function imports it
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import BaseModel

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()
dynamodb = boto3.client("dynamodb")


class Body(BaseModel):
    third_party_user_id: str
    mobile: str
    password: str | None = None


@app.post("/users")
def register() -> Response[str]:
    body = Body.model_validate_json(app.current_event.body or "{}")
    found = dynamodb.get_item(
        TableName=os.environ["USERS_TABLE"], Key={"third_party_user_id": {"S": body.third_party_user_id}}
    )
    key: Any = serialization.load_pem_public_key(Path(os.environ["MINIMAL_PUBLIC_KEY"]).read_bytes())
    signature = base64.b64decode(Path(os.environ["MINIMAL_SIGNATURE"]).read_bytes())
    key.verify(signature, Path(os.environ["MINIMAL_SIGNED"]).read_bytes(), padding.PKCS1v15(), hashes.SHA256())
    metrics.add_metric(name="Registrations", unit=MetricUnit.Count, value=1)
    logger.info("checked", extra={"found": "Item" in found})
    return Response(status_code=200, content_type="application/json", body=body.model_dump_json())


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
