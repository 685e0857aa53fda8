"""The template's SQS queues on moto, the EventBridge rules that feed them, and Lambda's SQS event source mapping.

Read generically from the template (`Template.queues`, `.queue_sources`, `.queue_rules`): every
`AWS::SQS::Queue` is created (visibility time-out, retention, a redrive policy pointing at another of the
template's queues); every function event of type `SQS` gets a poller that receives up to BatchSize messages,
invokes the function with them as Lambda does, deletes what succeeded (all, or all but the reported
`batchItemFailures`) and leaves the rest to come back after the visibility time-out; MaximumConcurrency
pollers run side by side (capped locally). An `AWS::Events::Rule` whose target is one of the queues is put on
moto's bus with that queue as its target.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stack.aws import EventBus, client
from stack.lambdas import FunctionPool, InvocationFailure
from stack.template import REGION, QueueSource, Template

log = logging.getLogger("stack")
LOCAL_MAX_POLLERS = 2  # MaximumConcurrency is honoured up to this many pollers per mapping on a laptop
# Long polling, as Lambda's event source mapping polls: a receive waits up to this long for a message and returns
# as soon as one arrives (moto implements the wait; `stack.aws.serial_moto_server` lets other requests run
# meanwhile). An idle queue then costs one request per poller per 20 s instead of two a second.
LONG_POLL_SECONDS = 20
ERROR_BACKOFF_SECONDS = (0.5, 5.0)  # after a failed receive: the first wait, doubling up to the second
_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


@dataclass(frozen=True)
class LocalQueue:
    logical_id: str
    name: str
    url: str
    arn: str


class Queues:
    """The created queues by logical id; `refs` (Ref = URL) and `attribute` (Arn, QueueName, QueueUrl) for the
    template's intrinsics."""

    def __init__(self, queues: Mapping[str, LocalQueue]) -> None:
        self.by_logical = dict(queues)

    @property
    def refs(self) -> dict[str, str]:
        return {logical: queue.url for logical, queue in self.by_logical.items()}

    def attribute(self, logical: str, name: str) -> str | None:
        queue = self.by_logical.get(logical)
        if queue is None:
            return None
        return {"Arn": queue.arn, "QueueName": queue.name, "QueueUrl": queue.url}.get(name)


def create_queues(endpoint: str, template: Template) -> Queues:
    """Every queue of the template on moto; dead-letter queues first, so a redrive policy can name them."""
    sqs = client("sqs", endpoint)
    created: dict[str, LocalQueue] = {}

    def create(logical: str) -> LocalQueue:
        if logical in created:
            return created[logical]
        properties = template.queues[logical]
        name = str(properties.get("QueueName") or f"local-{logical}")
        attributes = {key: str(properties[key]) for key in _ATTRIBUTES if key in properties}
        redrive = properties.get("RedrivePolicy") or {}
        target = redrive.get("deadLetterTargetArn")
        if isinstance(target, str) and target in template.queues:  # unresolved GetAtt: the logical id
            target = create(target).arn
        if isinstance(target, str) and target.startswith("arn:"):
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": target, "maxReceiveCount": int(redrive.get("maxReceiveCount", 5))}
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created[logical] = LocalQueue(logical, name, url, arn)
        return created[logical]

    for logical in template.queues:
        create(logical)
    return Queues(created)


def add_rules(bus: EventBus, template: Template, queues: Queues) -> None:
    """The template's rules that target its queues, on moto's buses."""
    for rule in template.queue_rules:
        queue = queues.by_logical.get(rule.queue)
        if queue is None:
            continue
        name = bus.ensure_bus(rule.bus)
        rule_name = f"local-{rule.logical_id}"[:64]
        bus.events.put_rule(Name=rule_name, EventBusName=name, EventPattern=json.dumps(rule.pattern))
        bus.events.put_targets(Rule=rule_name, EventBusName=name, Targets=[{"Id": rule.queue[:64], "Arn": queue.arn}])


