"""The honest sample (`python -m bench.sample`): the real reconciliation handlers, threads, moto, against the model.

What runs is what Lambda runs: `functions/reconcile_dispatch/app.py` and `functions/reconcile_worker/app.py`, each
`lambda_handler` called with an event and a context, over the real `onboarding.store` on moto's server (the
template's tables, the template's work queue with its visibility time-out) through boto3 and HTTP. Two dispatchers
run every minute at the same moment, each in its own thread; each worker slot is a thread with its own copy of the
worker module (one Lambda container: its own pacer), receiving batches of up to the template's BatchSize, deleting
what succeeded and leaving the rest (`batchItemFailures`, the time-left guard's DEFERRED) to come back after the
visibility time-out. Only Htouhui is a stand-in (each user's true status, 0.3 s per query).

Time is simulated and shared: `JumpClock` moves only when every thread waits (a pacing wait, a query, an idle
poll), so the CPU the code spends costs no simulated time, and moto's SQS reads the same clock (visibility
time-outs in simulated seconds). The handlers get it through `onboarding.runtime.configure(clock=...)`, the
pacers through their `clock`/`sleep` and the contexts through their deadline.

The workload is the stated cohort (bench.scale: 20 % no form, 56 % notified two minutes after the form, 4 % at
status 3 without a notification, 20 % stalled) at SAMPLE_SCALE of the full scale, peak hour and all, with the
budget scaled alike; the model is `bench.scenarios.simulate` over the same forms, ladder and budget. They agree
when worst and p99 delays are within DELAY_TOLERANCE (or DELAY_SLACK_MINUTES) and the largest backlog within
BACKLOG_TOLERANCE (or BACKLOG_SLACK_USERS) of each other. A double check (one user asked twice within
`schedule.RETRY_BASE_SECONDS`, the shortest gap the schedule ever leaves, or by two checks at once) must not
happen; `broken_lease=True` removes the dispatch claim's and the check lease's conditions to show that the
count sees it when it does.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import scale

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SCALE = 50  # 1:50 of the full scale: 20,000 registrations a day, budget 1/s
WORKERS, PRIORITY_WORKERS = 3, 1  # pacing interval 4 s at 1/s (0.5 s at full scale): a batch of 10 fits a run
SHARDS = 4  # the index's write shards: a 1:50 sample writes a fiftieth as much (and moto scans the table per query)
QUERY_SECONDS = 0.3  # simulated time one Htouhui query takes
IDLE_POLL_SECONDS = 5  # an empty receive: the slot asks again this much later (Lambda's poller long-polls)
DELAY_TOLERANCE, DELAY_SLACK_MINUTES = 0.25, 2
BACKLOG_TOLERANCE, BACKLOG_SLACK_USERS = 0.25, 25


@dataclass(frozen=True)
class Workload:
    """Forms from `start` to `end` (seconds of the day, UTC) and the run until `horizon`."""

    start: int = 11 * 3600 + 2700
    end: int = 12 * 3600 + 1800
    horizon: int = 13 * 3600 + 1800
    scale: int = SAMPLE_SCALE
    lost_reply_every: int = 7  # every so many worker invocations end without a reply (timed out after the work)

    @property
    def registrations_per_day(self) -> float:
        return scale.REGISTRATIONS_PER_DAY / self.scale

    @property
    def budget(self) -> float:
        return 50.0 / self.scale


QUICK = Workload(start=12 * 3600, end=12 * 3600 + 240, horizon=12 * 3600 + 1260)


class JumpClock:
    """Simulated time for a fixed set of participant threads: it jumps to the earliest wake-up once all wait."""

    def __init__(self, start: float, participants: int) -> None:
        self.now = start
        self.participants = participants
        self._waiting: dict[int, float] = {}
        self._condition = threading.Condition()

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self.now + max(0.0, seconds))

    def sleep_until(self, at: float) -> None:
        with self._condition:
            me = threading.get_ident()
            self._waiting[me] = at
            while self.now < at:
                self._advance()
                if self.now >= at:
                    break
                self._condition.wait()
            del self._waiting[me]

    def leave(self) -> None:
        """A participant is done: the others no longer wait for it."""
        with self._condition:
            self.participants -= 1
            self._advance()

    def _advance(self) -> None:
        if self._waiting and len(self._waiting) >= self.participants:
            earliest = min(self._waiting.values())
            if earliest > self.now:
                self.now = earliest
                self._condition.notify_all()


class SampleHtouhui(scale.MemoryHtouhui):
    """The query interface of bench.scale, taking simulated time per query and logging each query's moment."""

    def __init__(self, clock: JumpClock) -> None:
        super().__init__(clock)  # type: ignore[arg-type]  # it reads .now, as JumpClock has it
        self.jump = clock
        self.lock = threading.Lock()
        self.asked: dict[str, list[float]] = defaultdict(list)
        self.asking: set[str] = set()  # users whose query is under way

    def query(self, request: Any) -> Any:
        user = request.third_party_user_id
        with self.lock:
            if user in self.asking:
                self.overlaps += 1
            self.asking.add(user)
            self.asked[user].append(self.jump.now)
        try:
            self.jump.sleep(QUERY_SECONDS)
            with self.lock:
                return super().query(request)
        finally:
            with self.lock:
                self.asking.discard(user)


