"""The warm notify path: the real notify handler against a moto server, against a floor handler.

The real handler (functions/notify/app.py, loaded as Lambda loads it, its environment from the template)
gets payload-2.0 events of signed notifications: each user rises 1 -> 2 -> 3, every notification a fresh
notify_no. The floor handler gets the same kind of event for other users and does only what no
implementation can skip: read the form, `protocol.verify`, and the same conditional UpdateItem through
boto3 against the same server. The two alternate in blocks, so noise falls on both; the first
invocations of each (connection set-up, key loading) are not counted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from stack.inprocess import http_event

from bench.environment import function_environment, functions
from bench.servers import AWS_ENV, PARTNER_ID
from bench.stats import Figure, interleave_blocks, median, percentile

TARGET = 1.5
USERS_TABLE = "UsersTable"  # what the template's !Ref of the table resolves to here
NOTIFICATIONS_TABLE = "NotificationsTable"


def notify_event(body: str) -> dict[str, Any]:
    """What API Gateway hands the notify function for Htouhui's form post of `body`."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return http_event("POST", "/htouhui/notify", body=body, headers=headers, domain="api.example.com", iam=False)


def user_item(user: str, htouhui_user_id: str, id_card: str, updated_at: str) -> dict[str, Any]:
    """A registered user who asked for the open-account page: what the store holds before any status."""
    return {
        "third_party_user_id": {"S": user},
        "htouhui_user_id": {"S": htouhui_user_id},
        "registration": {"S": "DONE"},
        "mobile_digest": {"S": "0" * 64},
        "open_requested": {"BOOL": True},
        "id_card": {"S": id_card},
        "created_at": {"S": updated_at},
        "updated_at": {"S": updated_at},
    }


