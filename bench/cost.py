"""Cost at 1,000,000 registrations a day (`python -m bench --only scale`: `results["scale"]["cost"]`).

What is measured here, and what is assumed:

- DynamoDB units per flow are MEASURED: the real store (`onboarding.store.UserStore`, and for reconciliation the
  real dispatcher and worker rules, `Checks.dispatch_due` / `check_scheduled`) run against moto with the
  template's tables, through `bench.capacity.CapacityMeter`, which bills each request by DynamoDB's rules from
  the items' sizes and the template's index projections (moto's own ConsumedCapacity is a flat 1.0 a request).
- Log bytes per invocation and the worker's peak memory are MEASURED: each handler, in a fresh interpreter, does
  its sample request (the worker: a batch of ten due users) against moto and the Htouhui sandbox
  (`bench.first_request`'s world, `bench/cold_child.py`); its standard output is what Lambda ships to CloudWatch.
- Volumes come from the cohort model (`bench.scale.cohort_model`: Htouhui queries a day) and its stated cohort.
- Durations of the merchant-facing functions, and the Htouhui bytes per call through a NAT, are ASSUMED
  (`ASSUMED`); the worker's duration is the pacing (`onboarding.reconcile.Pacer`): each slot starts one query
  per pacing interval and sleeps the rest, and Lambda bills the sleep.
- Prices: `bench/prices.json` (region, the date they were read, a unit and a source for each).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.capacity import CapacityMeter
from bench.stats import Figure

PRICES = Path(__file__).resolve().with_name("prices.json")
DAY = 86_400
MONTH_DAYS = 30
REGISTRATIONS_PER_DAY = 1_000_000
FORM, NOTIFIED, LOST, STALLED = 0.80, 0.70, 0.05, 0.25  # bench.scale's stated cohort
EPOCH = datetime(2027, 1, 4, tzinfo=UTC)
USERS, NOTIFICATIONS = "cost-users", "cost-notifications"

# Assumptions (not measured): each is a named guess, used only where the bench has no measurement.
ASSUMED: dict[str, Any] = {
    "duration_s": {  # billed duration of one invocation, warm
        "register": 0.35,  # one Htouhui call (signing, TLS, their answer) and two writes
        "open_account": 0.06,  # two writes and a signed page
        "notify": 0.06,  # a signature check and one transaction
        "query_user": 0.03,  # one read
        "publish_status": 0.05,  # a stream batch to EventBridge
        "data_rights": 0.0,
    },
    "query_user_per_registration": 1.0,  # the merchant reads the view once
    "returns_per_finished": 1.0,  # browser returns (GET /htouhui/return, the notify function) per user at status 3
    "notifications_per_notified": 1.0,  # Htouhui's status-3 notification, delivered once
    "stream_batches_per_day": 4 * DAY,  # publish_status: 4 stream shards, a batch a second each at most
    "status_events_per_form": 0.75 + STALLED * 2 / 3,  # UserStatusChanged: status 3, and the stalled users' 1 or 2
    "htouhui_bytes_per_call": 8 * 1024,  # request + answer + TLS records through the NAT (a kept-alive connection)
    "user_item_kb_month": 1.0,  # the user item with its schedule, under 1 KB, kept for good
    "history_item_kb": 1.0,
    "platform_log_bytes": 320,  # Lambda's START, END and REPORT lines per invocation
}
# The dispatcher's share of DynamoDB's time per claim and its client's, for its duration: measured in `claims`.
CLAIM_LATENCY_S = 0.006  # an UpdateItem from Lambda in the same region, typical (single-digit milliseconds)


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for name, price in data["prices"].items():
        if not {"usd", "unit", "source"} <= set(price):
            raise ValueError(f"price {name} needs usd, unit and source")
    return data


# ------------------------------------------------------------------------------------------------ DynamoDB units


def _label(operation: str, request: dict[str, Any]) -> str:
    """Which step of a flow a request is (by its expression): the meter's counters are keyed by it."""
    expression = str(request.get("UpdateExpression", ""))
    if operation == "transact_write_items":
        return "status write (notification + history)"
    if operation == "query":
        return "due index query"
    if operation == "get_item":
        return "read"
    if expression.startswith("SET #due = :until"):
        return "dispatch claim"
    if "check_lease = :until" in expression:
        return "take the check lease"
    if "#status = :new" in expression:
        return "status write"
    if expression.startswith("REMOVE check_lease"):
        return "give the lease back"
    if "check_step = :next_step" in expression or expression.startswith("REMOVE check_shard"):
        return "settle (next step or off the schedule)"
    if "check_anchor = :anchor" in expression:
        return "ladder start"
    if "borrower = :borrower" in expression or "bank_card_number = :card" in expression:
        return "details fill"
    return operation