def _break_leases() -> None:
    """The deliberately broken lease: claims and check leases without their conditions (a test's fault)."""
    from onboarding import dynamo
    from onboarding.store import UserRecord, UserStore
    from onboarding.store.records import user_key

    def claim_dispatch(self: Any, user: Any, until: int) -> bool:
        return True

    def claim_dispatches(self: Any, users: list[Any], until: int) -> list[bool]:
        return [True for _ in users]

    def begin_check(self: Any, third_party_user_id: str, *, token: str, now: int, lease_until: int,
                    due: int | None = None) -> Any:  # fmt: skip
        answer = self._call(
            "update_item",
            TableName=self.users_table,
            Key=user_key(third_party_user_id),
            UpdateExpression="SET check_lease = :until, check_token = :token",
            ExpressionAttributeValues=dynamo.values({":until": lease_until, ":token": token}),
            ReturnValues="ALL_NEW",
        )
        return UserRecord.from_item(answer["Attributes"])

    for name, method in (("claim_dispatch", claim_dispatch), ("claim_dispatches", claim_dispatches),
                         ("begin_check", begin_check)):  # fmt: skip
        if hasattr(UserStore, name):
            setattr(UserStore, name, method)


def _forms(workload: Workload, day_start: float) -> list[tuple[float, str, str]]:
    """(time, user, outcome) of every registration in the window, the cohort's outcomes in exact proportions."""
    share = scale.hourly_share()
    pattern = scale._outcome_pattern()
    out: list[tuple[float, str, str]] = []
    owed = 0.0
    number = 0
    for second in range(workload.start, workload.end, 60):
        owed += workload.registrations_per_day * share[second // 3600] / 60
        count = int(owed)
        owed -= count
        for n in range(count):
            outcome = pattern[number % len(pattern)]
            out.append((day_start + second + 60 * (n + 0.5) / count, f"u{number:06d}", outcome))
            number += 1
    return out


def run(workload: Workload = QUICK, *, broken_lease: bool = False) -> dict[str, Any]:
    """One sample against moto in this process; returns its figures beside the model's."""
    sys.path.insert(0, str(ROOT / "local"))
    import moto.sqs.models as sqs_models
    from stack import aws, inprocess
    from stack.lambdas import invocation_context
    from stack.sqs import LocalQueue, create_queues, sqs_record
    from stack.template import REGION
    from stack.worker import LambdaContext

    from bench.environment import PARTNER_ID
    from bench.keys import make_keys
    from htouhui.models import id_card_check_character
    from onboarding import runtime, schedule
    from onboarding.config import Settings
    from onboarding.reconcile import Pacer
    from onboarding.rules import Onboarding
    from onboarding.store import StatusUpdate, UserStore

    day_start = scale.EPOCH.timestamp()
    clock = JumpClock(day_start + workload.start - 60, participants=0)
    setattr(sqs_models, "unix_time", lambda: clock.now)  # noqa: B010  # moto's SQS clock: the simulated one
    setattr(sqs_models, "unix_time_millis", lambda: clock.now * 1000)  # noqa: B010
    if broken_lease:
        _break_leases()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = aws.serial_moto_server("127.0.0.1", 0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    keys = make_keys(Path(tempfile.mkdtemp(prefix="sample-keys-")))
    functions = inprocess.Functions()
    template = functions.template
    source = next(s for s in template.queue_sources if s.function == "ReconcileWorkerFunction" and s.batch_size > 1)
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION})
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto's dummy credentials
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    dynamodb = aws.client("dynamodb", endpoint)
    aws.create_template_tables(dynamodb, {"UsersTable": "users", "NotificationsTable": "notifications"}, streams=False)
    queues = create_queues(endpoint, template)
    queue: LocalQueue = queues.by_logical[str(source.queue)]
    environment = functions.environment(
        {
            "USERS_TABLE": "users",
            "NOTIFICATIONS_TABLE": "notifications",
            "RECONCILE_QUEUE_URL": queue.url,
            "RECONCILE_RATE_BUDGET": str(workload.budget),
            "RECONCILE_WORKERS": str(WORKERS),
            "RECONCILE_PRIORITY_WORKERS": str(PRIORITY_WORKERS),
            "RECONCILE_SHARDS": str(SHARDS),
            "MERCHANT_PRIVATE_KEY": f"file:{keys / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{keys / 'htouhui_public.pem'}",
            "HTOUHUI_BASE_URL": "https://htouhui.invalid",
            "HTOUHUI_PARTNER_ID": PARTNER_ID,
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    environment = {k: v for k, v in environment.items() if isinstance(v, str)}
    os.environ.update(environment)
    settings = Settings.from_env(environment)
    htouhui = SampleHtouhui(clock)
    store = UserStore("users", "notifications")
    onboarding = Onboarding.configured(settings, store, lambda: htouhui, clock=clock)
    runtime.configure(settings=settings, reconcile_onboarding=onboarding, clock=clock)
    sqs = aws.client("sqs", endpoint)
    interval = schedule.pacing_interval(settings.reconcile_rate_budget, WORKERS + PRIORITY_WORKERS)

    class SimContext(LambdaContext):
        def __init__(self, name: str) -> None:
            function = functions.function(name)
            super().__init__(invocation_context(function))
            self.deadline = clock.now + function.timeout

        def get_remaining_time_in_millis(self) -> int:
            return max(0, int((self.deadline - clock.now) * 1000))

    forms = _forms(workload, day_start)
    anchors: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    batches: Counter[int] = Counter()
    queued: dict[int, int] = {}
    invocations, lost_replies = [0], [0]
    redelivered = 0
    errors: list[str] = []
    end = day_start + workload.horizon
    dispatch_reports: list[dict[str, Any]] = []
    lock = threading.Lock()

    def seeder() -> None:
        """The forms, the notifications two minutes later, Htouhui's status; the queue's depth once a minute."""
        events = sorted([(at, 0, user, outcome) for at, user, outcome in forms]
                        + [(at + scale.NOTIFY_AFTER, 1, user, outcome) for at, user, outcome in forms]
                        + [(day_start + m + 1, 2, "", "") for m in range(workload.start, workload.horizon, 60)]
                        )  # fmt: skip
        for at, kind, user, outcome in events:
            clock.sleep_until(at)
            if kind == 2:  # a second after the dispatchers' run: what is queued (sent, not yet checked)
                attributes = sqs.get_queue_attributes(
                    QueueUrl=queue.url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                queued[int(clock.now)] = sum(int(value) for value in attributes.values())
            elif kind == 0 and outcome != "none":
                card = "11010519900307" + f"{int(user[1:]) % 100:02d}1"
                store.claim_registration(user, "digest", clock())
                store.complete_registration(user, f"H{user}", clock())
                store.mark_open_requested(user, card + id_card_check_character(card), clock())
                htouhui.status[user] = {"notified": 0, "lost": 0, "stalled": int(user[-1]) % 3}[outcome]
                onboarding.core.restart_ladder(user)  # the form: the ladder starts (as open_account does)
                anchors[user], outcomes[user] = clock.now, outcome
            elif kind == 1 and outcome in ("notified", "lost"):
                htouhui.status[user] = 3
                if outcome == "notified":
                    store.apply_status(StatusUpdate(user, f"H{user}", 3, "notify", clock()))
        clock.leave()

    def dispatcher() -> None:
        module = functions.module("reconcile_dispatch", fresh=True)
        minute = math.ceil(clock.now / 60) * 60
        while minute < end:
            clock.sleep_until(minute)
            try:
                report = module.lambda_handler({"id": f"run-{minute}"}, SimContext("reconcile_dispatch"))
                with lock:
                    dispatch_reports.append(report)
            except Exception as exc:  # counted: a sample with errors does not agree
                errors.append(f"dispatch: {type(exc).__name__}: {exc}")
            minute += 60
        clock.leave()

    def worker() -> None:
        nonlocal redelivered
        module = functions.module("reconcile_worker", fresh=True)  # one container: its own pacer
        pacer = Pacer(interval, clock=clock.monotonic, sleep=clock.sleep)
        pacer.hold()
        setattr(module, "_pacer", pacer)  # noqa: B010  # the container's pacer, on the simulated clock
        while clock.now < end:
            received = sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=source.batch_size, WaitTimeSeconds=0,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])  # fmt: skip
            if not received:
                clock.sleep(IDLE_POLL_SECONDS)
                continue
            records = [sqs_record(message, queue) for message in received]
            with lock:
                batches[len(received)] += 1
                redelivered += sum(int(m["Attributes"].get("ApproximateReceiveCount", 1)) > 1 for m in received)
            try:
                result = module.lambda_handler({"Records": records}, SimContext("reconcile_worker"))
                failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            except Exception as exc:  # the whole batch comes back, as from a crashed invocation
                errors.append(f"worker: {type(exc).__name__}: {exc}")
                continue
            with lock:
                invocations[0] += 1
                lost_reply = workload.lost_reply_every > 0 and invocations[0] % workload.lost_reply_every == 0
            if lost_reply:  # Lambda never heard back: nothing is deleted, the batch comes back after the time-out
                with lock:
                    lost_replies[0] += 1
                continue
            done = [m for m in received if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[start:][:10])]
                sqs.delete_message_batch(QueueUrl=queue.url, Entries=entries)
        clock.leave()

    threads = [threading.Thread(target=seeder, name="forms")]
    threads += [threading.Thread(target=dispatcher, name=f"dispatcher-{n}") for n in range(2)]
    threads += [threading.Thread(target=worker, name=f"worker-{n}") for n in range(WORKERS)]
    clock.participants = len(threads)
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.perf_counter() - started
    server.stop()

    ladder = schedule.Ladder(settings.reconcile_ladder)
    delays, waiting, doubled = _from_queries(ladder, anchors, outcomes, htouhui.asked, end)
    doubled += htouhui.overlaps
    minutes = sorted(math.ceil(delay / 60) for delay in delays)
    # a second after each dispatcher run, as the model counts it: users due and not sent (not yet checked, less
    # those whose message is in the queue)
    backlog = [max(0, sum(1 for due, asked in waiting if due <= t < asked) - depth) for t, depth in queued.items()]
    sample = {
        "worst_delay_minutes": minutes[-1] if minutes else 0,
        "p99_delay_minutes": minutes[max(0, math.ceil(0.99 * len(minutes)) - 1)] if minutes else 0,
        "largest_backlog": max(backlog, default=0),
        "queries": len(delays),
    }
    model = model_run(workload)
    agreement = {
        "worst_delay": _agrees(sample["worst_delay_minutes"], model["worst_delay_minutes"], DELAY_TOLERANCE,
                               DELAY_SLACK_MINUTES),
        "p99_delay": _agrees(sample["p99_delay_minutes"], model["p99_delay_minutes"], DELAY_TOLERANCE,
                             DELAY_SLACK_MINUTES),
        "largest_backlog": _agrees(sample["largest_backlog"], model["largest_backlog"], BACKLOG_TOLERANCE,
                                   BACKLOG_SLACK_USERS),
    }  # fmt: skip
    return {
        "scale": f"1:{workload.scale}",
        "registrations": len(forms),
        "on_ladder": sum(1 for outcome in outcomes.values() if outcome in ("lost", "stalled")),
        "budget_per_s": workload.budget,
        "workers": WORKERS,
        "priority_workers": PRIORITY_WORKERS,
        "dispatchers": 2,
        "window_utc": [workload.start, workload.end, workload.horizon],
        "sample": sample,
        "model": {key: model[key] for key in ("worst_delay_minutes", "p99_delay_minutes", "largest_backlog")},
        "tolerance": {
            "delay": [DELAY_TOLERANCE, DELAY_SLACK_MINUTES],
            "backlog": [BACKLOG_TOLERANCE, BACKLOG_SLACK_USERS],
        },
        "agrees": agreement,
        "double_checks": doubled,
        "batch_sizes": {str(size): count for size, count in sorted(batches.items())},
        "largest_batch": max(batches, default=0),
        "batch_size": source.batch_size,
        "redelivered": redelivered,
        "lost_replies": lost_replies[0],
        "worker_invocations": invocations[0],
        "dispatch_runs": len(dispatch_reports),
        "dispatch_taken": sum(report.get("taken", 0) for report in dispatch_reports),
        "errors": errors[:5],
        "error_count": len(errors),
        "busiest_interval_queries": scale._busiest_window(htouhui.per_second, interval),
        "slots": WORKERS + PRIORITY_WORKERS,
        "wall_seconds": round(wall, 1),
        "simulated_seconds": workload.horizon - workload.start,
    }