def put_users(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def create_tables(client: Any, users: str, notifications: str) -> None:
    """The two tables of template.yaml, without the users table's stream.

    The stream costs a real DynamoDB write nothing, but moto keeps every stream record inside the table
    object and deep-copies the tables a transaction touches: with a stream, each TransactWriteItems would
    get slower with every write made before it.
    """
    from stack.aws import create_template_tables

    create_template_tables(client, {"UsersTable": users, "NotificationsTable": notifications}, streams=False)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet_logs() -> Iterator[io.StringIO]:
    """Log lines and EMF metrics written as in Lambda (formatted, masked), into a buffer nobody reads."""
    sink = io.StringIO()
    from onboarding.observability import logger

    handlers = [
        handler
        for handler in {logger.registered_handler, *logging.getLogger("htouhui").handlers}
        if isinstance(handler, logging.StreamHandler)
    ]
    saved = [handler.setStream(sink) for handler in handlers]
    try:
        with contextlib.redirect_stdout(sink):
            yield sink
    finally:
        for handler, stream in zip(handlers, saved, strict=True):
            if stream is not None:
                handler.setStream(stream)


def signed_bodies(users: list[tuple[str, str]], htouhui_private: Any, prefix: str) -> list[str]:
    """Form bodies of signed notifications: each user 1, 2, 3 in turn; a fresh notify_no each."""
    from htouhui import protocol

    stamp = protocol.china_timestamp()
    bodies = []
    for number, (user, htouhui_user_id) in enumerate(users):
        for status in ("1", "2", "3"):
            fields = {
                "partner_id": PARTNER_ID,
                "notify_no": f"{prefix}{number:06d}{status}{uuid.uuid4().hex[:12]}",
                "notify_type": "OPEN_ACCOUNT",
                "timestamp": stamp,
                "htouhui_user_id": htouhui_user_id,
                "third_party_user_id": user,
                "status": status,
                "bank_card_number": "6222020200112233445",
            }
            bodies.append(urlencode(protocol.signed(fields, htouhui_private)))
    return bodies


class WireClock:
    """Seconds spent waiting on DynamoDB (botocore's HTTP send, request out to response in), per thread."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._original: Any = None

    def __enter__(self) -> WireClock:
        from botocore.httpsession import URLLib3Session

        original = URLLib3Session.send
        self._original = original
        clock = self

        def send(session: Any, request: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(session, request)
            finally:
                clock.seconds += time.perf_counter() - started

        URLLib3Session.send = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from botocore.httpsession import URLLib3Session

        URLLib3Session.send = self._original  # type: ignore[method-assign]


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def floor_handlers(htouhui_public: Any, dynamodb: Any) -> tuple[Handler, Handler]:
    """The floor (verify + the one conditional UpdateItem) and the floor with the design's transaction.

    Only the unavoidable: read the form, verify the signature, then the write. The requests are built by
    the store's own request builders, so they are byte for byte the requests the real handler sends.
    """
    from htouhui import protocol
    from onboarding.store import StatusUpdate, UserStore
    from onboarding.store.history import history_put

    template = UserStore(USERS_TABLE, NOTIFICATIONS_TABLE)  # only to build the identical requests

    def verified(event: dict[str, Any]) -> StatusUpdate | None:
        fields = dict(parse_qsl(event["body"], keep_blank_values=True))
        if not protocol.verify(fields, htouhui_public):
            return None
        return StatusUpdate(
            third_party_user_id=fields["third_party_user_id"],
            htouhui_user_id=fields["htouhui_user_id"],
            status=int(fields["status"]),
            source="notify",
            received_at=datetime.now(UTC),
            bank_card_number=fields.get("bank_card_number"),
            notify_no=fields["notify_no"],
            timestamp=fields["timestamp"],
        )

    def floor(event: dict[str, Any], context: Any) -> dict[str, Any]:
        update = verified(event)
        if update is None:
            return {"statusCode": 400, "body": "FAIL"}
        with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
            dynamodb.update_item(**template._status_update(update))
        return {"statusCode": 200, "body": "SUCCESS"}

    def floor_transaction(event: dict[str, Any], context: Any) -> dict[str, Any]:
        update = verified(event)
        if update is None:
            return {"statusCode": 400, "body": "FAIL"}
        history = {"TableName": NOTIFICATIONS_TABLE, **history_put(update, 0)}
        with contextlib.suppress(dynamodb.exceptions.TransactionCanceledException):
            dynamodb.transact_write_items(TransactItems=[{"Put": history}, {"Update": template._status_update(update)}])
        return {"statusCode": 200, "body": "SUCCESS"}

    return floor, floor_transaction


SIDES = ("real", "floor", "floor_tx")


def measure(
    keys_dir: Path,
    moto_url: str,
    *,
    invocations: int = 2000,
    warmup: int = 30,
    block: int = 50,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], dict[str, Any]]:
    import boto3
    from botocore.config import Config

    from htouhui import protocol
    from htouhui.models import id_card_check_character
    from onboarding import runtime

    env = {
        **function_environment("notify", keys_dir=keys_dir),
        **AWS_ENV,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "USERS_TABLE": USERS_TABLE,
        "NOTIFICATIONS_TABLE": NOTIFICATIONS_TABLE,
    }
    htouhui_private = protocol.load_private_key((keys_dir / "htouhui_private.pem").read_text())
    htouhui_public = protocol.load_public_key((keys_dir / "htouhui_public.pem").read_text())
    per_side = -(-(invocations + warmup) // 3)  # users per side, three notifications each
    with environment(env):
        config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
        dynamodb = boto3.client("dynamodb", config=config)
        create_tables(dynamodb, USERS_TABLE, NOTIFICATIONS_TABLE)
        first17 = "11010519491231002"
        id_card = first17 + id_card_check_character(first17)
        stamp = "2026-11-28T00:00:00.000Z"
        events = {}
        for number, side in enumerate(SIDES, start=1):
            users = [(f"warm-{side}-{n:05d}", f"{number}{n:010d}") for n in range(per_side)]
            put_users(dynamodb, USERS_TABLE, [user_item(u, h, id_card, stamp) for u, h in users])
            events[side] = [notify_event(body) for body in signed_bodies(users, htouhui_private, str(number))]
        progress(f"warm notify: {len(SIDES) * per_side} users seeded, notifications signed")

        runtime.reset()
        source = functions()
        floor, floor_transaction = floor_handlers(htouhui_public, dynamodb)
        handlers: dict[str, Handler] = {"real": source.handler("notify"), "floor": floor, "floor_tx": floor_transaction}
        total: dict[str, list[float]] = {side: [] for side in SIDES}
        own: dict[str, list[float]] = {side: [] for side in SIDES}
        answers: dict[str, dict[str, int]] = {side: {} for side in SIDES}

        def runner(side: str, wire: WireClock) -> Callable[[int], None]:
            handler, side_events = handlers[side], events[side]

            def run(index: int) -> None:
                event = side_events[index]
                waited = wire.seconds
                started = time.perf_counter()
                answer = handler(event, source.context("notify"))
                elapsed = time.perf_counter() - started
                status = str(answer["statusCode"])
                answers[side][status] = answers[side].get(status, 0) + 1
                if index >= warmup:
                    total[side].append(elapsed * 1000)
                    own[side].append((elapsed - (wire.seconds - waited)) * 1000)

            return run

        with quiet_logs(), WireClock() as wire:
            interleave_blocks(invocations + warmup, block, [runner(side, wire) for side in SIDES])
        runtime.reset()
        # every notification must have been accepted and applied, else the timings mean nothing
        completed = dynamodb.scan(
            TableName=USERS_TABLE,
            Select="COUNT",
            FilterExpression="#s = :three",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":three": {"N": "3"}},
        )["Count"]
        history = dynamodb.scan(TableName=NOTIFICATIONS_TABLE, Select="COUNT")["Count"]

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "median": round(median(values), 3),
            "p90": round(percentile(values, 0.9), 3),
            "p99": round(percentile(values, 0.99), 3),
            "max": round(max(values), 3),
        }

    real, base, base_tx = total["real"], total["floor"], total["floor_tx"]
    figures = [
        Figure("warm notify", "median (floor: UpdateItem)", median(real), median(base), "ms", target=TARGET),
        Figure("warm notify", "p99 (floor: UpdateItem)", percentile(real, 0.99), percentile(base, 0.99), "ms"),
        Figure(
            "warm notify",
            "median (floor: the transaction)",
            median(real),
            median(base_tx),
            "ms",
            target=TARGET,
            note="floor writes history + status in one TransactWriteItems, as the design requires",
        ),
        Figure("warm notify", "p99 (floor: the transaction)", percentile(real, 0.99), percentile(base_tx, 0.99), "ms"),
        Figure(
            "warm notify",
            "median time in the function, DynamoDB wait excluded",
            median(own["real"]),
            median(own["floor"]),
            "ms",
            note=f"diagnostic: our code's own cost; floor with the transaction: {median(own['floor_tx']):.2f} ms",
        ),
    ]
    raw = {
        "invocations_per_side": len(real),
        "warmup": warmup,
        "block": block,
        "answers": answers,
        "users_at_status_3": completed,
        "users_per_side": per_side,
        "history_records": history,
        "total_ms": {side: summary(values) for side, values in total.items()},
        "own_ms": {side: summary(values) for side, values in own.items()},
    }
    return figures, raw
