"""A moto DynamoDB server for tests, and the two tables of the bundle design created through boto3.

moto's threaded server runs requests concurrently, and its DynamoDB backend has no lock: a
conditional write is a check then a write, and a cancelled transaction restores a copy of the
whole table, undoing writes that ran beside it. Real DynamoDB applies each request atomically, so
`SerialMotoServer` serves requests one at a time (clients still race; each request is atomic).

Import it from any test (`tests` is on pytest's pythonpath): `from htouhui_dynamo import ...`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

TEST_AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


class _Serialised:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class SerialMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer on an ephemeral port whose requests are applied one at a time."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)

    def _server_entry(self) -> None:
        app = _Serialised(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


@contextmanager
def moto_dynamodb() -> Iterator[str]:
    """A started server's endpoint URL, with the test AWS environment set while it runs."""
    saved = {name: os.environ.get(name) for name in [*TEST_AWS_ENV, "AWS_ENDPOINT_URL_DYNAMODB"]}
    server = SerialMotoServer()
    server.start()
    os.environ.update(TEST_AWS_ENV)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = server.url
    try:
        yield server.url
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
    """The users and notifications tables with the keys, indexes and stream of the bundle design."""
    client.create_table(
        TableName=users_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "third_party_user_id", "AttributeType": "S"},
            {"AttributeName": "htouhui_user_id", "AttributeType": "S"},
            {"AttributeName": "unfinished", "AttributeType": "S"},
            {"AttributeName": "updated_at", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "third_party_user_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-htouhui-user-id",
                "KeySchema": [{"AttributeName": "htouhui_user_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "unfinished",
                "KeySchema": [
                    {"AttributeName": "unfinished", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.create_table(
        TableName=notifications_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "notify_no", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "notify_no", "KeyType": "HASH"}],
    )