class LabelledMeter(CapacityMeter):
    """The meter with each request's units also counted under its step of a flow (`_label`)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.by_step: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def _billed(self, label: str, call: Callable[[], Any]) -> Any:
        with self._lock:
            writes, reads = self.snapshot()
            try:
                return call()
            finally:
                after_writes, after_reads = self.snapshot()
                self.by_step[f"{label} WRU"] += after_writes - writes
                self.by_step[f"{label} RRU"] += after_reads - reads

    def update_item(self, **request: Any) -> Any:
        return self._billed(_label("update_item", request), lambda: super(LabelledMeter, self).update_item(**request))

    def put_item(self, **request: Any) -> Any:
        return self._billed(_label("put_item", request), lambda: super(LabelledMeter, self).put_item(**request))

    def delete_item(self, **request: Any) -> Any:
        return self._billed("delete", lambda: super(LabelledMeter, self).delete_item(**request))

    def transact_write_items(self, **request: Any) -> Any:
        label = _label("transact_write_items", request)
        return self._billed(label, lambda: super(LabelledMeter, self).transact_write_items(**request))

    def get_item(self, **request: Any) -> Any:
        return self._billed("read", lambda: super(LabelledMeter, self).get_item(**request))

    def query(self, **request: Any) -> Any:
        return self._billed("due index query", lambda: super(LabelledMeter, self).query(**request))


class _Gateway:
    """Htouhui's query interface as the flows need it: each user's level, nothing else."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}

    def register(self, request: Any) -> Any:
        raise NotImplementedError

    def query(self, request: Any) -> Any:
        user = request.third_party_user_id
        return SimpleNamespace(
            third_party_user_id=user,
            htouhui_user_id=f"H{user}",
            status=str(self.status.get(user, 0)),
            bank_card_number="6222 **** **** 1234" if self.status.get(user, 0) >= 2 else None,
            borrower="0",
        )


class _ListQueue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> None:
        self.messages.extend(messages)

    def depth(self) -> int:
        return 0


def _settings(keys_dir: Path) -> Any:
    from onboarding.config import Settings

    return Settings.from_env(
        {
            "HTOUHUI_PARTNER_ID": "P2026000001",
            "HTOUHUI_BASE_URL": "https://htouhui.invalid",
            "MERCHANT_PRIVATE_KEY": f"file:{keys_dir / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{keys_dir / 'htouhui_public.pem'}",
        }
    )


NOTIFICATION_FIELDS = {  # a status-3 notification as received (its size is what the history record keeps)
    "partner_id": "P2026000001",
    "notify_no": "N202701041200000001",
    "notify_type": "OPEN_ACCOUNT",
    "third_party_user_id": "",
    "htouhui_user_id": "",
    "status": "3",
    "bank_card_number": "6222 **** **** 1234",
    "borrower": "0",
    "timestamp": "20270104120000",
    "sign_type": "RSA2",
    "sign": "A" * 344,  # a base64 RSA-2048 signature
}


def measure_units(moto_url: str, keys_dir: Path) -> dict[str, Any]:
    """DynamoDB request units of each flow (see the module's docstring), per call and per registration."""
    from stack.aws import client, create_template_tables

    from bench.scale import SimClock
    from onboarding.rules import Onboarding
    from onboarding.store import StatusUpdate, UserStore

    dynamodb = client("dynamodb", moto_url)
    create_template_tables(dynamodb, {"UsersTable": USERS, "NotificationsTable": NOTIFICATIONS}, streams=False)
    meter = LabelledMeter(dynamodb)
    store = UserStore(USERS, NOTIFICATIONS, dynamodb=meter, history_days=1095)
    clock = SimClock(EPOCH)
    gateway = _Gateway()
    onboarding = Onboarding.configured(_settings(keys_dir), store, lambda: gateway, clock=clock)
    flows: dict[str, defaultdict[str, float]] = {}

    @contextlib.contextmanager
    def flow(name: str) -> Iterator[None]:
        writes, reads = meter.snapshot()
        steps = dict(meter.by_step)
        yield
        after_writes, after_reads = meter.snapshot()
        row = flows.setdefault(name, defaultdict(float))
        row["WRU"] += after_writes - writes
        row["RRU"] += after_reads - reads
        row["calls"] += 1
        for step, units in list(meter.by_step.items()):
            if units - steps.get(step, 0.0):
                row[step] += units - steps.get(step, 0.0)

    def register(user: str) -> None:
        with flow("register"):
            store.claim_registration(user, "d" * 64, clock())
            store.complete_registration(user, f"H{user}", clock())

    def open_account(user: str) -> None:
        from htouhui.models import id_card_check_character

        card = "11010519900307123" + id_card_check_character("11010519900307123")
        with flow("open_account"):
            store.mark_open_requested(user, card, clock())
            onboarding.core.restart_ladder(user)

    # the merchant-facing flows, on a user who reaches status 3 by notification
    register("u-notified")
    open_account("u-notified")
    fields = {**NOTIFICATION_FIELDS, "third_party_user_id": "u-notified", "htouhui_user_id": "Hu-notified"}
    with flow("notify"):
        store.apply_status(
            StatusUpdate("u-notified", "Hu-notified", 3, "notify", clock(), fields["bank_card_number"], "0",
                         fields["notify_no"], fields["timestamp"], fields)
        )  # fmt: skip
    with flow("browser return"):
        store.apply_status(StatusUpdate("u-notified", "Hu-notified", 3, "return", clock()))
    with flow("query_user"):
        store.get("u-notified")

    # reconciliation: each kind of user through its whole ladder, the real dispatcher and worker
    kinds = {"stalled at 0": 0, "stalled at 1": 1, "stalled at 2": 2, "lost notification": 3}
    checks: dict[str, int] = {}
    for kind, level in kinds.items():
        user = f"u-{kind.replace(' ', '-')}"
        register(user)
        open_account(user)
        gateway.status[user] = level
        checks[kind] = 0
        while (record := store.get(user)) is not None and record.next_check_at is not None:
            clock.now = max(clock.now, float(record.next_check_at))
            queue = _ListQueue()
            with flow(f"dispatch run ({kind})"):
                onboarding.checks.dispatch_due(queue, limit=50)
            for message in queue.messages:
                with flow(f"check ({kind})"):
                    onboarding.checks.check_scheduled(message["third_party_user_id"], message["due"])
                checks[kind] += 1
            if checks[kind] > 20:
                raise RuntimeError(f"{kind}: the ladder did not end")
    return _per_check(flows, checks)