def _from_queries(
    ladder: Any, anchors: dict[str, float], outcomes: dict[str, str], asked: dict[str, list[float]], end: float
) -> tuple[list[float], list[tuple[float, float]], int]:
    """From each user's query moments: the delays (due -> asked, the pending step's due as the schedule had it),
    the (due, asked) spans of waiting (a check still pending at the end waits until then), and the double
    checks (two queries closer than `schedule.RETRY_BASE_SECONDS`)."""
    from onboarding import schedule

    delays: list[float] = []
    waiting: list[tuple[float, float]] = []
    doubled = 0
    steps = len(ladder.steps)
    for user, anchor in anchors.items():
        times = sorted(asked.get(user, []))
        doubled += sum(1 for a, b in itertools.pairwise(times) if b - a < schedule.RETRY_BASE_SECONDS)
        pending: int | None = 0
        for at in times:
            due = ladder.due(user, int(anchor), pending or 0)
            delays.append(max(0.0, at - due))
            waiting.append((due, at))
            if outcomes[user] != "stalled":
                pending = None  # status 3 answered: off the schedule
                break
            pending = next((step for step in range(steps) if ladder.due(user, int(anchor), step) > at), None)
            if pending is None:
                break
        if pending is not None and outcomes[user] in ("stalled", "lost"):  # a check still owed at the end
            due = ladder.due(user, int(anchor), pending)
            if due < end:
                waiting.append((due, end))
    return delays, waiting, doubled


