"""The cold-start floor: what any Lambda function of this shape pays before a line of our code runs.

boto3 with a DynamoDB client created at module level (the usual pattern), httpx (the HTTP client) and
cryptography's RSA primitives. The handler does nothing.
"""

from __future__ import annotations

from typing import Any

import boto3
import httpx
from cryptography.hazmat.primitives import hashes, serialization  # noqa: F401
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: F401

dynamodb = boto3.client("dynamodb")
http = httpx


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {}