def _per_check(flows: dict[str, defaultdict[str, float]], checks: dict[str, int]) -> dict[str, Any]:
    """Per check: the claim (in the dispatch run's writes) plus the check itself; the runs' index queries apart."""
    per_kind: dict[str, dict[str, Any]] = {}
    for kind, count in checks.items():
        run, check = flows[f"dispatch run ({kind})"], flows[f"check ({kind})"]
        steps = {name: value for name, value in check.items() if name.endswith((" WRU", " RRU"))}
        steps.update({name: value for name, value in run.items() if name.startswith("dispatch claim")})
        per_kind[kind] = {
            "checks": count,
            "WRU_per_check": round((check["WRU"] + run["WRU"]) / count, 3),
            "RRU_per_check": round(check["RRU"] / count, 3),
            "steps_per_check": {name: round(value / count, 3) for name, value in sorted(steps.items()) if value},
        }
        runs = run["calls"]
        per_kind[kind]["index_query_RRU_per_run"] = round(run["RRU"] / runs, 3)
    stalled = [per_kind[f"stalled at {level}"] for level in range(3)]
    lost = per_kind["lost notification"]
    # checks a registration costs: FORM * (LOST * 1 + STALLED * steps), each kind by its weight in checks
    weights = [(STALLED / 3 * entry["checks"], entry) for entry in stalled] + [(LOST * lost["checks"], lost)]
    total = sum(weight for weight, _ in weights)
    mean_w = sum(weight * entry["WRU_per_check"] for weight, entry in weights) / total
    mean_r = sum(weight * entry["RRU_per_check"] for weight, entry in weights) / total
    merchant = {
        name: {key: round(value / flows[name]["calls"], 3) for key, value in flows[name].items() if key != "calls"}
        for name in ("register", "open_account", "notify", "browser return", "query_user")
    }
    return {
        "method": "real store and rules against moto with the template's tables, billed by bench.capacity "
        "(item sizes, index projections, failed conditions, transactions)",
        "per_kind": per_kind,
        "WRU_per_check": round(mean_w, 3),
        "RRU_per_check": round(mean_r, 3),
        "index_query_RRU_per_run": stalled[0]["index_query_RRU_per_run"],
        "merchant_flows": merchant,
    }


# ------------------------------------------------------------------------------------------------ claims per second