def figures(result: dict[str, Any]) -> list[Any]:
    """The bench's rows: the sample's delays and backlog against the model's, the double checks, the SQS traffic."""
    from bench.stats import Figure

    ours, model = result["sample"], result["model"]
    rows = [
        Figure("scale", f"honest sample {result['scale']}: worst delay vs model", ours["worst_delay_minutes"],
               max(1, model["worst_delay_minutes"]), "min"),
        Figure("scale", "honest sample: p99 delay vs model", ours["p99_delay_minutes"],
               max(1, model["p99_delay_minutes"]), "min"),
        Figure("scale", "honest sample: largest backlog vs model", ours["largest_backlog"],
               max(1, model["largest_backlog"]), "users"),
        Figure("scale", "honest sample: measures outside the stated tolerance", sum(not ok for ok in
               result["agrees"].values()), 1, "measures", target=1.0, direction="max"),
        Figure("scale", "honest sample: double checks (two dispatchers, threads, redelivery)",
               result["double_checks"], 1, "checks", target=1.0, direction="max"),
        Figure("scale", "honest sample: largest batch against the template's BatchSize", result["largest_batch"],
               result["batch_size"], "messages"),
        Figure("scale", "honest sample: messages redelivered (lost replies, the time-left guard)",
               result["redelivered"], None, "messages"),
    ]  # fmt: skip
    return rows


