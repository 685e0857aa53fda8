"""The AWS side, emulated by moto's server: the tables, their streams feeding functions, the event bus and its rules.

Tables are created from the template's `AWS::DynamoDB::Table` properties (what DynamoDB itself needs: keys,
attribute definitions, indexes, stream, billing mode, TTL); encryption, point-in-time recovery and deletion
protection are account features with no local meaning and are left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack import patterns
from stack.lambdas import FunctionPool, InvocationFailure
from stack.template import ACCOUNT_ID, REGION, RuleSource, StreamSource, Table

log = logging.getLogger("stack")
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"

_TABLE_KEYS = ("TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "ProvisionedThroughput")
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


def serial_moto_server(host: str, port: int) -> Any:
    """moto's threaded server, applying one request at a time.

    moto's DynamoDB backend has no lock: a conditional write is a check then a write, and a cancelled
    transaction restores a copy of the whole table, undoing writes that ran beside it. Real DynamoDB applies
    each request atomically; so does this server (clients still race, each request is atomic). Without it a
    storm of concurrent notifications loses updates that DynamoDB itself would keep.

    `start()` binds in the caller's thread and raises OSError when the port is taken: moto's own `start()` binds
    in its thread, where werkzeug's "Port … is in use" ends the thread and leaves `start()` waiting forever.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    lock = threading.Lock()
    _release_during_sqs_waits()
    _list_moto_modules_once()

    class Serial(ThreadedMotoServer):
        def start(self) -> None:
            application = DomainDispatcherApplication(create_backend_app)

            def serial(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
                with lock:
                    _serving.lock = lock
                    try:
                        return list(application(environ, start_response))
                    finally:
                        _serving.lock = None

            with listening_socket(self._ip_address, self._port) as listener:  # werkzeug serves a duplicate of it
                self._server = make_server(
                    self._ip_address, self._port, serial, True, request_handler=MotoRequestHandler, fd=listener.fileno()
                )
            self._server_ready_event.set()
            self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
            self._thread.start()

        def stop(self) -> None:
            if self._server is not None:
                if self._thread is not None:
                    self._server.shutdown()
                    self._thread.join()
                self._server.server_close()
                self._server = None

    return Serial(ip_address=host, port=port, verbose=False)


def _list_moto_modules_once() -> None:
    """moto's server lists its own package folder (a stat per entry) on every request to find the service; the
    list never changes while it runs, so it is read once (a request costs a third less)."""
    from moto import backends

    if not getattr(backends.list_of_moto_modules, "listed_once", False):
        modules = tuple(backends.list_of_moto_modules())

        def listed() -> tuple[str, ...]:
            return modules

        setattr(listed, "listed_once", True)  # noqa: B010
        setattr(backends, "list_of_moto_modules", listed)  # noqa: B010  # moto's own function, replaced


_serving = threading.local()  # .lock: the serial server's lock, while this thread applies a request under it


def _release_during_sqs_waits() -> None:
    """A long poll (ReceiveMessage with WaitTimeSeconds) lets go of the serial server's lock while it waits.

    moto implements the wait: its receive scans the queue, then waits on the queue's condition (woken by a sent
    message, or after a second to look again) until a message comes or the wait time is up. Under the serial
    lock that wait would hold every other request back for up to 20 s; released, the scan itself is still
    applied under the lock, and the sender that wakes the wait gets through.
    """
    from moto.sqs import models

    original = models.Queue.wait_for_messages
    if getattr(original, "releases_serial_lock", False):
        return

    def wait_for_messages(self: Any, timeout: int) -> None:
        held = getattr(_serving, "lock", None)
        if held is None:
            original(self, timeout)
            return
        _serving.lock = None
        held.release()
        try:
            original(self, timeout)
        finally:
            held.acquire()
            _serving.lock = held

    wait_for_messages.releases_serial_lock = True  # type: ignore[attr-defined]
    models.Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (SO_REUSEADDR, as HTTP servers bind); OSError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    return listener


def client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )


def create_table_request(table: Table) -> dict[str, Any]:
    """The boto3 `create_table` arguments for a template table."""
    properties = table.properties
    request: dict[str, Any] = {key: properties[key] for key in _TABLE_KEYS if key in properties}
    request["TableName"] = table.name
    on_demand = request.get("BillingMode") == "PAY_PER_REQUEST"
    if on_demand:
        request.pop("ProvisionedThroughput", None)
    elif "ProvisionedThroughput" not in request:
        request["BillingMode"] = "PAY_PER_REQUEST"
        on_demand = True
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in properties.get(kind) or []:
            item = {key: index[key] for key in _INDEX_KEYS if key in index}
            if on_demand or kind == "LocalSecondaryIndexes":
                item.pop("ProvisionedThroughput", None)
            indexes.append(item)
        if indexes:
            request[kind] = indexes
    stream = properties.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


def create_template_tables(
    dynamodb: Any, names: Mapping[str, str], *, template: Path = DEFAULT_TEMPLATE, streams: bool = True
) -> None:
    """Create some of the template's tables under other names (tests, the bench): logical id -> table name.

    The template stays the one source of keys, indexes and streams; `streams=False` leaves the stream out
    (moto keeps every stream record inside the table, which a long benchmark does not want).
    """
    tables = load_tables(template)
    for logical, name in names.items():
        request = create_table_request(dataclasses.replace(tables[logical], name=name))
        if not streams:
            request.pop("StreamSpecification", None)
        dynamodb.create_table(**request)


@functools.cache
def load_tables(template: Path) -> dict[str, Table]:
    from stack.template import load

    return load(template).tables


def create_tables(endpoint: str, tables: dict[str, Table]) -> dict[str, dict[str, Any]]:
    """Create every table; returns logical id -> moto's TableDescription."""
    dynamodb = client("dynamodb", endpoint)
    created: dict[str, dict[str, Any]] = {}
    for logical, table in tables.items():
        description = dynamodb.create_table(**create_table_request(table))["TableDescription"]
        ttl = table.properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        created[logical] = description
    return created


def create_buckets(endpoint: str, buckets: dict[str, str]) -> None:
    """Create every bucket of the template on moto's S3 (its encryption and lifecycle are AWS's to enforce)."""
    s3 = client("s3", endpoint)
    for name in buckets.values():
        s3.create_bucket(Bucket=name)


def stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from GetRecords as Lambda hands it to a function (epoch seconds, eventSourceARN, version 1.1)."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


# A DynamoDB stream has no long poll: the poller reads every 0.25 s (as Lambda does) while records come, and
# backs off on empty reads, doubling the wait up to 2 s (an idle laptop: one read of each shard per 2 s).
STREAM_POLL_SECONDS = (0.25, 2.0)


