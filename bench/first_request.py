"""The world a cold start's first request meets: moto (DynamoDB, SQS, EventBridge) and the Htouhui sandbox,
each in its own process, with the template's tables, the reconciliation queue and user u-1001 of the sample
events; and what each target is asked (its sample event from events/).

The sample events are signed with the specification's test keys (docs/spec/protocol/test-keys), so this part
of the bench uses copies of those. Before every sample the parent puts the world back as that target's request
expects it (outside the child's clock): register finds no user (in our table or the sandbox's) and registers
u-1001 now; the others find u-1001 registered, asked for the open-account form, and no notification recorded,
so every round of every target makes the same request with the same outcome.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from stack.aws import client, create_template_tables

from bench.environment import ROOT
from bench.servers import moto_server, sandbox_server

EVENTS = ROOT / "events"
TEST_KEYS = ROOT / "docs" / "spec" / "protocol" / "test-keys"
MINIMAL = Path(__file__).resolve().parent / "minimal"
USERS_TABLE = "UsersTable"
NOTIFICATIONS_TABLE = "NotificationsTable"
EXPORT_BUCKET = "local-exportbucket"
USER = "u-1001"
HTOUHUI_USER_ID = "10604272428"  # events/notify.json's
MOBILE = "13800138000"  # events/register.json's
# functions/<name> -> its sample event under events/; the minimal handler answers register's.
EVENT_OF = {
    "minimal handler": "register.json",
    "data_rights": "data_rights_export.json",
    "notify": "notify.json",
    "open_account": "open_account.json",
    "publish_status": "publish_status_stream.json",
    "query_user": "query_user.json",
    "reconcile_dispatch": "reconcile_dispatch_schedule.json",
    "reconcile_worker": "reconcile_worker_sqs.json",
    "register": "register.json",
}
EXPECTED_STATUS = {"register": 201, "minimal handler": 200, "notify": 200, "open_account": 200, "query_user": 200}
# The worker paces its Htouhui queries (the rate budget over its slots: 0.5 s apart with the template's values).
# That wait is the budget's, not a cold start's: the bench gives the worker a budget that makes it negligible.
WORKER_RATE_BUDGET = "10000"


def keys_copy(folder: Path) -> Path:
    """The test keys, copied (the sandbox and the functions read them as `file:` sources)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in TEST_KEYS.glob("*.pem"):
        shutil.copy2(path, folder / path.name)
        (folder / path.name).chmod(0o600)
    return folder


def user_item(now: str = "2026-11-28T10:00:00Z") -> dict[str, Any]:
    return {
        "third_party_user_id": {"S": USER},
        "htouhui_user_id": {"S": HTOUHUI_USER_ID},
        "registration": {"S": "DONE"},
        "mobile_digest": {"S": "0" * 64},
        "open_requested": {"BOOL": True},
        "created_at": {"S": now},
        "updated_at": {"S": now},
    }


@dataclass
class World:
    moto_url: str
    sandbox_url: str
    keys_dir: Path
    queue_url: str
    scratch: Path

    def environment(self, name: str) -> dict[str, str]:
        """What the target's environment gains: the endpoints, the queue, the sandbox as Htouhui."""
        env = {
            "AWS_ENDPOINT_URL": self.moto_url,  # every service (EventBridge's own variable is ..._EVENTBRIDGE)
            "AWS_ENDPOINT_URL_DYNAMODB": self.moto_url,
            "AWS_ENDPOINT_URL_SQS": self.moto_url,
            "HTOUHUI_BASE_URL": self.sandbox_url,
            "RECONCILE_QUEUE_URL": self.queue_url,
            "USERS_TABLE": USERS_TABLE,
            "NOTIFICATIONS_TABLE": NOTIFICATIONS_TABLE,
            "EXPORT_BUCKET": EXPORT_BUCKET,
        }
        if name == "reconcile_worker":
            env["RECONCILE_RATE_BUDGET"] = WORKER_RATE_BUDGET
        if name == "minimal handler":
            signed = self.scratch / "minimal-signed.bin"
            signature = self.scratch / "minimal-signature.txt"
            if not signed.exists():
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import padding

                key: Any = serialization.load_pem_private_key(
                    (self.keys_dir / "htouhui_private.pem").read_bytes(), None
                )
                message = json.loads((EVENTS / EVENT_OF[name]).read_text())["body"].encode()
                signed.write_bytes(message)
                signature.write_bytes(base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())))
            env.update(
                POWERTOOLS_SERVICE_NAME="htouhui-onboarding",  # as the template's Globals give the functions
                POWERTOOLS_METRICS_NAMESPACE="Htouhui",
                POWERTOOLS_LOG_LEVEL="INFO",
                MINIMAL_PUBLIC_KEY=str(self.keys_dir / "htouhui_public.pem"),
                MINIMAL_SIGNATURE=str(signature),
                MINIMAL_SIGNED=str(signed),
            )
        return env

    def event(self, name: str) -> Path:
        return EVENTS / EVENT_OF[name]

    def reset(self, name: str) -> None:
        """The world as `name`'s request expects it (see the module's docstring)."""
        dynamodb = client("dynamodb", self.moto_url)
        dynamodb.delete_item(TableName=USERS_TABLE, Key={"third_party_user_id": {"S": USER}})
        for item in dynamodb.scan(TableName=NOTIFICATIONS_TABLE, ProjectionExpression="notify_no").get("Items", []):
            dynamodb.delete_item(TableName=NOTIFICATIONS_TABLE, Key={"notify_no": item["notify_no"]})
        httpx.post(f"{self.sandbox_url}/_sandbox/reset", timeout=10).raise_for_status()
        if name == "register":
            return
        dynamodb.put_item(TableName=USERS_TABLE, Item=user_item())
        httpx.post(
            f"{self.sandbox_url}/_sandbox/users",
            json={"third_party_user_id": USER, "mobile": MOBILE},
            timeout=10,
        ).raise_for_status()


@contextmanager
def world(scratch: Path) -> Iterator[World]:
    keys = keys_copy(scratch / "test-keys")
    with ExitStack() as stack:
        moto = stack.enter_context(moto_server())
        sandbox = stack.enter_context(sandbox_server(keys))
        dynamodb = client("dynamodb", moto.url)
        create_template_tables(
            dynamodb, {"UsersTable": USERS_TABLE, "NotificationsTable": NOTIFICATIONS_TABLE}, streams=False
        )
        client("s3", moto.url).create_bucket(Bucket=EXPORT_BUCKET)
        queue_url = client("sqs", moto.url).create_queue(QueueName="ReconcileQueue")["QueueUrl"]
        yield World(moto.url, sandbox.url, keys, queue_url, scratch)
