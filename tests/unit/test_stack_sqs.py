"""The local stack's SQS support, read from the template: queues (with their redrive policy), the rules that feed
them, and the event source mapping's poller (batches, ReportBatchItemFailures, what is deleted) on moto."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "local"))

from stack import aws, sqs
from stack.lambdas import InvocationFailure
from stack.template import QueueRule, QueueSource, load


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = aws.serial_moto_server("127.0.0.1", 0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_the_template_declares_the_queues_the_mappings_and_the_rule() -> None:
    template = load(ROOT / "template.yaml")
    assert {"ReconcileQueue", "CheckUserStatusQueue", "ReconcileWorkDeadLetterQueue"} <= set(template.queues)
    assert template.queues["ReconcileQueue"]["RedrivePolicy"]["deadLetterTargetArn"] == "ReconcileWorkDeadLetterQueue"
    sources = {source.queue: source for source in template.queue_sources}
    assert sources["ReconcileQueue"] == QueueSource(
        "ReconcileWorkerFunction", "DueChecks", "ReconcileQueue", 10, 23, report_batch_item_failures=True
    )
    assert sources["CheckUserStatusQueue"].maximum_concurrency == 2
    assert template.queue_rules == [
        QueueRule("CheckUserStatusRule", {"detail-type": ["CheckUserStatus"]}, "default", "CheckUserStatusQueue")
    ]


class Pool:
    """A FunctionPool double: records batches, reports the first record of every batch as failed once."""

    def __init__(self, fail_first: bool = True, crash: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail_first = fail_first
        self.crash = crash
        self.lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self.lock:
            self.batches.append(event["Records"])
        if self.crash:
            raise InvocationFailure("boom", "error", "RuntimeError")
        if self.fail_first:
            self.fail_first = False
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
        return {"batchItemFailures": []}


def _queues(endpoint: str, tmp_path: Any) -> tuple[Any, sqs.Queues]:
    template = load(ROOT / "template.yaml")
    queues = sqs.create_queues(endpoint, template)
    return template, queues


def test_queues_are_created_with_their_dead_letter_queue(endpoint: str, tmp_path: Any) -> None:
    _, queues = _queues(endpoint, tmp_path)
    client = aws.client("sqs", endpoint)
    work = queues.by_logical["ReconcileQueue"]
    attributes = client.get_queue_attributes(QueueUrl=work.url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == queues.by_logical["ReconcileWorkDeadLetterQueue"].arn
    assert queues.refs["ReconcileQueue"] == work.url and queues.attribute("ReconcileQueue", "Arn") == work.arn
    assert queues.attribute("NoSuchQueue", "Arn") is None


def test_the_poller_invokes_in_batches_and_keeps_only_the_reported_failures(endpoint: str, tmp_path: Any) -> None:
    template, queues = _queues(endpoint, tmp_path)
    client = aws.client("sqs", endpoint)
    queue = queues.by_logical["ReconcileQueue"]
    client.purge_queue(QueueUrl=queue.url)
    for number in range(12):
        client.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"n": number}))
    source = next(item for item in template.queue_sources if item.queue == "ReconcileQueue")
    pool = Pool()
    seen: list[str] = []
    poller = sqs.QueuePoller(
        endpoint,
        source,
        queue,
        pool,
        threading.Event(),
        wait_seconds=0,  # drained below until an empty receive: no long poll at the end
        on_invoke=lambda *args: seen.append(args[3]),  # type: ignore[arg-type]
    )
    while poller.poll_once():
        pass
    records = [record for batch in pool.batches for record in batch]
    assert all(len(batch) <= 10 for batch in pool.batches) and len(records) == 12
    assert records[0]["eventSource"] == "aws:sqs" and records[0]["eventSourceARN"] == queue.arn
    assert seen[0] == "1 to retry" and poller.delivered == 11
    # the failed message stays on the queue (invisible until the visibility time-out)
    attributes = client.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attributes["ApproximateNumberOfMessages"] == "0"

    crashing = sqs.QueuePoller(
        endpoint,
        source,
        queue,
        Pool(crash=True),  # type: ignore[arg-type]
        threading.Event(),
        wait_seconds=0,
    )
    client.send_message(QueueUrl=queue.url, MessageBody="{}")
    assert crashing.poll_once() == 1 and crashing.delivered == 0  # nothing deleted: it comes back


class _Recording:
    """An SQS client double: records each receive's arguments, answers empty, sets `stop` after `polls`."""

    def __init__(self, stop: threading.Event, polls: int) -> None:
        self.stop, self.polls, self.calls = stop, polls, []  # type: ignore[var-annotated]

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if len(self.calls) >= self.polls:
            self.stop.set()
        return {}


class _NoWaits(threading.Event):
    """A stop event whose waits are recorded, never slept."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def test_the_poller_long_polls_as_lambda_does_and_never_sleeps_between_receives() -> None:
    """Idle `make run`: each receive waits up to 20 s on moto (WaitTimeSeconds=20, Lambda's setting); an empty
    answer is followed by the next long poll at once, with no sleep of its own (the long poll is the wait)."""
    template = load(ROOT / "template.yaml")
    source = next(item for item in template.queue_sources if item.queue == "ReconcileQueue")
    queue = sqs.LocalQueue("ReconcileQueue", "q", "http://127.0.0.1:9/q", "arn:aws:sqs:us-east-1:1:q")
    stop = _NoWaits()
    poller = sqs.QueuePoller("http://127.0.0.1:9", source, queue, Pool(), stop)  # type: ignore[arg-type]
    poller.sqs = _Recording(stop, polls=3)
    poller.run()
    assert [call["WaitTimeSeconds"] for call in poller.sqs.calls] == [sqs.LONG_POLL_SECONDS] * 3
    assert sqs.LONG_POLL_SECONDS == 20 and stop.waits == []
    assert poller.sqs.calls[0]["MaxNumberOfMessages"] == 10


def test_a_long_poll_lets_other_requests_through_and_returns_when_a_message_arrives(endpoint: str) -> None:
    """The serial moto server releases its lock while a receive waits: a DynamoDB call and the send that
    ends the wait get through, and the waiting receive returns the message (not after its 20 s)."""
    client = aws.client("sqs", endpoint)
    url = client.create_queue(QueueName="long-poll-probe")["QueueUrl"]
    answers: list[Any] = []
    waiting = threading.Thread(
        target=lambda: answers.append(aws.client("sqs", endpoint).receive_message(QueueUrl=url, WaitTimeSeconds=20))
    )
    waiting.start()
    aws.client("dynamodb", endpoint).list_tables()  # not held back by the waiting receive
    client.send_message(QueueUrl=url, MessageBody="wake up")
    waiting.join(timeout=15)
    assert not waiting.is_alive(), "the long poll did not return when the message arrived"
    assert [message["Body"] for message in answers[0]["Messages"]] == ["wake up"]