class StreamPoller:
    """Lambda's event source mapping for a DynamoDB stream: polls each shard, invokes in order, retries failures."""

    def __init__(
        self,
        endpoint: str,
        source: StreamSource,
        stream_arn: str,
        pool: FunctionPool,
        stop: threading.Event,
        *,
        interval: float = STREAM_POLL_SECONDS[0],
        max_interval: float = STREAM_POLL_SECONDS[1],
        on_invoke: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.streams = client("dynamodbstreams", endpoint)
        self.source = source
        self.stream_arn = stream_arn
        self.pool = pool
        self.stop = stop
        self.interval = interval
        self.max_interval = max_interval
        self.on_invoke = on_invoke or (lambda _name, _count, _outcome: None)
        # The last sequence number read per shard (None: nothing read yet, start at the trim horizon). A fresh
        # iterator is asked for on every poll rather than following NextShardIterator: moto restores a copy of
        # the table when it cancels a transaction, and an iterator kept across that reads the old shard forever.
        self.positions: dict[str, str | None] = {}
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.delivered = 0

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"stream-{self.source.function}", daemon=True)
        thread.start()
        return thread

    def _refresh_shards(self) -> None:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"].get("Shards", [])
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.positions:
                latest = self.source.starting_position != "TRIM_HORIZON"
                self.positions[shard_id] = self._last_sequence_number(shard_id) if latest else None
                self.pending[shard_id] = []

    def _iterator(self, shard_id: str, after: str | None) -> str:
        if after is None:
            answer = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        else:
            answer = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=after,
            )
        return str(answer["ShardIterator"])

    def _last_sequence_number(self, shard_id: str) -> str | None:
        """Where LATEST starts: after every record already in the shard."""
        last: str | None = None
        while True:
            records = self.streams.get_records(ShardIterator=self._iterator(shard_id, last), Limit=1000)["Records"]
            if not records:
                return last
            last = str(records[-1]["dynamodb"]["SequenceNumber"])

    def run(self) -> None:
        """Poll every `interval` while records come; each empty poll (or error) doubles the wait up to
        `max_interval`, and the first record brings it back (`next_wait`)."""
        wait = self.interval
        while not self.stop.is_set():
            found = 0
            try:
                found = self.poll_once()
            except Exception as exc:
                if self.stop.is_set():
                    return
                log.warning("stream %s: %s", self.source.function, type(exc).__name__)
            wait = self.next_wait(wait, found)
            self.stop.wait(wait)

    def next_wait(self, wait: float, found: int) -> float:
        """The wait before the next poll: the shortest after records, else twice the last, at most the cap."""
        return self.interval if found else min(self.max_interval, wait * 2)

    def poll_once(self) -> int:
        """One read of every shard, its records delivered; returns how many records were read."""
        found = 0
        self._refresh_shards()
        for shard_id, after in list(self.positions.items()):
            answer = self.streams.get_records(ShardIterator=self._iterator(shard_id, after), Limit=1000)
            raw = answer.get("Records", [])
            found += len(raw)
            if raw:
                self.positions[shard_id] = str(raw[-1]["dynamodb"]["SequenceNumber"])
            records = [stream_record(record, self.stream_arn) for record in raw]
            if self.source.filters:
                records = [
                    record
                    for record in records
                    if any(patterns.matches(pattern, record) for pattern in self.source.filters)
                ]
            self.pending[shard_id].extend(records)
            self._deliver(shard_id)
        return found

    def _deliver(self, shard_id: str) -> None:
        queue = self.pending[shard_id]
        attempts = 0
        while queue and not self.stop.is_set():
            batch = queue[: self.source.batch_size]
            try:
                result = self.pool.invoke({"Records": batch})
            except InvocationFailure as failure:
                attempts += 1
                self.on_invoke(self.source.function, len(batch), f"failed ({failure.error_type})")
                if 0 <= self.source.maximum_retry_attempts < attempts:
                    del queue[: len(batch)]  # dropped, as Lambda does after the last retry
                    attempts = 0
                    continue
                self.stop.wait(min(30.0, 0.5 * 2**attempts))
                continue
            failed = _first_failure(result, batch) if self.source.report_batch_item_failures else None
            if failed is None:
                del queue[: len(batch)]
                self.delivered += len(batch)
                attempts = 0
                self.on_invoke(self.source.function, len(batch), "ok")
            else:
                attempts += 1
                self.delivered += failed
                del queue[:failed]
                self.on_invoke(self.source.function, len(batch), f"partial failure at {failed}")
                if 0 <= self.source.maximum_retry_attempts < attempts:
                    del queue[:1]
                    attempts = 0
                    continue
                self.stop.wait(min(30.0, 0.5 * 2**attempts))


def _first_failure(result: Any, batch: list[dict[str, Any]]) -> int | None:
    """Index of the first failed record per ReportBatchItemFailures, or None when the batch succeeded."""
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures") or []
    sequence = [record["dynamodb"].get("SequenceNumber") for record in batch]
    indexes = [
        sequence.index(item.get("itemIdentifier")) for item in failures if item.get("itemIdentifier") in sequence
    ]
    if failures and not indexes:
        return 0  # an identifier Lambda does not know: the whole batch is retried
    return min(indexes) if indexes else None