def _agrees(sample: float, model: float, share: float, slack: float) -> bool:
    return abs(sample - model) <= max(slack, share * max(sample, model))


def model_run(workload: Workload) -> dict[str, Any]:
    from bench import scenarios

    scenario = scenarios.Scenario(
        "sample", registrations_per_day=workload.registrations_per_day, budget=workload.budget
    )
    return scenarios.simulate(
        scenario,
        1,
        budget=workload.budget,
        workers=WORKERS,
        priority_workers=PRIORITY_WORKERS,
        query_seconds=QUERY_SECONDS,
        window=(workload.start, workload.end, workload.horizon),
    )


def in_child(workload: Workload, *, broken_lease: bool = False, timeout: float = 900) -> dict[str, Any]:
    """`run` in a fresh interpreter (it patches moto's clock and sets the process's environment)."""
    import subprocess

    command = [sys.executable, "-m", "bench.sample", "--json",
               "--window", f"{workload.start},{workload.end},{workload.horizon}", "--scale", str(workload.scale),
               "--lost-reply-every", str(workload.lost_reply_every)]  # fmt: skip
    if broken_lease:
        command.append("--broken-lease")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the sample failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    parser.add_argument("--quick", action="store_true", help="the test's small window")
    parser.add_argument("--window", help="start,end,horizon in seconds of the day (UTC)")
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--broken-lease", action="store_true")
    parser.add_argument("--lost-reply-every", type=int, default=None)
    options = parser.parse_args()
    workload = QUICK if options.quick else Workload()
    if options.window:
        start, end, horizon = (int(part) for part in options.window.split(","))
        workload = Workload(start, end, horizon, options.scale or workload.scale)
    if options.lost_reply_every is not None:
        workload = dataclasses.replace(workload, lost_reply_every=options.lost_reply_every)
    result = run(workload, broken_lease=options.broken_lease)
    print(json.dumps(result) if options.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
