"""Operator commands for a deployed stack (docs/runbook.md): `python -m onboarding.ops.admin COMMAND ...`.

    show USER                      the user item and its history, personal data masked (history: Query on by-user)
    check USER                     force a check: a CheckUserStatus event on the bus (reconcile answers it)
    stuck --days N [--status S]    users below status 3 not updated for N days (Query on the sparse index)
    redrive QUEUE_URL (--to-queue URL | --to-bus BUS) [--max N]
                                   move dead letters back: receive, send (or put the event), delete
    reapply NOTIFY_NO              verify a stored notification again and apply its level (no new history)
    erase USER --yes               remove the user's personal values, keep a tombstone (onboarding.ops.erasure)
    republish USER | --since TIME  UserStatusChanged again from the table (the same event_ids)
    export USER [--out FILE]       the user's own copy (PIPL art. 45): the stored item and its history, unmasked,
                                   as JSON on stdout or in FILE (created 0600); the one command that prints them

Tables come from --stack (the stack's outputs), else --users-table/--notifications-table, else USERS_TABLE and
NOTIFICATIONS_TABLE; the bus from --bus or EVENT_BUS_NAME. AWS credentials and region are the usual ones
(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL for moto). `--stack local` is the stack `make run` started: its
tables, queues and bus, on its moto endpoint, as its /_local/health (at --local-api) reports them. A queue is
a URL or the template's logical id (e.g. ReconcileDeadLetterQueue). Nothing personal is printed unmasked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO

from onboarding import dynamo
from onboarding.config import setting
from onboarding.observability import mask_field
from onboarding.ops.erasure import erase_user
from onboarding.reconcile import CHECK_USER_STATUS
from onboarding.rights import export_document, export_text
from onboarding.store import UserStore, iso_utc

ADMIN_SOURCE: Final = "htouhui.admin"
# On-demand DynamoDB, us-east-1 list price per million read request units (eventually consistent reads
# count half a unit per 4 KB); the printed cost is an order of magnitude, not a bill.
PRICE_PER_MILLION_READ_UNITS: Final = 0.125
SIGN_SHOWN: Final = 12


def masked(item: Mapping[str, Any]) -> dict[str, Any]:
    """A record for the terminal: personal values masked (by key, then by pattern), signatures shortened."""
    shown: dict[str, Any] = {}
    for name, value in item.items():
        if isinstance(value, Mapping):
            shown[name] = masked(value)
        elif name == "sign" and isinstance(value, str):
            shown[name] = value[:SIGN_SHOWN] + f"... ({len(value)} chars)"
        elif name == "mobile_digest" and isinstance(value, str):
            shown[name] = value[:8] + "..."
        else:
            shown[name] = mask_field(name, value)
    return shown


class Admin:
    def __init__(
        self,
        dynamodb: Any,
        users_table: str,
        notifications_table: str,
        *,
        events: Any = None,
        sqs: Any = None,
        bus: str = "default",
        out: TextIO = sys.stdout,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.dynamodb = dynamodb
        self.store = UserStore(users_table, notifications_table, dynamodb=dynamodb)
        self.users_table = users_table
        self.notifications_table = notifications_table
        self.events = events
        self.sqs = sqs
        self.bus = bus
        self.out = out
        self.clock = clock

    def _print(self, value: Any) -> None:
        print(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str), file=self.out)

    # --- show -------------------------------------------------------------------------------------------

    def user(self, third_party_user_id: str) -> dict[str, Any] | None:
        return self.store.stored(third_party_user_id)

    def history(self, third_party_user_id: str) -> list[dict[str, Any]]:
        return self.store.history_of(third_party_user_id)

    def show(self, third_party_user_id: str) -> int:
        user = self.user(third_party_user_id)
        if user is None:
            print(f"no user {third_party_user_id!r} in {self.users_table}", file=self.out)
            return 1
        self._print({"user": masked(user), "history": [masked(record) for record in self.history(third_party_user_id)]})
        return 0

    # --- check ------------------------------------------------------------------------------------------

    def check(self, third_party_user_id: str) -> int:
        answer = self.events.put_events(
            Entries=[
                {
                    "Source": ADMIN_SOURCE,
                    "DetailType": CHECK_USER_STATUS,
                    "Detail": json.dumps({"third_party_user_id": third_party_user_id}),
                    "EventBusName": self.bus,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            self._print({"error": answer["Entries"]})
            return 1
        print(
            f"{CHECK_USER_STATUS} for {third_party_user_id} put on bus {self.bus} ({answer['Entries'][0]['EventId']})",
            file=self.out,
        )
        return 0

    # --- republish --------------------------------------------------------------------------------------

    def republish(self, third_party_user_id: str | None = None, since: str | None = None) -> int:
        """UserStatusChanged again, from the table: one user's current status, or every user whose status was
        updated since a time. The event_ids are the ones first published (the same user and status), so a
        consumer that deduplicates sees nothing twice; old_status is null (the table keeps only the current one)."""
        from onboarding.status_events import detail_of, entry_of

        if (third_party_user_id is None) == (since is None):
            raise ValueError("give exactly one of a user and --since")
        if third_party_user_id is not None:
            user = self.user(third_party_user_id)
            if user is None or user.get("status") is None:
                print(f"no status for {third_party_user_id!r}: nothing republished", file=self.out)
                return 1
            items: Any = [user]
        else:
            items = (item for page in self.store.with_status_pages(str(since)) for item in page.get("Items", []))
        entries = []
        for item in items:
            plain = item if third_party_user_id is not None else dynamo.plain(item)
            detail = detail_of(
                str(plain["third_party_user_id"]), plain.get("htouhui_user_id"), None, int(plain["status"])
            )
            entries.append(entry_of({**detail, "republished": True}, self.bus))
        published = 0
        for start in range(0, len(entries), 10):  # PutEvents takes 10 entries a call
            answer = self.events.put_events(Entries=entries[start : start + 10])
            if answer.get("FailedEntryCount"):
                self._print({"error": [e for e in answer["Entries"] if e.get("ErrorCode")]})
                return 1
            published += len(entries[start : start + 10])
        print(f"republished {published} UserStatusChanged event(s) on bus {self.bus}", file=self.out)
        return 0

    # --- stuck ------------------------------------------------------------------------------------------

    def stuck(self, days: float, status: str | None = None, page_size: int = 500) -> int:
        """Registered users below status 3 whose last update is older than `days`: a paged Scan of the table.

        An operator's occasional question, not a hot path, so no index is kept for it (the only index holds due
        check times). The Scan reads every item once, whatever the filter keeps: about 1 read unit per 8 KB
        (eventually consistent), so a table of a million 1 KB items costs ~125,000 read units (well under a
        US dollar on demand). Each page reports the read units it consumed.
        """
        cutoff = iso_utc(self.clock() - timedelta(days=days))
        found: list[dict[str, Any]] = []
        read, units, pages = 0, 0.0, 0
        for page in self.store.stalled_pages(cutoff, status=status, page_size=page_size):
            pages += 1
            read += int(page.get("ScannedCount", 0))
            units += float((page.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0))
            found.extend(dynamo.plain(item) for item in page.get("Items", []))
        self._print(
            {
                "cutoff": cutoff,
                "users": found,
                "read": {
                    "items": read,
                    "pages": pages,
                    "read_units": units,
                    "approx_usd": round(units * PRICE_PER_MILLION_READ_UNITS / 1_000_000, 6),
                },
            }
        )
        return 0

    # --- redrive ----------------------------------------------------------------------------------------

    def redrive(
        self, queue_url: str, *, to_queue: str | None = None, to_bus: str | None = None, limit: int = 100
    ) -> int:
        """Receive up to `limit` dead letters, send each on (a queue, or its event back to a bus), then delete it.

        A message is deleted only after it was sent on, so a failure in between leaves it in the dead-letter
        queue (at worst sent twice, which the functions tolerate: every write is idempotent).
        """
        if (to_queue is None) == (to_bus is None):
            raise ValueError("give exactly one of to_queue and to_bus")
        moved = 0
        while moved < limit:
            answer = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=min(10, limit - moved), WaitTimeSeconds=0, VisibilityTimeout=60
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            for message in messages:
                if to_queue is not None:
                    self.sqs.send_message(QueueUrl=to_queue, MessageBody=message["Body"])
                else:
                    self._put_back(message["Body"], str(to_bus))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        print(f"redriven {moved} message(s) from {queue_url}", file=self.out)
        return 0

    def _put_back(self, body: str, bus: str) -> None:
        """An EventBridge event from a dead-letter queue (or a Lambda destination record holding one), re-put."""
        document = json.loads(body)
        event = document.get("requestPayload", document) if isinstance(document, dict) else document
        if not isinstance(event, dict) or "detail-type" not in event:
            raise ValueError("the message holds no EventBridge event to put back")
        answer = self.events.put_events(
            Entries=[
                {
                    "Source": str(event.get("source") or ADMIN_SOURCE),
                    "DetailType": str(event["detail-type"]),
                    "Detail": json.dumps(event.get("detail") or {}),
                    "EventBusName": bus,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge refused the event: {answer['Entries']}")

    # --- reapply ----------------------------------------------------------------------------------------

    def reapply(self, notify_no: str) -> int:
        """Verify a stored notification (as received, sign included) again and apply its level to the user.

        Applied without its notify_no (the history record exists already): the user's status rises if the
        notification's level is higher, otherwise nothing changes.
        """
        from onboarding import runtime
        from onboarding.errors import NotificationRejected
        from onboarding.rules import Onboarding

        record = self.store.notification(notify_no)
        if not record or not isinstance(record.get("raw"), dict):
            print(
                f"no stored notification {notify_no!r} with its fields (recorded before they were kept?)", file=self.out
            )
            return 1
        fields = {name: str(value) for name, value in record["raw"].items()}
        onboarding = Onboarding.configured(runtime.settings(), self.store, _no_client, clock=self.clock)
        try:
            outcome = onboarding.inbound.reapply_notification(fields)
        except NotificationRejected as refused:
            print(
                f"notification {notify_no} does not verify with the configured Htouhui keys and partner_id, or is "
                f"refused: {refused.reason} ({refused.field}: {refused.rule})",
                file=self.out,
            )
            return 1
        status = fields.get("status", "?")
        print(f"notification {notify_no} (status {status}): {outcome.name}", file=self.out)
        return 0

    # --- export -----------------------------------------------------------------------------------------

    def export(self, third_party_user_id: str, out_file: str | None = None) -> int:
        """The user's personal data as stored, and its notification history, unmasked: the user's own copy."""
        document = export_document(self.store, third_party_user_id, self.clock())
        if document is None:
            print(f"no user {third_party_user_id!r} in {self.users_table}: nothing exported", file=sys.stderr)
            return 1
        text = export_text(document)
        if out_file is None:
            self.out.write(text)
            return 0
        try:
            descriptor = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            print(f"{out_file} exists: an export never overwrites a file", file=sys.stderr)
            return 2
        with os.fdopen(descriptor, "w", encoding="utf-8") as written:
            written.write(text)
        print(
            f"exported {third_party_user_id} to {out_file} (unmasked personal data: hand it to the user only)",
            file=sys.stderr,
        )
        return 0

    # --- erase ------------------------------------------------------------------------------------------

    def erase(self, third_party_user_id: str) -> int:
        report = erase_user(self.store, third_party_user_id, self.clock())
        if not report.user_found and not report.history_records:
            print(f"no user {third_party_user_id!r}: nothing erased", file=self.out)
            return 1
        print(
            f"erased {third_party_user_id}: user item {'cleared' if report.user_found else 'absent'}, "
            f"{report.history_records} history record(s) cleared; ids, statuses and dates kept",
            file=self.out,
        )
        return 0


def _no_client() -> Any:
    raise RuntimeError("reapply never calls Htouhui")


LOCAL_STACK: Final = "local"
LOCAL_API: Final = "http://127.0.0.1:3000"


@dataclass
class StackTarget:
    """Where the commands act: table names, the bus, queues by logical id, and the AWS endpoint (None: AWS's)."""

    users: str | None
    notifications: str | None
    bus: str
    queues: Mapping[str, str] = field(default_factory=dict)
    endpoint: str | None = None
    region: str | None = None
    stack: str | None = None  # a deployed stack: queues resolve through CloudFormation

    def client(self, service: str) -> Any:
        import boto3

        make: Any = boto3.client  # typed per service name; the name here is a variable
        if self.endpoint is None:
            return make(service)
        # moto accepts any credentials: the local stack's functions use these too
        return make(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            # moto's fixed local credentials, not a secret (bandit B106, ruff S106)
            aws_secret_access_key="testing",  # noqa: S106  # nosec B106
        )

    def queue_url(self, name: str) -> str:
        """A queue URL as given, or the URL of the template queue with that logical id."""
        if "://" in name:
            return name
        if name in self.queues:
            return self.queues[name]
        if self.stack and self.stack != LOCAL_STACK:
            answer = self.client("cloudformation").describe_stack_resource(StackName=self.stack, LogicalResourceId=name)
            return str(answer["StackResourceDetail"]["PhysicalResourceId"])  # an SQS queue's physical id is its URL
        raise ValueError(f"no queue {name!r} in the stack (known: {', '.join(sorted(self.queues)) or 'none'})")


def _stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    answer = cloudformation.describe_stacks(StackName=stack)
    return {output["OutputKey"]: output["OutputValue"] for output in answer["Stacks"][0].get("Outputs", [])}


def _local_health(api: str) -> dict[str, Any]:
    import httpx

    answer = httpx.get(f"{api.rstrip('/')}/_local/health", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def resolve(arguments: argparse.Namespace) -> StackTarget:
    """The target of the commands: the local stack, a deployed stack's outputs, or the names given."""
    target = StackTarget(arguments.users_table, arguments.notifications_table, arguments.bus, stack=arguments.stack)
    if arguments.stack == LOCAL_STACK:
        health = _local_health(arguments.local_api)
        tables = health.get("tables") or {}
        target.users = tables.get("UsersTable", target.users)
        target.notifications = tables.get("NotificationsTable", target.notifications)
        target.bus = str(health.get("event_bus") or target.bus)
        target.queues = dict(health.get("queues") or {})
        target.endpoint, target.region = str(health["dynamodb"]), str(health.get("region") or "us-east-1")
    elif arguments.stack:
        outputs = _stack_outputs(target.client("cloudformation"), arguments.stack)
        target.users = outputs.get("UsersTableName", target.users)
        target.notifications = outputs.get("NotificationsTableName", target.notifications)
        target.bus = outputs.get("EventBusName", target.bus)
    return target


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m onboarding.ops.admin", description=__doc__.split("\n\n")[0])
    top.add_argument(
        "--stack", help="read the table names and the bus from this stack's outputs; `local`: the running `make run`"
    )
    top.add_argument("--local-api", default=LOCAL_API, help="with --stack local: the local stack's API (API_PORT)")
    top.add_argument("--users-table", default=setting("users_table"))
    top.add_argument("--notifications-table", default=setting("notifications_table"))
    top.add_argument("--bus", default=setting("event_bus_name"))
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="the user and its history, masked").add_argument("user")
    commands.add_parser("check", help="put a CheckUserStatus event on the bus").add_argument("user")
    stuck = commands.add_parser("stuck", help="users below status 3 not updated for --days")
    stuck.add_argument("--days", type=float, required=True)
    stuck.add_argument("--status", help="only users at this status (1, 2, or none: registered, no status yet)")
    redrive = commands.add_parser("redrive", help="move dead letters on and delete them")
    redrive.add_argument("queue_url")
    target = redrive.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-queue")
    target.add_argument("--to-bus")
    redrive.add_argument("--max", type=int, default=100)
    republish = commands.add_parser("republish", help="UserStatusChanged again from the table, same event_ids")
    which = republish.add_mutually_exclusive_group(required=True)
    which.add_argument("user", nargs="?")
    which.add_argument("--since", help="every user whose status was updated at or after this ISO 8601 time")
    commands.add_parser("reapply", help="verify a stored notification and apply its level").add_argument("notify_no")
    export = commands.add_parser("export", help="the user's own copy of its data, unmasked (PIPL art. 45)")
    export.add_argument("user")
    export.add_argument("--out", help="write to this new file (mode 0600) instead of stdout")
    erase = commands.add_parser("erase", help="remove the user's personal values, keep a tombstone")
    erase.add_argument("user")
    erase.add_argument("--yes", action="store_true", help="required: erasure cannot be undone")
    return top


def main(argv: Sequence[str] | None = None, *, out: TextIO = sys.stdout) -> int:
    arguments = parser().parse_args(argv)
    try:
        target = resolve(arguments)
    except Exception as error:  # no stack answered, or none of that name: say so, never a traceback
        print(f"cannot read the stack {arguments.stack!r}: {error}", file=sys.stderr)
        return 2
    if arguments.command not in ("check", "redrive") and not target.users:
        print("no users table: --stack, --users-table or USERS_TABLE", file=sys.stderr)
        return 2
    admin = Admin(
        target.client("dynamodb"),
        target.users or "",
        target.notifications or "",
        events=target.client("events"),
        sqs=target.client("sqs"),
        bus=target.bus,
        out=out,
    )
    if arguments.command == "show":
        return admin.show(arguments.user)
    if arguments.command == "check":
        return admin.check(arguments.user)
    if arguments.command == "stuck":
        return admin.stuck(arguments.days, arguments.status)
    if arguments.command == "redrive":
        to_queue = target.queue_url(arguments.to_queue) if arguments.to_queue else None
        return admin.redrive(
            target.queue_url(arguments.queue_url), to_queue=to_queue, to_bus=arguments.to_bus, limit=arguments.max
        )
    if arguments.command == "reapply":
        return admin.reapply(arguments.notify_no)
    if arguments.command == "republish":
        return admin.republish(arguments.user, arguments.since)
    if arguments.command == "export":
        return admin.export(arguments.user, arguments.out)
    if not arguments.yes:
        print("erase cannot be undone: add --yes", file=sys.stderr)
        return 2
    return admin.erase(arguments.user)


if __name__ == "__main__":
    raise SystemExit(main())