class _LatencyClient:
    """The due-time index and the claim's UpdateItem in memory, each request taking `latency` seconds of
    DynamoDB's time (a sleep, the interpreter lock released) after the botocore-like work of the real store."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.due: dict[str, tuple[str, int]] = {}  # user -> (shard, due)
        self._lock = threading.Lock()

    def query(self, **request: Any) -> Any:
        values = request["ExpressionAttributeValues"]
        shard, now = values[":shard"]["S"], int(values[":now"]["N"])
        rows = sorted((due, user) for user, (at, due) in self.due.items() if at == shard and due <= now)
        rows = rows[: request["Limit"]]
        items = [{"third_party_user_id": {"S": user}, "next_check_at": {"N": str(due)}} for due, user in rows]
        return {"Items": items}

    def update_item(self, **request: Any) -> Any:
        time.sleep(self.latency)
        user = request["Key"]["third_party_user_id"]["S"]
        values = request["ExpressionAttributeValues"]
        with self._lock:
            shard, due = self.due[user]
            if due != int(values[":seen"]["N"]):
                from botocore.exceptions import ClientError

                raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")
            self.due[user] = (shard, int(values[":until"]["N"]))
        return {}


def claims(keys_dir: Path, *, users: int = 2000, latency: float = CLAIM_LATENCY_S) -> dict[str, Any]:
    """Claims a second of one dispatcher run, serial (one claim at a time, as before) and parallel
    (`Schedule.claim_dispatches`), against DynamoDB stood in for by a fixed latency per request."""
    from bench.scale import SimClock
    from onboarding import schedule
    from onboarding.rules import Onboarding
    from onboarding.store import UserStore

    class Serial(UserStore):
        def claim_dispatches(self, users: Sequence[Any], until: int) -> list[bool]:
            return [self.claim_dispatch(user, until) for user in users]

    results: dict[str, Any] = {"latency_ms": latency * 1000, "users": users}
    for name, kind in (("serial", Serial), ("parallel", UserStore)):
        fake = _LatencyClient(latency)
        clock = SimClock(EPOCH)
        now = int(clock.now)
        for number in range(users):
            user = f"u{number:06d}"
            fake.due[user] = (schedule.shard_of(user, 16), now - 60 - number % 50)
        store = kind(USERS, NOTIFICATIONS, dynamodb=fake)
        onboarding = Onboarding.configured(_settings(keys_dir), store, _Gateway, clock=clock)
        queue = _ListQueue()
        started, cpu = time.perf_counter(), time.process_time()
        report = onboarding.checks.dispatch_due(queue, limit=users)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        if report.dispatched != users or len(queue.messages) != users:
            raise RuntimeError(f"{name} dispatch claimed {report.dispatched} of {users}")
        results[name] = {
            "claims_per_s": round(users / seconds, 1),
            "seconds": round(seconds, 3),
            "cpu_ms_per_claim": round(cpu_seconds / users * 1000, 3),
        }
    results["threads"] = _threads()
    results["ratio"] = round(results["parallel"]["claims_per_s"] / results["serial"]["claims_per_s"], 2)
    return results


def _threads() -> int:
    from onboarding.store import due

    return due.CLAIM_THREADS


def client_cpu_per_claim(moto_url: str, *, users: int = 300) -> float:
    """Client CPU milliseconds per claim through a real boto3 client (serialising, signing, HTTP, parsing):
    what bounds a parallel dispatcher on Lambda, whose CPU share grows with its memory."""
    from stack.aws import client, create_template_tables

    from onboarding.store import DueUser, UserStore

    dynamodb = client("dynamodb", moto_url)
    with contextlib.suppress(Exception):
        create_template_tables(
            dynamodb, {"UsersTable": "claims-users", "NotificationsTable": "claims-n"}, streams=False
        )
    store = UserStore("claims-users", "claims-n", dynamodb=dynamodb)
    rows = []
    for number in range(users):
        user = f"c{number:05d}"
        dynamodb.put_item(
            TableName="claims-users",
            Item={"third_party_user_id": {"S": user}, "check_shard": {"S": "00"}, "next_check_at": {"N": "100"}},
        )
        rows.append(DueUser(user, 100, "00"))
    cpu = time.process_time()
    for row in rows:
        store.claim_dispatch(row, 1000)
    return (time.process_time() - cpu) / users * 1000


# ---------------------------------------------------------------------------------------- handlers' logs, memory


def _worker_batch(world: Any, scratch: Path, size: int = 10) -> Path:
    """Ten registered users due for their first check, in our table and in the sandbox; their SQS batch."""
    import httpx
    from stack.aws import client

    from htouhui.models import id_card_check_character

    dynamodb = client("dynamodb", world.moto_url)
    records, seeded = [], []
    due = int(time.time()) - 60
    for number in range(size):
        user = f"u-cost-{number}"
        body = "1101051990030" + f"{number:03d}"[-4:].rjust(4, "7")
        card = body + id_card_check_character(body)
        seeded.append({"third_party_user_id": user, "status": 1, "id_card": card})
    answer = httpx.post(f"{world.sandbox_url}/_sandbox/users", json={"users": seeded}, timeout=10)
    answer.raise_for_status()
    for number, view in enumerate(answer.json()["users"]):
        user = view["third_party_user_id"]
        dynamodb.put_item(
            TableName="UsersTable",
            Item={
                "third_party_user_id": {"S": user},
                "htouhui_user_id": {"S": view["htouhui_user_id"]},
                "registration": {"S": "DONE"},
                "mobile_digest": {"S": "0" * 64},
                "open_requested": {"BOOL": True},
                "id_card": {"S": seeded[number]["id_card"]},
                "created_at": {"S": "2026-11-28T10:00:00.000Z"},
                "updated_at": {"S": "2026-11-28T10:00:00.000Z"},
                "check_shard": {"S": "00"},
                "next_check_at": {"N": str(due)},
                "check_anchor": {"N": str(due - 300)},
                "check_step": {"N": "0"},
                "check_attempts": {"N": "0"},
            },
        )
        body = json.dumps({"third_party_user_id": user, "due": due})
        records.append(
            {"messageId": f"m-{number}", "receiptHandle": "r", "body": body, "attributes": {}, "eventSource": "aws:sqs"}
        )
    path = scratch / "worker-batch.json"
    path.write_text(json.dumps({"Records": records}), encoding="utf-8")
    return path


def handler_runs(keys_dir: Path, scratch: Path, *, rounds: int = 3) -> dict[str, Any]:
    """Each function's sample request in a fresh interpreter (the worker: a batch of ten): its log bytes and,
    for the worker, its peak resident memory (VmHWM), the median of `rounds`."""
    from bench import cold, first_request

    names = ["register", "open_account", "notify", "query_user", "publish_status", "reconcile_dispatch"]
    out: dict[str, Any] = {}
    with first_request.world(scratch / "cost-world") as world:
        chosen = {target.name: target for target in cold.targets(keys_dir, [*names, "reconcile_worker"], world)}
        for name in names:
            world.reset(name)
            log_bytes, _ = _run_child(chosen[name], chosen[name].event)
            out[name] = {"log_bytes_per_invocation": log_bytes}
        peaks, logs, cpu = [], [], []
        for _ in range(rounds):
            world.reset("reconcile_worker")
            batch = _worker_batch(world, scratch)
            log_bytes, data = _run_child(chosen["reconcile_worker"], str(batch))
            answer = data.get("answer") or {}
            if answer.get("batchItemFailures"):
                raise RuntimeError(f"the worker's batch failed: {answer}")
            peaks.append(int(data["maxrss_with_first_request_setup_kib"]))
            logs.append(log_bytes)
            cpu.append(data["cpu_seconds"])
        world.reset("reconcile_worker")
        _, twenty = _run_child(chosen["reconcile_worker"], str(_worker_batch(world, scratch, size=20)))
        warm_cpu = (twenty["cpu_seconds"] - sorted(cpu)[len(cpu) // 2]) / 10
        out["reconcile_worker"] = {
            "log_bytes_per_invocation": sorted(logs)[len(logs) // 2],
            "batch": 10,
            "peak_rss_mib": round(sorted(peaks)[len(peaks) // 2] / 1024, 1),
            "peak_rss_mib_max": round(max(peaks) / 1024, 1),
            # the whole cold invocation's CPU (interpreter, imports, ten signed queries, thirty writes)
            "cpu_seconds_cold_batch": round(sorted(cpu)[len(cpu) // 2], 3),
            # ten more checks in the same invocation (a batch of 20 against one of 10): a warm check's CPU
            "cpu_ms_per_warm_check": round(warm_cpu * 1000, 1),
        }
    return out


def _run_child(target: Any, event: str) -> tuple[int, dict[str, Any]]:
    import resource

    from bench.cold import CHILD

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-E", "-s", str(CHILD), target.folder, target.layer, "request", event],
        capture_output=True,
        env={**target.env, "POWERTOOLS_LOG_LEVEL": "INFO"},
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{target.name} failed:\n{result.stderr.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = result.stdout.splitlines(keepends=True)
    data: dict[str, Any] = json.loads(lines[-1])
    data["cpu_seconds"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return sum(len(line) for line in lines[:-1]), data


# ------------------------------------------------------------------------------------------------ the model


def monthly(
    units: dict[str, Any],
    runs: dict[str, Any],
    *,
    queries_per_day: float,
    prices: dict[str, Any],
    memory_mb: dict[str, int],
    pacing_interval_s: float,
    claim_seconds_per_claim: float,
    nat: bool,
) -> dict[str, Any]:
    """USD a month at REGISTRATIONS_PER_DAY, per function and per component, reconciliation broken out."""
    price = {name: entry["usd"] for name, entry in prices["prices"].items()}
    days = MONTH_DAYS
    forms = REGISTRATIONS_PER_DAY * FORM
    finished = forms * (NOTIFIED + LOST)
    flows = units["merchant_flows"]
    invocations = {
        "register": REGISTRATIONS_PER_DAY,
        "open_account": forms,
        "notify": forms * NOTIFIED * ASSUMED["notifications_per_notified"] + finished * ASSUMED["returns_per_finished"],
        "query_user": REGISTRATIONS_PER_DAY * ASSUMED["query_user_per_registration"],
        "publish_status": ASSUMED["stream_batches_per_day"],
        "reconcile_dispatch": 1440,
        "reconcile_worker": queries_per_day / 10,
    }
    claims_per_run = queries_per_day / 1440
    durations = dict(ASSUMED["duration_s"])
    # the dispatcher: 16 index queries and its claims; the worker: one pacing interval of a slot per query
    durations["reconcile_dispatch"] = 16 * CLAIM_LATENCY_S + claims_per_run * claim_seconds_per_claim
    durations["reconcile_worker"] = 10 * pacing_interval_s
    functions: dict[str, dict[str, float]] = {}
    for name, count in invocations.items():
        gb_s = count * durations[name] * memory_mb[name] / 1024 * days
        log_bytes = runs.get(name, {}).get("log_bytes_per_invocation", 0) + ASSUMED["platform_log_bytes"]
        functions[name] = {
            "invocations_per_day": round(count),
            "memory_mb": memory_mb[name],
            "duration_s": round(durations[name], 4),
            "lambda_gb_s": round(gb_s * price["lambda_gb_second_arm64"], 2),
            "lambda_requests": round(count * days * price["lambda_request"], 2),
            "logs": round(count * days * log_bytes / 1024**3 * price["cloudwatch_logs_ingestion_gb"], 2),
        }
    wru, rru = price["dynamodb_write_request_unit"], price["dynamodb_read_request_unit"]
    dynamo = {
        "register": REGISTRATIONS_PER_DAY * (flows["register"]["WRU"] * wru + flows["register"]["RRU"] * rru),
        "open_account": forms * (flows["open_account"]["WRU"] * wru + flows["open_account"]["RRU"] * rru),
        "notify": forms * NOTIFIED * flows["notify"]["WRU"] * wru + finished * flows["browser return"]["WRU"] * wru,
        "query_user": invocations["query_user"] * flows["query_user"]["RRU"] * rru,
    }
    for name, value in dynamo.items():
        functions[name]["dynamodb"] = round(value * days, 2)
    reconcile_writes = queries_per_day * units["WRU_per_check"] * wru * days
    reconcile_reads = (queries_per_day * units["RRU_per_check"] + 1440 * units["index_query_RRU_per_run"]) * rru * days
    functions["reconcile_worker"]["dynamodb"] = round(reconcile_writes + reconcile_reads, 2)
    functions["reconcile_dispatch"]["dynamodb"] = 0.0  # its claims and queries are in the worker's line above
    functions["api_gateway"] = {
        "requests": round(
            sum(invocations[name] for name in ("register", "open_account", "notify", "query_user"))
            * days
            * price["api_gateway_http_request"],
            2,
        )
    }
    # SQS: the dispatcher's batches of 10 and its depth look; Lambda's receives (one per batch, plus empty
    # long polls: 5 pollers a queue, one 20 s poll each when idle) and deletes (one batch per invocation)
    sqs_requests = {
        "send (batches of 10)": queries_per_day / 10,
        "depth (GetQueueAttributes)": 1440,
        "receive": queries_per_day / 10,
        "delete (batches)": queries_per_day / 10,
        "empty long polls (2 queues, 5 pollers)": 2 * 5 * DAY / 20,
    }
    sqs = sum(sqs_requests.values()) * days * price["sqs_request"]
    events = forms * ASSUMED["status_events_per_form"] * days * price["eventbridge_event"]
    storage_gb = REGISTRATIONS_PER_DAY * 365 * ASSUMED["user_item_kb_month"] / 1024**2
    history_gb = forms * NOTIFIED * 365 * ASSUMED["history_item_kb"] / 1024**2
    storage = (storage_gb + history_gb) * (price["dynamodb_storage_gb_month"] + price["dynamodb_pitr_gb_month"])
    nat_cost: dict[str, float] = {"hours": 0.0, "data": 0.0, "addresses_and_endpoint": 0.0}
    if nat:
        calls = REGISTRATIONS_PER_DAY + queries_per_day
        nat_cost = {
            "hours": 2 * 730 * price["nat_gateway_hour"],
            "data": calls * days * ASSUMED["htouhui_bytes_per_call"] / 1024**3 * price["nat_gateway_gb"],
            "addresses_and_endpoint": 2 * 730 * (price["public_ipv4_hour"] + price["interface_endpoint_hour"]),
        }
    reconciliation = {
        "lambda_gb_s_worker (paced sleep included)": functions["reconcile_worker"]["lambda_gb_s"],
        "lambda_gb_s_dispatcher": functions["reconcile_dispatch"]["lambda_gb_s"],
        "lambda_requests": functions["reconcile_worker"]["lambda_requests"]
        + functions["reconcile_dispatch"]["lambda_requests"],
        "sqs_requests": round(sqs, 2),
        "dynamodb_writes": round(reconcile_writes, 2),
        "dynamodb_reads": round(reconcile_reads, 2),
        "logs": functions["reconcile_worker"]["logs"] + functions["reconcile_dispatch"]["logs"],
        "nat": round(sum(nat_cost.values()) * queries_per_day / (REGISTRATIONS_PER_DAY + queries_per_day), 2),
        "scheduler": round(1440 * days * price["eventbridge_scheduler_invocation"], 2),
    }
    reconciliation = {name: round(value, 2) for name, value in reconciliation.items()}
    components = {
        "lambda_gb_s": sum(entry.get("lambda_gb_s", 0.0) for entry in functions.values()),
        "lambda_requests": sum(entry.get("lambda_requests", 0.0) for entry in functions.values()),
        "api_gateway": functions["api_gateway"]["requests"],
        "sqs": sqs,
        "dynamodb_requests": sum(entry.get("dynamodb", 0.0) for entry in functions.values()),
        "dynamodb_storage_and_pitr_after_a_year": storage,
        "cloudwatch_logs": sum(entry.get("logs", 0.0) for entry in functions.values()),
        "eventbridge": events + reconciliation["scheduler"],
        "nat": sum(nat_cost.values()),
    }
    components = {name: round(value, 2) for name, value in components.items()}
    return {
        "monthly_usd": round(sum(components.values()), 2),
        "reconciliation_monthly_usd": round(sum(reconciliation.values()), 2),
        "components": components,
        "functions": functions,
        "reconciliation": reconciliation,
        "sqs_requests_per_day": {name: round(value) for name, value in sqs_requests.items()},
        "nat_monthly_usd": {name: round(value, 2) for name, value in nat_cost.items()},
        "queries_per_day": round(queries_per_day),
    }


# Measured on this bench at commit ce8560d (before issue 22's cost work) with the same meter and model: kept so
# that the figures say what changed (`python -m bench.cost` prints the units per check of the code it runs on).
BEFORE: dict[str, Any] = {
    "commit": "ce8560d",
    "WRU_per_check": 7.537,
    "memory_mb": {"reconcile_worker": 512, "reconcile_dispatch": 512},
}
FULL_VCPU_MB = 1769  # Lambda gives a function one vCPU at 1,769 MB, in proportion below that


def claim_seconds(rate: dict[str, Any], cpu_ms: float, memory_mb: int, *, parallel: bool) -> float:
    """Seconds a dispatcher run spends per claim on Lambda: DynamoDB's latency (over the threads, when parallel)
    or the client's CPU at the function's share of a vCPU (one core at most: the interpreter lock), the larger."""
    cpu = cpu_ms / 1000 / min(1.0, memory_mb / FULL_VCPU_MB)
    if parallel:
        return max(1 / float(rate["parallel"]["claims_per_s"]), cpu)
    return float(rate["latency_ms"]) / 1000 + cpu


def measure(
    keys_dir: Path,
    *,
    queries_per_day: float,
    progress: Callable[[str], None] = lambda _line: None,
    handler_rounds: int = 3,
    claim_users: int = 2000,
) -> tuple[list[Figure], dict[str, Any]]:
    from bench.environment import functions as template_functions
    from bench.servers import moto_server
    from onboarding import schedule
    from onboarding.config import Settings

    prices = load_prices()
    source = template_functions()
    names = ("register", "open_account", "notify", "query_user", "publish_status", "reconcile_dispatch",
             "reconcile_worker")  # fmt: skip
    memory = {name: source.function(name).memory for name in names}
    fields = Settings.__dataclass_fields__
    defaults: dict[str, Any] = {name: fields[name].default for name in fields}
    slots = int(defaults["reconcile_workers"]) + int(defaults["reconcile_priority_workers"])
    interval = schedule.pacing_interval(float(defaults["reconcile_rate_budget"]), slots)
    with moto_server() as moto:
        units = measure_units(moto.url, keys_dir)
        progress(f"cost: {units['WRU_per_check']} write units per check")
        cpu_ms = client_cpu_per_claim(moto.url)
    rate = claims(keys_dir, users=claim_users)
    progress(
        f"cost: {rate['parallel']['claims_per_s']:.0f} claims/s parallel, {rate['serial']['claims_per_s']:.0f} serial"
    )
    with tempfile.TemporaryDirectory(prefix="htouhui-cost-") as scratch:
        runs = handler_runs(keys_dir, Path(scratch), rounds=handler_rounds)
    progress(f"cost: worker peak {runs['reconcile_worker']['peak_rss_mib']} MiB for a batch of 10")
    per_claim = claim_seconds(rate, cpu_ms, memory["reconcile_dispatch"], parallel=True)

    def model(nat: bool) -> dict[str, Any]:
        return monthly(units, runs, queries_per_day=queries_per_day, prices=prices, memory_mb=memory,
                       pacing_interval_s=interval, claim_seconds_per_claim=per_claim, nat=nat)  # fmt: skip

    now, with_nat = model(False), model(True)
    before_units = {**units, "WRU_per_check": BEFORE["WRU_per_check"]}
    before_memory = {**memory, **BEFORE["memory_mb"]}
    serial_claim = claim_seconds(rate, cpu_ms, before_memory["reconcile_dispatch"], parallel=False)
    before = monthly(before_units, runs, queries_per_day=queries_per_day, prices=prices, memory_mb=before_memory,
                     pacing_interval_s=interval, claim_seconds_per_claim=serial_claim, nat=False)  # fmt: skip
    details = {
        "monthly_usd": now["monthly_usd"],
        "components": now["components"],
        "reconciliation": now["reconciliation"],
        "reconciliation_monthly_usd": now["reconciliation_monthly_usd"],
        "functions": now["functions"],
        "sqs_requests_per_day": now["sqs_requests_per_day"],
        "queries_per_day": now["queries_per_day"],
        "with_nat": {"monthly_usd": with_nat["monthly_usd"], "nat": with_nat["nat_monthly_usd"]},
        "before": {
            "commit": BEFORE["commit"],
            "monthly_usd": before["monthly_usd"],
            "components": before["components"],
            "reconciliation": before["reconciliation"],
            "reconciliation_monthly_usd": before["reconciliation_monthly_usd"],
            "WRU_per_check": BEFORE["WRU_per_check"],
            "memory_mb": BEFORE["memory_mb"],
            "dispatcher_claims_per_s_on_lambda": round(1 / serial_claim, 1),
        },
        "prices": {
            "region": prices["region"],
            "date": prices["read_on"],
            "currency": prices["currency"],
            "note": prices["china_note"],
        },
        "units": units,
        "claims": {
            **rate,
            "client_cpu_ms_per_claim": round(cpu_ms, 3),
            "on_lambda_per_s": round(1 / per_claim, 1),
            "dispatcher_memory_mb": memory["reconcile_dispatch"],
        },
        "handlers": runs,
        "memory_mb": memory,
        "pacing_interval_s": interval,
        "assumed": ASSUMED,
    }
    worker = runs["reconcile_worker"]
    figures = [
        Figure("scale", "cost a month at 1 M registrations a day", now["monthly_usd"], before["monthly_usd"], "USD",
               note=f"{prices['region']} list prices read {prices['read_on']}; floor: the same model at ce8560d"),
        Figure("scale", "reconciliation cost a month", now["reconciliation_monthly_usd"],
               before["reconciliation_monthly_usd"], "USD", target=1.0, direction="max",
               note="worker GB-s (paced sleep), requests, SQS, DynamoDB, logs; floor: at ce8560d"),
        Figure("scale", "DynamoDB write units per check", units["WRU_per_check"], BEFORE["WRU_per_check"], "WRU",
               target=1.0, direction="max", note="real rules on moto, billed by bench.capacity; floor: ce8560d"),
        Figure("scale", "dispatcher claims per second, DynamoDB-bound", rate["parallel"]["claims_per_s"], 600,
               "claims/s", target=1.0, direction="min",
               note=f"{rate['threads']} threads at {rate['latency_ms']:g} ms a request; one at a time: "
                    f"{rate['serial']['claims_per_s']:.0f}/s ({rate['ratio']:.1f}x); floor: 10 M a day's need"),
        Figure("scale", "dispatcher claims per second on Lambda, CPU-bound", round(1 / per_claim, 1), 600, "claims/s",
               target=1.0, direction="min",
               note=f"{cpu_ms:.2f} ms client CPU a claim (boto3, measured) at {memory['reconcile_dispatch']} MB's "
                    "vCPU share; floor: what 10 M a day needs"),
        Figure("scale", "worker peak memory, a batch of 10", worker["peak_rss_mib"], memory["reconcile_worker"],
               "MiB", target=0.8, direction="max", note="VmHWM against the worker's MemorySize (floor)"),
    ]  # fmt: skip
    return figures, details


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.cost`: the write and read units per check on this code, as JSON."""
    import argparse

    argparse.ArgumentParser(
        prog="python -m bench.cost", description="DynamoDB units per check on this code (moto, bench.capacity)"
    ).parse_args(argv)
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "local")]
    from bench.keys import make_keys
    from bench.servers import moto_server

    with tempfile.TemporaryDirectory() as scratch, moto_server() as moto:
        units = measure_units(moto.url, make_keys(Path(scratch) / "keys"))
    print(json.dumps(units, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
