"""A moto DynamoDB server for tests, and the two tables of template.yaml created through boto3.

The server is the local stack's (`stack.aws.serial_moto_server`): it applies one request at a time, as
DynamoDB applies each request atomically; the tables come from the template, as the local stack's do.

Import it from any test (`tests` is on pytest's pythonpath): `from htouhui_dynamo import ...`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from stack.aws import create_template_tables, serial_moto_server

TEST_AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@contextmanager
def moto_dynamodb() -> Iterator[str]:
    """A started server's endpoint URL, with the test AWS environment set while it runs."""
    saved = {name: os.environ.get(name) for name in [*TEST_AWS_ENV, "AWS_ENDPOINT_URL_DYNAMODB"]}
    server = serial_moto_server("127.0.0.1", 0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    os.environ.update(TEST_AWS_ENV)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = url
    try:
        yield url
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dynamodb_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=TEST_AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def create_tables(client: Any, users_table: str, notifications_table: str) -> None:
    """The users and notifications tables exactly as template.yaml declares them (keys, indexes, stream)."""
    create_template_tables(client, {"UsersTable": users_table, "NotificationsTable": notifications_table})