def sqs_record(message: dict[str, Any], queue: LocalQueue) -> dict[str, Any]:
    """A received message as Lambda hands it to a function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": dict(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": REGION,
    }


class QueuePoller:
    """Lambda's SQS event source mapping for one function event: pollers that receive, invoke and delete."""

    def __init__(
        self,
        endpoint: str,
        source: QueueSource,
        queue: LocalQueue,
        pool: FunctionPool,
        stop: threading.Event,
        *,
        wait_seconds: int = LONG_POLL_SECONDS,
        on_invoke: Callable[[str, str, int, str], None] | None = None,
    ) -> None:
        self.sqs = client("sqs", endpoint)
        self.source = source
        self.queue = queue
        self.pool = pool
        self.stop = stop
        self.wait_seconds = wait_seconds
        self.on_invoke = on_invoke or (lambda _function, _queue, _count, _outcome: None)
        self.pollers = max(1, min(source.maximum_concurrency or LOCAL_MAX_POLLERS, LOCAL_MAX_POLLERS))
        self.delivered = 0
        self._lock = threading.Lock()

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.run, name=f"sqs-{self.source.function}-{index}", daemon=True)
            for index in range(self.pollers)
        ]
        for thread in threads:
            thread.start()
        return threads

    def run(self) -> None:
        """Receive again at once, empty or not (a long poll is its own wait); back off only after an error."""
        first, cap = ERROR_BACKOFF_SECONDS
        backoff = first
        while not self.stop.is_set():
            try:
                self.poll_once()
                backoff = first
            except Exception as exc:
                if self.stop.is_set():
                    return
                log.warning("queue %s: %s", self.queue.logical_id, type(exc).__name__)
                self.stop.wait(backoff)
                backoff = min(cap, backoff * 2)

    def poll_once(self) -> int:
        """One receive and one invocation; returns how many messages were handed to the function."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=min(10, self.source.batch_size),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [sqs_record(message, self.queue) for message in messages]
        try:
            result = self.pool.invoke({"Records": records})
        except InvocationFailure as failure:
            # The whole batch comes back after the visibility time-out (then the redrive policy applies).
            self.on_invoke(self.source.function, self.queue.logical_id, len(records), f"failed ({failure.error_type})")
            return len(records)
        failed = _failed_ids(result, records) if self.source.report_batch_item_failures else set()
        for message in messages:
            if message["MessageId"] not in failed:
                with contextlib.suppress(Exception):
                    self.sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])
        with self._lock:
            self.delivered += len(messages) - len(failed)
        outcome = "ok" if not failed else f"{len(failed)} to retry"
        self.on_invoke(self.source.function, self.queue.logical_id, len(records), outcome)
        return len(records)


def _failed_ids(result: Any, records: list[dict[str, Any]]) -> set[str]:
    """The messages to leave on the queue per ReportBatchItemFailures (an unknown identifier fails them all)."""
    if not isinstance(result, dict):
        return set()
    ids = {record["messageId"] for record in records}
    failures = {str(item.get("itemIdentifier")) for item in result.get("batchItemFailures") or []}
    if failures - ids:
        return ids
    return failures


def start(
    endpoint: str,
    template: Template,
    queues: Queues,
    pools: Mapping[str, FunctionPool],
    stop: threading.Event,
    *,
    on_invoke: Callable[[str, str, int, str], None] | None = None,
) -> list[QueuePoller]:
    """A poller for every SQS event source of the template's functions."""
    pollers = []
    for source in template.queue_sources:
        queue = queues.by_logical.get(source.queue or "")
        if queue is None or source.function not in pools:
            log.warning("no local queue for %s.%s; not fed locally", source.function, source.event)
            continue
        poller = QueuePoller(endpoint, source, queue, pools[source.function], stop, on_invoke=on_invoke)
        poller.start()
        pollers.append(poller)
    return pollers


def banner(template: Template) -> list[str]:
    """The `make run` banner's lines for the queues."""
    lines = [
        f"  queue     {source.queue} -> {source.function} (batch {source.batch_size}, "
        f"concurrency {source.maximum_concurrency or 'unreserved'})"
        for source in template.queue_sources
    ]
    lines.extend(
        f"  rule      {json.dumps(rule.pattern, separators=(',', ':'))} on {rule.bus or 'default'} "
        f"-> queue {rule.queue}"
        for rule in template.queue_rules
    )
    return lines