class EventBus:
    """The template's buses and rules on moto's EventBridge; each rule's matches reach its function via a queue."""

    def __init__(
        self,
        endpoint: str,
        stop: threading.Event,
        *,
        on_event: Callable[[str, str, str], None],
        wait_seconds: int = 20,
    ) -> None:
        self.events = client("events", endpoint)
        self.sqs = client("sqs", endpoint)
        self.stop = stop
        self.on_event = on_event
        self.wait_seconds = wait_seconds  # the rules' queues are long-polled, as the SQS mappings are
        self.buses: set[str] = {"default"}

    def ensure_bus(self, name: str | None) -> str:
        name = name or "default"
        if name.startswith("arn:"):
            name = name.rsplit("/", 1)[-1]
        if name not in self.buses:
            self.events.create_event_bus(Name=name)
            self.buses.add(name)
        return name

    def _queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def add_rule(self, rule: RuleSource, pool: FunctionPool) -> None:
        bus = self.ensure_bus(rule.bus)
        name = f"local-{rule.function}-{rule.event}"[:64]
        url, arn = self._queue(name)
        self.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(rule.pattern))
        self.events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "local", "Arn": arn}])
        threading.Thread(target=self._deliver, args=(url, rule, pool), name=name, daemon=True).start()

    def observe(self, bus: str) -> None:
        """Log every event put on `bus` (source and detail-type only: details may be personal)."""
        bus = self.ensure_bus(bus)
        name = f"local-observe-{bus}"[:64]
        url, arn = self._queue(name)
        self.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"account": [{"prefix": ""}]}))
        self.events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "local", "Arn": arn}])
        threading.Thread(target=self._observe, args=(url, bus), name=name, daemon=True).start()

    def _messages(self, url: str) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=self.wait_seconds
            ).get("Messages", [])
        except Exception:
            self.stop.wait(1.0)  # moto is going away, or not there yet: not a busy loop
            return []
        for message in found:  # at-least-once is what EventBridge promises anyway: a failed delete is harmless
            with contextlib.suppress(Exception):
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def _observe(self, url: str, bus: str) -> None:
        while not self.stop.is_set():
            for message in self._messages(url):
                event = json.loads(message["Body"])
                self.on_event(bus, str(event.get("source")), str(event.get("detail-type")))

    def _deliver(self, url: str, rule: RuleSource, pool: FunctionPool) -> None:
        while not self.stop.is_set():
            for message in self._messages(url):
                event = eventbridge_event(json.loads(message["Body"]))
                payload = json.loads(rule.input) if rule.input else event
                for attempt in range(3):  # an asynchronous invocation: the first try and two retries
                    try:
                        pool.invoke(payload)
                        self.on_event(f"rule {rule.event}", rule.function, "ok")
                        break
                    except InvocationFailure as failure:
                        self.on_event(f"rule {rule.event}", rule.function, f"failed ({failure.error_type})")
                        if attempt < 2:
                            self.stop.wait(1.0)


def eventbridge_event(body: dict[str, Any]) -> dict[str, Any]:
    """moto's event as EventBridge delivers it to Lambda (every envelope field present)."""
    return {
        "version": body.get("version", "0"),
        "id": body.get("id") or str(uuid.uuid4()),
        "detail-type": body.get("detail-type"),
        "source": body.get("source"),
        "account": body.get("account") or ACCOUNT_ID,
        "time": body.get("time") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": body.get("region") or REGION,
        "resources": body.get("resources") or [],
        "detail": body.get("detail") if body.get("detail") is not None else {},
    }


def scheduled_event(kind: str, name: str, now: datetime | None = None) -> dict[str, Any]:
    """What a schedule without Input delivers: Scheduler's default notification, or a rule's Scheduled Event."""
    now = now or datetime.now(UTC)
    if kind == "ScheduleV2":
        resource = f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{name}"
        source = "aws.scheduler"
        detail: Any = "{}"
    else:
        resource = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{name}"
        source = "aws.events"
        detail = {}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": ACCOUNT_ID,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource],
        "detail": detail,
    }


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
